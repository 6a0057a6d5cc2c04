"""When a photo or video was taken, and with which camera: the base for a timeline and albums later.

Read once, when the file is hashed, from bytes already in memory for small files or from a few header
reads for large ones:

* stills (JPEG, HEIC/HEIF/AVIF, TIFF, WebP, PNG and TIFF-based RAW such as DNG, CR2, NEF, ARW, ORF, RW2):
  EXIF ``DateTimeOriginal`` (then ``DateTimeDigitized``) with ``OffsetTimeOriginal`` when present, and the
  ``Model`` tag, through ``exifread``;
* QuickTime/MP4 video (MOV, MP4, M4V, 3GP, CR3…): the ``mvhd`` creation time and, from phones that write
  it, ``com.apple.quicktime.model``, found by walking box headers (a handful of seeks, whatever the size).

Capture time is an ISO 8601 string: EXIF local time as written by the camera (``2023-05-01T12:34:56``, with
``+02:00`` when the camera recorded its offset); MP4 times are UTC (``…Z``). Anything unreadable yields
``None`` fields: metadata never stops a file from being backed up.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import exifread

from .mediatypes import extension

log = logging.getLogger(__name__)
# exifread warns about every file without EXIF; that is normal for our purposes.
logging.getLogger("exifread").setLevel(logging.ERROR)

# fmt: off
EXIF_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".heic", ".heif", ".hif", ".avif", ".tif", ".tiff", ".webp", ".png", ".jxl",
    ".dng", ".cr2", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".pef", ".srw", ".3fr", ".iiq",
})
# fmt: on
ISOBMFF_VIDEO_EXTENSIONS = frozenset({".mov", ".qt", ".mp4", ".m4v", ".3gp", ".3g2", ".insv", ".lrv", ".cr3"})
MAX_MODEL_CHARS = 128
_MP4_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
_MAX_BOXES = 4096  # bound the walk over a malformed file
_MODEL_KEY = b"com.apple.quicktime.model"
_OFFSET_RE = re.compile(r"^[+-](?:0\d|1[0-4]):[0-5]\d$")


@dataclass(frozen=True, slots=True)
class Capture:
    time: str | None = None
    camera_model: str | None = None


NOTHING = Capture()


def read_capture(path: str, data: bytes | None = None) -> Capture:
    """Capture time and camera model of the file at ``path`` (``data``: its bytes when already read).

    Never raises: a file whose metadata cannot be read gets ``Capture(None, None)``."""
    ext = extension(path)
    if ext not in EXIF_EXTENSIONS and ext not in ISOBMFF_VIDEO_EXTENSIONS:
        return NOTHING
    try:
        if data is not None:
            return _read(ext, io.BytesIO(data))
        with open(path, "rb") as f:
            return _read(ext, f)
    except Exception as exc:  # malformed media must never stop the sync
        log.debug("no capture metadata for %s: %s", path, exc)
        return NOTHING


def _read(ext: str, f: BinaryIO) -> Capture:
    if ext in ISOBMFF_VIDEO_EXTENSIONS:
        return quicktime_capture(f)
    return exif_capture(f)


# -- EXIF ------------------------------------------------------------------------------------------
def exif_capture(f: BinaryIO) -> Capture:
    tags = exifread.process_file(f, details=False, extract_thumbnail=False)
    when = None
    for name in ("EXIF DateTimeOriginal", "EXIF DateTimeDigitized"):
        when = _exif_datetime(_text(tags.get(name)), _text(tags.get("EXIF OffsetTimeOriginal")))
        if when:
            break
    return Capture(time=when, camera_model=_clean_model(_text(tags.get("Image Model"))))


def _text(tag: object) -> str | None:
    if tag is None:
        return None
    values = getattr(tag, "values", tag)
    if isinstance(values, bytes):
        values = values.decode("ascii", "replace")
    return str(values).replace("\x00", " ").strip() or None


def _exif_datetime(value: str | None, offset: str | None) -> str | None:
    """``2023:05:01 12:34:56`` -> ``2023-05-01T12:34:56`` (+ ``+02:00`` when the offset is valid)."""
    if not value:
        return None
    try:
        dt = datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00", blanks and other camera placeholders
    text = dt.isoformat()
    if offset and _OFFSET_RE.match(offset.strip()):
        text += offset.strip()
    return text


def _clean_model(value: str | None) -> str | None:
    if not value:
        return None
    clean = "".join(ch for ch in value if ch.isprintable()).strip()
    return clean[:MAX_MODEL_CHARS] or None


# -- ISO base media (MP4/MOV) --------------------------------------------------------------------
def _boxes(f: BinaryIO, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """``(type, payload_start, box_end)`` of the boxes in ``[start, end)``, reading headers only."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(out) < _MAX_BOXES:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            ext = f.read(8)
            if len(ext) < 8:
                break
            size, header = struct.unpack(">Q", ext)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def quicktime_capture(f: BinaryIO) -> Capture:
    """Creation time (``moov/mvhd``) and, when the camera wrote it, the model (Apple's
    ``com.apple.quicktime.model`` in ``moov/meta``); ``NOTHING`` when there is no ``moov``."""
    f.seek(0, os.SEEK_END)
    moov = next(((p, e) for kind, p, e in _boxes(f, 0, f.tell()) if kind == b"moov"), None)
    if moov is None:
        return NOTHING
    when = model = None
    for kind, payload, box_end in _boxes(f, *moov):
        if kind == b"mvhd" and when is None:
            when = _mvhd_time(f, payload)
        elif kind == b"meta" and model is None:
            model = _quicktime_model(f, payload, box_end)
    return Capture(when, _clean_model(model))


def mvhd_creation_time(f: BinaryIO) -> str | None:
    """Creation time from ``moov/mvhd`` (UTC); ``None`` when absent or unset."""
    return quicktime_capture(f).time


def _mvhd_time(f: BinaryIO, payload: int) -> str | None:
    f.seek(payload)
    version = f.read(4)[:1]
    raw = f.read(8 if version == b"\x01" else 4)
    seconds = int.from_bytes(raw, "big") if raw else 0
    if not seconds:
        return None
    when = _MP4_EPOCH + timedelta(seconds=seconds)
    if when.year < 1971 or when > datetime.now(UTC) + timedelta(days=2):
        return None  # an unset camera clock, not a capture date
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quicktime_model(f: BinaryIO, start: int, end: int) -> str | None:
    """The value of the ``com.apple.quicktime.model`` key: its index in ``keys``, its item in ``ilst``."""
    for skip in (0, 4):  # QuickTime's meta box has no version/flags; ISO's does
        boxes = {kind: (p, e) for kind, p, e in _boxes(f, start + skip, end)}
        if b"keys" in boxes and b"ilst" in boxes:
            break
    else:
        return None
    keys_at, keys_end = boxes[b"keys"]
    f.seek(keys_at + 4)
    count = int.from_bytes(f.read(4), "big")
    pos, index = keys_at + 8, None
    for i in range(1, min(count, 512) + 1):
        f.seek(pos)
        size = int.from_bytes(f.read(4), "big")
        if size < 8 or pos + size > keys_end:
            return None
        f.read(4)  # namespace, 'mdta'
        if size - 8 == len(_MODEL_KEY) and f.read(size - 8) == _MODEL_KEY:
            index = i
            break
        pos += size
    if index is None:
        return None
    for kind, p, e in _boxes(f, *boxes[b"ilst"]):
        if int.from_bytes(kind, "big") != index:
            continue
        for dkind, dp, de in _boxes(f, p, e):
            if dkind == b"data" and de - dp > 8:
                f.seek(dp + 8)  # type indicator, locale
                return f.read(min(de - dp - 8, 4 * MAX_MODEL_CHARS)).decode("utf-8", "replace")
    return None
