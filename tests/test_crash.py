"""Crash safety: SIGKILL the agent at random moments of syncs of a mixed library, rerunning each time.

Afterwards every file is in the container exactly once under its contract name, the SQLite index, the
Table and the container agree, no recorded blob is missing from the container, and no blob exists that
the index does not know. The kill also leaves the state-dir lock behind, so every rerun takes a lock of a
dead process over.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from azure.data.tables import TableServiceClient

from agent.emulator import Azurite
from sync_core.index.table_index import P_BLOB_NAME, P_IS_CURRENT
from sync_core.index.table_mirror import prefix_rows

from .conftest import det_bytes, run_cli, write_file

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]
KILLS = 10
PREFIX = "photos/testhost"


def add_files(src: Path, rng: random.Random, round_no: int, *, small: int, large: int) -> None:
    for i in range(small):
        size = rng.randint(2_000, 60_000)
        write_file(src, f"r{round_no:02d}/small/{i:03d}.jpg", det_bytes(round_no * 1000 + i, size))
    for i in range(large):
        size = rng.randint(9 * MiB, 12 * MiB)  # above the 8 MiB single-put limit: the block path
        write_file(src, f"r{round_no:02d}/video/{i}.MOV", det_bytes(round_no * 1000 + 500 + i, size))
    # The same content under a second name: the server-side copy path.
    dup = src / f"r{round_no:02d}/small/000.jpg"
    if dup.exists():
        write_file(src, f"r{round_no:02d}/copies/000-copy.jpg", dup.read_bytes())


def contract_names(src: Path) -> dict[str, str]:
    out = {}
    for p in src.rglob("*"):
        if p.is_file():
            rel = p.relative_to(src).as_posix()
            sha = hashlib.sha256(p.read_bytes()).hexdigest()
            out[f"{PREFIX}/{sha[:2]}/{sha}/{rel}"] = rel
    return out


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(azurite: Azurite, storage_env, container, tmp_path):
    rng = random.Random(20261125)
    src, state = tmp_path / "lib", tmp_path / "state"
    add_files(src, rng, 0, small=80, large=2)
    # A bandwidth cap keeps every run busy for seconds, so the kills land mid-run however fast the machine is.
    cmd = [sys.executable, "-m", "agent.cli", "sync", "--source", str(src), "--state-dir", str(state),
           "--bwlimit", "5MB"]  # fmt: skip
    landed = 0
    for k in range(KILLS):
        if k:  # every run gets a large file to send: >= 2 s at the cap, so the kill lands mid-run
            add_files(src, rng, k, small=15, large=1)
        proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, 2.0))
        if proc.poll() is None:
            landed += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    print(f"{landed}/{KILLS} kills landed mid-run")
    assert landed >= KILLS // 2, f"only {landed} kills landed mid-run"

    final = run_cli("--source", str(src), "--state-dir", str(state), "--json")
    assert final.code == 0, final.err
    assert final.json()["failed"] == 0

    expected = contract_names(src)
    in_container = [b.name for b in container.list_blobs()]
    assert len(in_container) == len(set(in_container))
    # Every file exactly once under its contract name, and no blob that is not a file's contract name.
    assert sorted(in_container) == sorted(expected)
    for b in container.list_blobs(include=["metadata"]):
        assert b.metadata["sha256"] == b.name.split("/")[3]

    with sqlite3.connect(state / "index.db") as db:
        blobs = dict(db.execute("SELECT blob_name, is_current FROM blobs"))
        files = dict(db.execute("SELECT relpath, blob_name FROM files"))
        pending = db.execute("SELECT count(*) FROM blobs WHERE mirror_pending = 1").fetchone()[0]
    assert set(blobs) == set(in_container)  # nothing recorded is missing; nothing stored is unknown
    assert all(blobs.values())
    assert {v: k for k, v in files.items()} == expected

    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )
    rows = list(prefix_rows(table, PREFIX))
    assert sorted(r[P_BLOB_NAME] for r in rows) == sorted(in_container)
    assert all(r[P_IS_CURRENT] for r in rows)
    assert pending == 0

    # A clean rerun has nothing left to do.
    again = run_cli("--source", str(src), "--state-dir", str(state), "--json").json()
    assert again["unchanged"] == len(expected) and again["uploaded"] == again["copied"] == 0


def test_records_become_durable_within_seconds_not_only_every_500(tmp_path):
    """A crash loses at most a few seconds of records: a small pending batch is committed once it is old."""
    from sync_core.local.state import StateDB

    db = StateDB(tmp_path)
    try:
        db.record_blob(relpath="a.jpg", size=1, mtime_ns=1, inode=1, sha256="0" * 64,
                       blob_name="p/00/" + "0" * 64 + "/a.jpg", etag="e", source_id="s")  # fmt: skip
        assert not db.maybe_commit()  # young and small: keep batching
        assert db.maybe_commit(max_age=0.0)
        with sqlite3.connect(tmp_path / "index.db") as other:  # what a crash right now would leave
            assert other.execute("SELECT relpath FROM files").fetchall() == [("a.jpg",)]
    finally:
        db.close()
