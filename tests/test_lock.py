"""One run at a time: the state-dir lock refuses a second run at once and is free again after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import EXIT_LOCKED
from agent.lock import LOCK_NAME, LockHeldError, StateLock

from .conftest import det_bytes, run_cli, write_file

REPO = Path(__file__).resolve().parents[1]
HOLD = """
import sys, time
from agent.lock import StateLock
lock = StateLock(sys.argv[1], "sync").acquire()
print("locked", flush=True)
time.sleep(60)
"""


def hold_lock(state: Path) -> subprocess.Popen[str]:
    """Another process (another run) holding the lock."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(state)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


@pytest.fixture
def library(tmp_path: Path) -> Path:
    src = tmp_path / "lib"
    for i in range(3):
        write_file(src, f"img{i}.jpg", det_bytes(i, 1000))
    return src


def test_second_run_exits_at_once_with_code_3(storage_env, container, library, tmp_path):
    state = tmp_path / "state"
    holder = hold_lock(state)
    try:
        t0 = time.monotonic()
        r = run_cli("--source", str(library), "--state-dir", str(state))
        assert r.code == EXIT_LOCKED == 3
        assert time.monotonic() - t0 < 5  # refused at once, not after waiting
        line = r.err.strip().splitlines()
        assert len(line) == 1 and "another azphotosync run holds" in line[0]
        assert f"pid {holder.pid}" in line[0] and "`sync`" in line[0]
        assert not (state / "index.db").exists()  # nothing was done
        assert not list(container.list_blobs())
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_run_is_taken_over(storage_env, container, library, tmp_path):
    state = tmp_path / "state"
    holder = hold_lock(state)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    left = json.loads((state / LOCK_NAME).read_text())
    assert left["pid"] == holder.pid  # the dead run's note is still there: a stale lock file
    r = run_cli("--source", str(library), "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    assert r.json()["uploaded"] == 3
    assert (state / LOCK_NAME).read_text() == ""  # released cleanly at the end


def test_lock_is_exclusive_within_a_process_and_released(tmp_path):
    with StateLock(tmp_path, "sync") as first:
        assert first.held
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(LockHeldError), StateLock(tmp_path, "restore"):
            pass
    with StateLock(tmp_path, "restore") as again:
        assert again.held
    assert not again.held


def test_dry_run_does_not_need_the_lock(storage_env, container, library, tmp_path):
    state = tmp_path / "state"
    holder = hold_lock(state)
    try:
        r = run_cli("--source", str(library), "--state-dir", str(state), "--dry-run", "--json")
        assert r.code == 0, r.err
        assert r.json()["would_upload"] == 3
    finally:
        holder.kill()
        holder.wait()
