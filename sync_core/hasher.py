"""SHA-256 of a file's bytes, streamed with bounded memory, with a check that the file held still.

Small files are read once into memory: the same buffer is hashed and then uploaded, so they cost one
read. Larger files are hashed in a streaming pass and read again, block by block, by the transfer stage.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

READ_CHUNK = 1024 * 1024


class FileChangedError(Exception):
    """The file changed (size or mtime) while we were reading it; it will be picked up next run."""


@dataclass(frozen=True, slots=True)
class Hashed:
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    data: bytes | None  # the whole content when the file was small enough to keep


def _same(st: os.stat_result, size: int, mtime_ns: int) -> bool:
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def hash_file(path: str, expect_size: int, expect_mtime_ns: int, *, keep_up_to: int = 0) -> Hashed:
    """Hash ``path``; keep its bytes when it is at most ``keep_up_to`` long.

    Raises :class:`FileChangedError` when the file's size or mtime differ from what the scan saw, before
    or after reading — a file being written must not be recorded as backed up.
    """
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not _same(st, expect_size, expect_mtime_ns):
            raise FileChangedError("changed since it was scanned")
        if st.st_size <= keep_up_to:
            data = f.read(st.st_size + 1)
            if len(data) != st.st_size:
                raise FileChangedError("size changed while reading")
            digest = hashlib.sha256(data).hexdigest()
        else:
            data = None
            h = hashlib.sha256()
            buf = bytearray(READ_CHUNK)
            view = memoryview(buf)
            total = 0
            while n := f.readinto(buf):
                h.update(view[:n])
                total += n
            if total != st.st_size:
                raise FileChangedError("size changed while reading")
            digest = h.hexdigest()
        after = os.fstat(f.fileno())
        if not _same(after, expect_size, expect_mtime_ns):
            raise FileChangedError("changed while it was being read")
    return Hashed(digest, st.st_size, st.st_mtime_ns, st.st_ino, data)


def file_unchanged(path: str, size: int, mtime_ns: int) -> bool:
    """Re-stat after an upload: True when the file is still what we hashed and sent."""
    try:
        return _same(os.stat(path), size, mtime_ns)
    except OSError:
        return False
