"""A read-only, seekable file over one blob, fetched by ranged downloads into one bounded buffer.

Decoders (Pillow, PyAV) seek and read small pieces; a video's index may sit at its end. Reading through
this keeps memory at one buffer whatever the blob's size, and a poster frame of a 4 GB video costs a few
ranges, not the whole file. The blob's etag is pinned at open, so a blob replaced mid-read fails the read
instead of mixing two versions.
"""

from __future__ import annotations

import io
import os

from azure.core import MatchConditions
from azure.storage.blob import BlobClient

DEFAULT_CHUNK = 4 * 1024 * 1024


class BlobReader(io.RawIOBase):
    """``read``/``readinto``/``seek`` over ``blob`` (``size`` bytes); at most ``chunk`` bytes held."""

    def __init__(self, blob: BlobClient, size: int, *, etag: str | None = None, chunk: int = DEFAULT_CHUNK):
        super().__init__()
        self._blob = blob
        self._size = size
        self._etag = etag
        self._chunk = max(64 * 1024, chunk)
        self._pos = 0
        self._buf = b""
        self._buf_start = 0
        self.requests = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size or not len(b):
            return 0
        if not self._buf_start <= self._pos < self._buf_start + len(self._buf):
            self._fetch(self._pos)
        start = self._pos - self._buf_start
        n = min(len(b), len(self._buf) - start)
        memoryview(b)[:n] = self._buf[start : start + n]
        self._pos += n
        return n

    def _fetch(self, pos: int) -> None:
        length = min(self._chunk, self._size - pos)
        kwargs = {"etag": self._etag, "match_condition": MatchConditions.IfNotModified} if self._etag else {}
        self._buf = b""  # the old buffer goes before the new one arrives: one buffer at a time
        self._buf = self._blob.download_blob(offset=pos, length=length, max_concurrency=1, **kwargs).readall()
        self._buf_start = pos
        self.requests += 1
        self.bytes_read += len(self._buf)
        if not self._buf:
            raise OSError(f"blob ended at {pos} of {self._size} bytes")
