"""Renditions and originals streamed from their blobs, with single-range support so a video seeks.

Nothing is made public and no blob URL leaves the app: the browser asks the app, the app reads the blob
with its own identity (or the emulator's key) and streams the bytes. A ``Range: bytes=a-b`` request becomes
a ranged blob read (``offset``/``length``) and a 206, so seeking in a 4 GB video reads only what is shown.
Every media response carries ``Content-Security-Policy: sandbox`` and ``nosniff``: an original that is
really HTML cannot run in the gallery's origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient
from starlette.responses import Response, StreamingResponse

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 20
MEDIA_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=3600",
    "Accept-Ranges": "bytes",
}


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end inclusive)`` of a single byte range; ``None`` for the whole blob (no or an ignorable
    header, e.g. several ranges); :class:`RangeNotSatisfiable` when it lies past the end."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header)
    return start, end


def _chunks(blob: BlobClient, offset: int, length: int) -> Iterator[bytes]:
    yield from blob.download_blob(offset=offset, length=length, max_concurrency=1).chunks()


def stream_blob(
    blob: BlobClient,
    range_header: str | None,
    *,
    content_type: str,
    filename: str | None = None,
    attachment: bool = False,
) -> Response:
    """The blob (or the asked-for range of it) as a streamed response; 404 when it does not exist.

    Without a ``Range`` (every thumbnail) this is one blob request: the download itself tells the size."""
    headers = dict(MEDIA_HEADERS)
    if filename is not None:
        kind = "attachment" if attachment else "inline"
        headers["Content-Disposition"] = f"{kind}; filename*=UTF-8''{quote(filename, safe='')}"
    try:
        if not range_header:
            download = blob.download_blob(max_concurrency=1)
            headers["Content-Length"] = str(download.size)
            return StreamingResponse(download.chunks(), headers=headers, media_type=content_type)
        size = int(blob.get_blob_properties().size)
    except ResourceNotFoundError:
        return Response("not found", status_code=404, headers=MEDIA_HEADERS, media_type="text/plain")
    try:
        rng = parse_range(range_header, size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    if size == 0 or rng is None:  # an ignorable Range header: the whole blob
        headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(blob, 0, size) if size else iter([b""]), headers=headers,
                                 media_type=content_type)  # fmt: skip
    start, end = rng
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _chunks(blob, start, end - start + 1), status_code=206, headers=headers, media_type=content_type
    )
