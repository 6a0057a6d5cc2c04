"""SHA-256 of a file's bytes, streamed with bounded memory, from the very file the scan saw.

Small files are read once into memory: the same buffer is hashed and then uploaded, so they cost one
read (the service computes the Content-MD5 of a single Put Blob itself). Larger files are hashed in a
streaming pass and read again, block by block, by the transfer stage. This pass computes only what must be
known before the first block can go: the SHA-256 (the blob's name) and the XXH3-128 of each block (see
:func:`block_digest`), so the transfer can prove every block it sends (or finds already staged) is the
content hashed here. The whole file's MD5 (a block list's Content-MD5) is left to the transfer's own read,
where it runs while blocks are on the wire instead of before the first one.

The file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked on the open descriptor: a path swapped for
a symlink (whose target may lie outside the library) or a FIFO (whose ``open`` would block for ever) after
the scan is refused, and a different file at the path counts as a change.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import xxhash

READ_CHUNK = 1024 * 1024


class FileChangedError(Exception):
    """The file changed (size or mtime) while we were reading it; it will be picked up next run."""


class NotScannedFileError(Exception):
    """The path no longer names a regular file (a symlink, FIFO, socket or device took its place)."""


@dataclass(frozen=True, slots=True)
class Hashed:
    sha256: str
    size: int
    mtime_ns: int
    inode: int
    data: bytes | None  # the whole content when the file was small enough to keep
    dev: int = 0
    block_size: int = 0  # when the content was not kept: the block size of ``blocks``
    blocks: tuple[bytes, ...] = ()  # the block_digest of each ``block_size`` piece, in order


def block_digest(data: bytes | memoryview) -> bytes:
    """The XXH3-128 digest of one block, as the read pass records it and the transfer checks it again.

    A non-cryptographic hash is enough here, and a cryptographic one bought nothing for its CPU: it only
    has to tell whether the bytes of a block changed by accident (the file edited) between the read pass
    and the transfer's read, or whether a staged block is one an earlier run sent from other bytes. Neither
    is chosen to collide: 128 well-mixed bits (104 of them in the block id) make a match by chance
    negligible. A party able to stage blocks in the container could stage any bytes under any id whatever
    the hash, since the service never checks an id against the bytes; what proves the blob is its name's
    SHA-256, computed by the read pass over the whole file and re-checked by deep verification."""
    return xxhash.xxh3_128_digest(data)


def _same(st: os.stat_result, size: int, mtime_ns: int) -> bool:
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


@contextmanager
def open_scanned(
    path: str, size: int, mtime_ns: int, *, inode: int | None = None, dev: int | None = None
) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is still the regular file the scan saw.

    Never follows a symlink and never blocks on a FIFO. Raises :class:`NotScannedFileError` when the path
    is not a regular file any more, :class:`FileChangedError` when it is another file (inode, device) or
    its size or mtime differ."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotScannedFileError("replaced by a symlink since it was scanned; not followed") from exc
        if exc.errno == errno.ENXIO:  # a socket (or a FIFO opened for writing): nothing to read
            raise NotScannedFileError("replaced by a socket since it was scanned; not read") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotScannedFileError(f"replaced by {_kind(st.st_mode)} since it was scanned; not read")
        if (inode is not None and st.st_ino != inode) or (dev is not None and st.st_dev != dev):
            raise FileChangedError("replaced by another file since it was scanned")
        if not _same(st, size, mtime_ns):
            raise FileChangedError("changed since it was scanned")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        f = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f  # type: ignore[misc]


class Streamed(NamedTuple):
    sha256: str  # hex
    blocks: tuple[bytes, ...]  # the block_digest of each block (none without a block size)
    size: int  # the bytes read


def hash_stream(f: BinaryIO, block_size: int = 0, *, also: Sequence[Any] = ()) -> Streamed:
    """SHA-256 and the :func:`block_digest` of each ``block_size`` block of what is left to read in ``f``,
    in one pass of ``READ_CHUNK`` reads into one reused buffer; every hash object in ``also`` is fed the same
    bytes."""
    sha = hashlib.sha256()
    blocks: list[bytes] = []
    bh, in_block, total = xxhash.xxh3_128(), 0, 0
    buf = bytearray(READ_CHUNK)
    while n := f.readinto(buf):
        piece = memoryview(buf)[:n]
        sha.update(piece)
        for h in also:
            h.update(piece)
        total += n
        off = 0
        while block_size and off < n:
            take = min(n - off, block_size - in_block)
            bh.update(piece[off : off + take])
            in_block += take
            off += take
            if in_block == block_size:
                blocks.append(bh.digest())
                bh, in_block = xxhash.xxh3_128(), 0
    if block_size and (in_block or not blocks):
        blocks.append(bh.digest())
    return Streamed(sha.hexdigest(), tuple(blocks), total)


def hash_file(
    path: str,
    expect_size: int,
    expect_mtime_ns: int,
    *,
    keep_up_to: int = 0,
    block_size: int = 0,
    inode: int | None = None,
    dev: int | None = None,
) -> Hashed:
    """Hash ``path``; keep its bytes when it is at most ``keep_up_to`` long, otherwise also compute the
    :func:`block_digest` of each ``block_size`` block (when ``block_size`` is given), in the same read.

    Raises :class:`FileChangedError` when the file's size or mtime differ from what the scan saw, before
    or after reading — a file being written must not be recorded as backed up — and
    :class:`NotScannedFileError` when the path is no longer a regular file (see :func:`open_scanned`).
    """
    with open_scanned(path, expect_size, expect_mtime_ns, inode=inode, dev=dev) as f:
        st = os.fstat(f.fileno())
        blocks: tuple[bytes, ...] = ()
        if st.st_size <= keep_up_to:
            data = f.read(st.st_size + 1)
            if len(data) != st.st_size:
                raise FileChangedError("size changed while reading")
            digest = hashlib.sha256(data).hexdigest()
            block_size = 0
        else:
            data = None
            streamed = hash_stream(f, block_size)
            if streamed.size != st.st_size:
                raise FileChangedError("size changed while reading")
            digest, blocks = streamed.sha256, streamed.blocks
        after = os.fstat(f.fileno())
        if not _same(after, expect_size, expect_mtime_ns):
            raise FileChangedError("changed while it was being read")
    return Hashed(digest, st.st_size, st.st_mtime_ns, st.st_ino, data, st.st_dev, block_size, blocks)


def md5_of(path: str, hashed: Hashed) -> bytes | None:
    """The MD5 of ``path``'s content if it is still the content ``hashed`` (its SHA-256 checked in the same
    read), else ``None``: for the rare blob that needs a Content-MD5 without being uploaded from this read."""
    if hashed.data is not None:
        return hashlib.md5(hashed.data).digest()
    try:
        with open_scanned(path, hashed.size, hashed.mtime_ns, inode=hashed.inode, dev=hashed.dev) as f:
            md5 = hashlib.md5()
            sha256 = hash_stream(f, also=(md5,)).sha256
    except (OSError, FileChangedError, NotScannedFileError):
        return None
    return md5.digest() if sha256 == hashed.sha256 else None


def file_unchanged(path: str, size: int, mtime_ns: int) -> bool:
    """Re-stat after an upload: True when the file is still what we hashed and sent."""
    try:
        return _same(os.stat(path, follow_symlinks=False), size, mtime_ns)
    except OSError:
        return False
