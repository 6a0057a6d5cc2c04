"""One run at a time per state dir: an exclusive ``flock`` on ``<state dir>/lock``.

Two syncs writing the same index (a cron job and a manual run, two containers sharing a NAS mount) would
race on the same uploads and records. The kernel drops a ``flock`` when its holder dies, however it dies
(SIGKILL, power loss of a client), so a lock left by a dead process is simply free: there is no stale-pid
guessing, and the file stays in place (deleting it would let two runs lock two different inodes). The
holder writes its pid, host, command and start time into the file so the refusal message can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from sync_core.errors import ConfigError

LOCK_NAME = "lock"


class LockHeldError(Exception):
    """Another azphotosync run holds the state-dir lock (exit code 3)."""


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {info['pid']} on {info['host']} running `{info['command']}` since {started}"
    except (ValueError, KeyError, TypeError):
        return "another process"


class StateLock:
    """Exclusive, non-blocking lock on a state dir. Every command that writes the state dir wraps its work
    in ``with StateLock(state_dir, "<command>"):``; read-only commands need no lock (SQLite WAL readers)."""

    def __init__(self, state_dir: Path | str, command: str = "sync"):
        self.state_dir = Path(state_dir).expanduser()
        self.path = self.state_dir / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the lock in state dir {str(self.state_dir)!r} ({exc.strerror or exc}); fix its "
                "permissions or free some space, or choose another with --state-dir"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = _describe_holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
            os.close(fd)
            raise LockHeldError(
                f"another azphotosync run holds {self.path} ({holder}); nothing was done — wait for it to "
                "finish, or stop it"
            ) from exc
        except OSError as exc:
            os.close(fd)
            raise ConfigError(
                f"cannot lock {self.path} ({exc.strerror or exc}); is the state dir on a file system without "
                "locks? choose a local --state-dir"
            ) from exc
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command, "started": time.time()}
        with contextlib.suppress(OSError):  # the lock itself is what matters; the note is best effort
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def live_holder(state_dir: Path | str, command: str | None = None) -> str | None:
    """Who holds the state dir's lock now (running ``command``, when given), or None when nobody does —
    without taking the lock, so that ``status`` never makes a starting run fail. The holder's note is
    cleared when it releases the lock; a note left by a run that was killed names a process that is gone.
    A holder on another host cannot be checked from here and is taken as live."""
    try:
        text = (Path(state_dir).expanduser() / LOCK_NAME).read_text("utf-8", "replace")
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or (command is not None and info.get("command") != command):
        return None
    if info.get("host") == socket.gethostname():
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by another user
        except (KeyError, TypeError, ValueError, OSError):
            return None
    return _describe_holder(text)
