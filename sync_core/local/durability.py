"""Making many written files durable at the price of a few flushes (group commit).

A restore must never leave a file in place whose bytes are not on disk: after a power cut the name could
point at zeros, and the next run would take it for a different local file and keep it. One ``fsync`` per
file guarantees that, but each is a journal commit: for thousands of small files the flushes cost more
than the downloads. So workers that finished a file ask :class:`GroupSync` for a flush that *starts after*
their writes; while one flush runs, every worker arriving meanwhile waits for the next one, which a single
``syncfs`` of the file system serves for all of them. Where ``syncfs`` is not available (not Linux), each
file is flushed on its own, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import threading
from collections.abc import Callable


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def syncfs(fd: int) -> None:
    """Flush every file system buffer of the file system holding ``fd`` (raises ``OSError``)."""
    if _SYNCFS is None:
        raise OSError(errno.ENOSYS, "syncfs is not available here")
    if _SYNCFS(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class GroupSync:
    """Flushes shared by concurrent callers, per file system. Thread-safe."""

    def __init__(self, *, grouped: bool = True):
        """``grouped=False`` flushes each file with ``fsync`` (what :meth:`durable` does without ``syncfs``)."""
        self._grouped = grouped and _SYNCFS is not None
        self._cond = threading.Condition()
        self._started: dict[int, int] = {}  # per st_dev: flushes started
        self._completed: dict[int, int] = {}  # per st_dev: flushes completed
        self._running: set[int] = set()
        self._failed: dict[int, tuple[int, OSError]] = {}  # the flush number that failed, and why

    def durable(self, fd: int) -> None:
        """Return once everything written to ``fd`` so far is on disk; raises the flush's ``OSError``."""
        if not self._grouped:
            os.fsync(fd)
            return
        dev = os.fstat(fd).st_dev
        with self._cond:
            target = self._started.get(dev, 0) + 1  # a flush that starts after this call
            while self._completed.get(dev, 0) < target:
                if dev in self._running:
                    self._cond.wait()
                    continue
                self._running.add(dev)
                number = self._started[dev] = self._started.get(dev, 0) + 1
                self._cond.release()
                error: OSError | None = None
                try:
                    syncfs(fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._running.discard(dev)
                    self._completed[dev] = number
                    if error is not None:
                        self._failed[dev] = (number, error)
                    self._cond.notify_all()
            failed = self._failed.get(dev)
            if failed is not None and failed[0] >= target:
                raise OSError(failed[1].errno, f"flushing to disk failed: {failed[1].strerror}") from failed[1]
