"""Resumable large files: SIGKILL the agent in the middle of a block upload; the next run stages only the
blocks the service does not already hold (deterministic block ids + ``get_block_list('uncommitted')``).

The bytes are counted on the wire by the fault proxy, not by the agent's own summary.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.emulator import Azurite
from sync_core.sync.pipeline import SyncOptions

from .conftest import det_bytes, run_cli, write_file
from .faultproxy import FaultPlan, FaultProxy, Request
from .test_faults import proxied_connection_string

MiB = 1024 * 1024
BLOCK = SyncOptions(source=Path(".")).block_size  # the agent's block size
REPO = Path(__file__).resolve().parents[1]


def is_stage_block(r: Request) -> bool:
    return r.method == "PUT" and r.comp == "block"


def staged_bytes(proxy: FaultProxy, since: int = 0) -> int:
    return sum(e.body_bytes for e in proxy.exchanges()[since:] if is_stage_block(e.request) and e.status == 201)


def test_interrupted_large_upload_resumes_with_the_remainder(
    azurite: Azurite, storage_env, container, tmp_path, monkeypatch
):
    size = 6 * BLOCK + 12345  # 7 blocks
    data = det_bytes(42, size)
    src = tmp_path / "lib"
    write_file(src, "video/holiday.MOV", data)
    state = tmp_path / "state"
    args = ["--source", str(src), "--state-dir", str(state), "--max-workers", "2", "--create-container"]
    with FaultProxy(azurite.blob_port) as proxy:
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": proxied_connection_string(azurite, proxy)}
        # Slow every block down a little so the kill lands mid-file, then kill after 3 staged blocks.
        proxy.set_plan(FaultPlan(delay=1.0, delay_seconds=0.3, only=is_stage_block))
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "sync", *args], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while staged_bytes(proxy) < 3 * BLOCK and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.02)
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        # The killed agent's last block may still be relayed from the socket buffer; count it as the
        # killed run's, not the resumed run's.
        proxy.wait_idle()
        before = staged_bytes(proxy)
        assert 3 * BLOCK <= before < size, f"the kill must land in the middle of the file ({before} bytes staged)"
        assert not list(container.list_blobs()), "nothing may be committed by the killed run"
        blob = container.get_blob_client(_expected_names(data, "video/holiday.MOV")[0])
        uncommitted = blob.get_block_list("uncommitted")[1]
        assert sum(b.size for b in uncommitted) >= 3 * BLOCK  # the service kept the staged blocks

        proxy.set_plan(FaultPlan())
        mark = len(proxy.exchanges())
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", env["AZURE_STORAGE_CONNECTION_STRING"])
        r = run_cli(*args, "--json")
        resumed = staged_bytes(proxy, mark)

    assert r.code == 0, r.err
    assert r.json()["uploaded"] == 1
    assert 0 < resumed <= size - 3 * BLOCK  # roughly the remainder, not the whole file
    assert resumed <= size - before + BLOCK  # at most one block more than what the kill left unstaged
    assert r.json()["bytes_uploaded"] == resumed  # the agent's own count agrees with the wire
    names = [b.name for b in container.list_blobs()]
    assert names == list(_expected_names(data, "video/holiday.MOV"))
    got = container.get_blob_client(names[0]).download_blob().readall()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def _expected_names(data: bytes, rel: str) -> list[str]:
    sha = hashlib.sha256(data).hexdigest()
    return [f"photos/testhost/{sha[:2]}/{sha}/{rel}"]
