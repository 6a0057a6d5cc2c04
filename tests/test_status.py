"""`azphotosync status` on Azurite: local figures, the last sync, mirror lag, the latest verification report
and the rows the cloud flagged — and exit 1 exactly when something needs attention."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient

from sync_core.errors import ConfigError
from sync_core.local.state import StateDB
from sync_core.verify.reports import build_report, write_report
from tests.conftest import det_bytes, run_cli, write_file


@pytest.fixture
def synced(tmp_path: Path, container: ContainerClient) -> tuple[Path, Path]:
    src, state = tmp_path / "src", tmp_path / "state"
    write_file(src, "a.jpg", det_bytes(1, 1000))
    write_file(src, "b/c.mp4", det_bytes(2, 2500))
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    return src, state


def status(state: Path, *extra: str) -> tuple[int, dict]:
    r = run_cli("status", "--state-dir", str(state), "--json", *extra)
    assert r.code in (0, 1), r.err
    return r.code, r.json()


def test_all_well_after_a_clean_sync(synced: tuple[Path, Path], storage_env: dict[str, str]) -> None:
    src, state = synced
    code, doc = status(state, "--source", str(src), "--reports-container", f"r{uuid.uuid4().hex[:20]}")
    assert code == 0, doc["attention"]
    assert doc["local"] == {
        "files": 2, "bytes": 3500, "blobs": 2, "mirror_pending": 0, "pending_files": 0, "pending_bytes": 0,
    }  # fmt: skip
    assert doc["last_sync"]["state"] == "ok" and doc["last_sync"]["uploaded"] == 2
    assert doc["verification"] is None  # no report yet: said, but not a problem
    assert doc["flagged"] == {"count": 0, "rows": []}
    assert (doc["source_id"], doc["prefix"], doc["container"]) == (
        "testhost", "photos/testhost", storage_env["AZURE_STORAGE_CONTAINER"],
    )  # fmt: skip
    r = run_cli("status", "--state-dir", str(state), "--reports-container", f"r{uuid.uuid4().hex[:20]}")
    assert r.code == 0 and "all well" in r.out and "2 file(s)" in r.out


def test_status_reflects_verification_report_and_flagged_rows(
    synced: tuple[Path, Path], azurite, storage_env: dict[str, str]
) -> None:
    _, state = synced
    reports = f"r{uuid.uuid4().hex[:20]}"
    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )
    row = next(e for e in table.list_entities() if e.get("RelPath") == "b/c.mp4")
    problem = {"blob_name": row["BlobName"], "verdict": "missing", "detail": "blob not found"}
    report = build_report(
        run_id="run-1", started_at="2026-11-25T03:00:00Z",
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        container=storage_env["AZURE_STORAGE_CONTAINER"], table=storage_env["AZURE_STORAGE_TABLE"],
        summary={"rows": 2, "partitions": 2, "counts": {"ok": 1, "missing": 1}}, problems=[problem],
    )  # fmt: skip
    write_report(svc, reports, report)
    # The cloud flags the row (as the verifier does) for the agent's next run.
    table.update_entity(
        {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], "VerifyStatus": "missing",
         "VerifyDetail": "blob not found"},
        mode=UpdateMode.MERGE,
    )  # fmt: skip

    code, doc = status(state, "--reports-container", reports)
    assert code == 1
    v = doc["verification"]
    assert (v["run_id"], v["rows"], v["problems"], v["clean"]) == ("run-1", 2, 1, False)
    assert {k: n for k, n in v["counts"].items() if n} == {"ok": 1, "missing": 1}
    assert doc["flagged"]["count"] == 1
    assert doc["flagged"]["rows"][0] | {} == {
        "path": "b/c.mp4", "verdict": "missing", "detail": "blob not found", "blob_name": row["BlobName"],
    }  # fmt: skip
    text = " ".join(doc["attention"])
    assert "found problems: missing 1" in text and "1 blob(s) flagged" in text

    r = run_cli("status", "--state-dir", str(state), "--reports-container", reports)
    assert r.code == 1 and "missing" in r.out and "b/c.mp4" in r.out and "attention" in r.out


def test_last_run_failures_mirror_lag_and_pending_files(synced: tuple[Path, Path]) -> None:
    src, state_dir = synced
    db = StateDB(state_dir)
    run_id = db.start_run("sync")
    summary = {"uploaded": 3, "failed": 2, "failures": [{"path": "x.jpg", "error": "cannot read: Permission denied"},
                                                        {"path": "y.jpg", "error": "storage error"}]}  # fmt: skip
    db.finish_run(run_id, 1, json.dumps(summary))
    blob = next(db.iter_blobs()).blob_name
    db.set_mirror_pending([blob])
    db.commit()
    db.close()
    write_file(src, "new.jpg", det_bytes(3, 700))
    write_file(src, "notes.txt", b"not media")

    code, doc = status(state_dir, "--local", "--source", str(src))
    assert code == 1
    assert "verification" not in doc  # --local: no request to Azure
    assert (doc["local"]["mirror_pending"], doc["local"]["pending_files"], doc["local"]["pending_bytes"]) == (1, 1, 700)
    last = doc["last_sync"]
    assert (last["failed"], last["exit_code"], last["state"]) == (2, 1, "problems")
    assert [f["path"] for f in last["failures"]] == ["x.jpg", "y.jpg"]
    assert last["finished_at"] and last["finished_at"].endswith("Z")
    text = " ".join(doc["attention"])
    assert "failed 2 file(s)" in text and "1 row(s) not yet in the Table" in text
    _, doc = status(state_dir, "--local", "--source", str(src), "--all-files", "--exclude", "new.*")
    assert (doc["local"]["pending_files"], doc["local"]["pending_bytes"]) == (1, 9)  # as sync would see it


def test_stale_sync_and_never_synced(
    tmp_path: Path, synced: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, state = synced
    import agent.status_cmd as status_cmd

    real = time.time
    monkeypatch.setattr(status_cmd.time, "time", lambda: real() + 5 * 86400)
    code, doc = status(state, "--local")
    assert code == 1 and any("no sync since" in a for a in doc["attention"])
    code, doc = status(state, "--local", "--stale-days", "10")
    assert code == 0

    code, doc = status(tmp_path / "fresh", "--local")
    assert code == 1 and doc["last_sync"] is None and doc["local"]["files"] == 0
    assert not (tmp_path / "fresh").exists()  # status never creates or changes the state dir


def test_unreachable_cloud_is_attention(synced: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, state = synced
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", "no-such-container")
    code, doc = status(state)
    assert code == 1 and "does not exist" in doc["cloud_error"]


# -- the run row records what the process really did ----------------------------------------------------------
@pytest.mark.parametrize(
    ("raised", "code", "state_label"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (RuntimeError("boom"), 4, "crashed"),
        (ConfigError("cannot write the index in state dir: disk full"), 2, "configuration error"),
    ],
)
def test_an_interrupted_or_crashed_sync_is_never_ok(
    synced: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: int, state_label: str
) -> None:
    """The run is stopped in the middle (Ctrl-C, an internal error, a full disk) after its first file:
    the run row keeps the process's exit code, and ``status`` says so and exits 1."""
    from agent.console import ConsoleProgress

    src, state = synced
    write_file(src, "new1.jpg", det_bytes(11, 900))
    write_file(src, "new2.jpg", det_bytes(12, 900))

    file_done = ConsoleProgress.file_done

    def stop(self: ConsoleProgress, outcome: object) -> None:
        raise raised

    monkeypatch.setattr(ConsoleProgress, "file_done", stop)
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state))
    assert r.code == code, r.err
    monkeypatch.setattr(ConsoleProgress, "file_done", file_done)
    exit_code, doc = status(state, "--local")
    assert doc["last_sync"]["exit_code"] == code and doc["last_sync"]["state"] == state_label
    assert exit_code == 1 and any(f"exit code {code}" in a for a in doc["attention"]), doc["attention"]
    text = run_cli("status", "--state-dir", str(state), "--local")
    assert f"({state_label})" in text.out and "all well" not in text.out


def test_a_sync_that_never_finished_needs_attention_unless_it_is_still_running(synced: tuple[Path, Path]) -> None:
    """A run killed outright (SIGKILL, power loss) leaves its row unfinished: "did not finish", exit 1. While
    a live process holds the state dir's lock the same row is "running", which is not a problem."""
    from agent.lock import StateLock

    _, state = synced
    db = StateDB(state)
    db.start_run("sync")
    db.close()
    code, doc = status(state, "--local")
    assert doc["last_sync"]["state"] == "did not finish"
    assert code == 1 and any("did not finish" in a for a in doc["attention"])
    with StateLock(state, "sync"):
        code, doc = status(state, "--local")
    assert doc["last_sync"]["state"] == "running" and code == 0, doc["attention"]


def test_a_sync_running_for_days_is_named_as_such_not_as_missing(synced: tuple[Path, Path]) -> None:
    """A sync that has held the lock longer than --stale-days is a running sync to look at, not "no sync since"."""
    import sqlite3

    from agent.lock import StateLock

    _, state = synced
    db = StateDB(state)
    run = db.start_run("sync")
    db.close()
    with sqlite3.connect(state / "index.db") as conn:
        conn.execute("UPDATE runs SET started_at = started_at - 4 * 86400 WHERE id = ?", (run,))
    with StateLock(state, "sync"):
        code, doc = status(state, "--local")
    assert doc["last_sync"]["state"] == "running" and doc["last_sync"]["running_hours"] >= 96
    assert code == 1 and any("has been running for 96 hours" in a for a in doc["attention"]), doc["attention"]
    assert not any("no sync since" in a for a in doc["attention"])


def test_a_file_that_is_always_changing_needs_attention_after_three_runs(
    synced: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file rewritten between the scan and its read on every run is skipped ("changed since it was
    scanned") and each run alone ends well; the third such run in a row exits 1 and ``status`` names it."""
    import os

    from agent.console import ConsoleProgress

    src, state = synced
    busy = write_file(src, "busy.jpg", det_bytes(21, 1200))
    planned = ConsoleProgress.planned

    def rewrite_after_scan(self: ConsoleProgress, files: int, total_bytes: int) -> None:
        st = busy.stat()
        os.utime(busy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # written again, just after the scan
        planned(self, files, total_bytes)

    monkeypatch.setattr(ConsoleProgress, "planned", rewrite_after_scan)
    codes = []
    for _ in range(3):
        r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--json")
        codes.append(r.code)
        assert r.json()["skipped"] == 1 and r.json()["uploaded"] == 0
    assert codes == [0, 0, 1]
    code, doc = status(state, "--local")
    assert code == 1 and doc["last_sync"]["always_changing"] == ["busy.jpg"]
    assert any("busy.jpg" in a and "not backed up" in a for a in doc["attention"]), doc["attention"]
    # Once it holds still, it is backed up and the attention goes away.
    monkeypatch.setattr(ConsoleProgress, "planned", planned)
    assert run_cli("sync", "--source", str(src), "--state-dir", str(state)).code == 0
    code, doc = status(state, "--local")
    assert code == 0, doc["attention"]
