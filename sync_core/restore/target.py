"""The restore folder: which names may become paths in it, and file operations that cannot leave it.

Names come from the archive (blob names, metadata, Table rows), so they are untrusted. :func:`unsafe_reason`
rejects anything but a plain relative ``/``-separated path. :class:`DestDir` then resolves every path one
segment at a time from an open descriptor of the folder, each with ``O_NOFOLLOW``. A symbolic link,
whether planted before the restore or during it, cannot carry a write outside the folder, and neither can a
hard link planted where a partial download is resumed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from sync_core.errors import ConfigError

READ_CHUNK = 1024 * 1024
TEMP_PREFIX = ".azps-restore-"
# NUL ends a name everywhere; Windows also refuses the other C0 controls. Elsewhere a control character or a
# backslash is an ordinary character of a name the backup stored (under an encoded blob name) and restores.
_CONTROL_RE = re.compile(r"[\x00-\x1f]" if os.name == "nt" else r"\x00")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_O_DIR = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # what O_NOFOLLOW|O_DIRECTORY says about a link


def unsafe_reason(relpath: str) -> str | None:
    """Why ``relpath`` must not become a path under the restore folder; ``None`` when it is a plain,
    relative, ``/``-separated path."""
    if not relpath:
        return "empty path"
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if _CONTROL_RE.search(relpath):
        return "contains NUL or control characters"
    if relpath.startswith("/"):
        return "is an absolute path"
    if _DRIVE_RE.match(relpath):
        return "starts with a drive letter"
    if any(seg in ("", ".", "..") for seg in relpath.split("/")):
        return "has an empty, '.' or '..' segment"
    if any(sep in relpath for sep in (os.sep, os.altsep) if sep and sep != "/"):
        return "contains a path separator of this system"
    return None


class UnsafePathError(Exception):
    """A path component is a symbolic link (or not a folder): nothing is written through it."""


def dir_fd_supported() -> bool:
    needed = (os.open, os.mkdir, os.rename, os.unlink, os.link, os.stat)
    return bool(_O_NOFOLLOW and _O_DIR) and all(f in os.supports_dir_fd for f in needed)


class DestDir:
    """The restore folder, held open by descriptor for the whole run."""

    def __init__(self, root: Path):
        if not dir_fd_supported():
            raise ConfigError("restore needs openat()-style file APIs (Linux, macOS, BSD); this system lacks them")
        try:
            root.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(root, os.O_RDONLY | _O_DIR)
        except OSError as exc:
            raise ConfigError(f"cannot use {str(root)!r} as the restore folder: {exc.strerror or exc}") from exc
        self.root = root

    def close(self) -> None:
        os.close(self.fd)

    def open_parent(self, parts: Sequence[str]) -> int:
        """Descriptor of the folder ``parts`` under the root, created as needed; the caller closes it."""
        fd = os.dup(self.fd)
        try:
            for i, seg in enumerate(parts):
                try:
                    nfd = os.open(seg, os.O_RDONLY | _O_DIR | _O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    with contextlib.suppress(FileExistsError):  # another worker made it
                        os.mkdir(seg, 0o777, dir_fd=fd)
                    nfd = _open_dir_checked(seg, fd, parts[: i + 1])
                except OSError as exc:
                    if exc.errno not in _NOT_A_DIR:
                        raise
                    nfd = _open_dir_checked(seg, fd, parts[: i + 1])
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise


def _open_dir_checked(seg: str, fd: int, shown: Sequence[str]) -> int:
    try:
        return os.open(seg, os.O_RDONLY | _O_DIR | _O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in _NOT_A_DIR:
            raise
        st = os.stat(seg, dir_fd=fd, follow_symlinks=False)
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise UnsafePathError(f"{'/'.join(shown)!r} is {what}; nothing is written through it") from exc


def hash_at(name: str, dir_fd: int) -> str:
    """SHA-256 of the regular file ``name`` in ``dir_fd`` (never through a link)."""
    fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        h = hashlib.sha256()
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def temp_name(name: str, sha256: str) -> str:
    """Fixed length, deterministic per target and content: a rerun finds its own partial download (and
    never mistakes one of another version for it)."""
    key = hashlib.sha256(f"{sha256}/{name}".encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return f"{TEMP_PREFIX}{key}.part"


def open_partial(tmp: str, dir_fd: int) -> tuple[int, int]:
    """``(fd, bytes already there)`` for the temporary file ``tmp``, opened read-write.

    An earlier partial download is kept only when it is a plain file with a single link: a symlink or a
    hard link planted under that name is unlinked (the name only) and a fresh file is created instead."""
    try:
        fd = os.open(tmp, os.O_RDWR | _O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        fd = -1
    except OSError as exc:
        if exc.errno not in _NOT_A_DIR:
            raise
        fd = -1  # a symbolic link
    if fd >= 0:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            return fd, st.st_size
        os.close(fd)
    unlink_quietly(tmp, dir_fd)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o666, dir_fd=dir_fd)
    return fd, 0


def hash_prefix(fd: int, h: hashlib._Hash, length: int) -> None:
    """Feed the first ``length`` bytes of ``fd`` to ``h`` (the partial download being resumed)."""
    pos = 0
    while pos < length:
        chunk = os.pread(fd, min(READ_CHUNK, length - pos), pos)
        if not chunk:
            raise OSError(errno.EIO, "partial download shrank while being read")
        h.update(chunk)
        pos += len(chunk)


def unlink_quietly(name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)
