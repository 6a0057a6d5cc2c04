"""GroupSync: every caller returns only after a flush that started after its call, concurrent callers share
flushes, and a failed flush fails every caller that depended on it."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from sync_core.local import durability
from sync_core.local.durability import GroupSync

pytestmark = pytest.mark.skipif(durability._SYNCFS is None, reason="syncfs is Linux-only")


def _fd(tmp_path: Path, name: str) -> int:
    return os.open(tmp_path / name, os.O_CREAT | os.O_WRONLY, 0o600)


def test_concurrent_callers_share_flushes_and_each_waits_for_one_started_after_it(tmp_path, monkeypatch):
    flushes: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow_syncfs(fd: int) -> None:
        start = time.monotonic()
        time.sleep(0.05)
        with lock:
            flushes.append((start, time.monotonic()))

    monkeypatch.setattr(durability, "syncfs", slow_syncfs)
    group = GroupSync()
    calls: list[tuple[float, float]] = []

    def worker(i: int) -> None:
        fd = _fd(tmp_path, f"f{i}")
        try:
            t0 = time.monotonic()
            group.durable(fd)
            with lock:
                calls.append((t0, time.monotonic()))
        finally:
            os.close(fd)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 16
    assert 1 <= len(flushes) < 16  # shared
    for called, returned in calls:  # a flush that started after the call ended before the return
        assert any(called <= s and e <= returned for s, e in flushes)


def test_a_failed_flush_fails_its_callers(tmp_path, monkeypatch):
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(durability, "syncfs", failing)
    fd = _fd(tmp_path, "f")
    try:
        with pytest.raises(OSError, match="flushing to disk failed") as info:
            GroupSync().durable(fd)
        assert info.value.errno == errno.EIO
    finally:
        os.close(fd)


def test_the_real_syncfs_and_the_ungrouped_fsync_both_flush(tmp_path):
    fd = _fd(tmp_path, "f")
    try:
        os.write(fd, b"x")
        GroupSync().durable(fd)
        GroupSync(grouped=False).durable(fd)
    finally:
        os.close(fd)
