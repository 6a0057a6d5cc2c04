"""The Table index as a sync run maintains it, on Azurite: rows per blob, pending rows after a failed mirror,
history, several devices, awkward names, and the table-creation rule."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from azure.core.exceptions import ServiceRequestError
from azure.data.tables import TableClient, TableServiceClient

from sync_core.config import StorageConfig
from sync_core.index import table_index as ti
from sync_core.index.table_mirror import open_table, plain
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, open_container, table_service
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import RunSummary

from .conftest import det_bytes, run_cli, write_file


def engine_sync(cfg: StorageConfig, src: Path, state_dir: Path, table: TableClient | None = None) -> RunSummary:
    container = open_container(blob_service(cfg), cfg)
    table = table or open_table(table_service(cfg), cfg)
    state = StateDB(state_dir)
    try:
        return SyncEngine(cfg, state, container, SyncOptions(source=src), table=table).run()
    finally:
        state.close()


def rows_by_name(cfg: StorageConfig) -> dict[str, dict[str, Any]]:
    table = TableServiceClient.from_connection_string(cfg.connection_string or "").get_table_client(cfg.table)
    rows = [plain(e) for e in table.list_entities() if e["PartitionKey"] != ti.BINDING_PARTITION]
    by_name = {r[ti.P_BLOB_NAME]: r for r in rows}
    assert len(by_name) == len(rows), "one row per blob"
    return by_name


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cli_sync_writes_one_row_per_blob_with_exact_fields(storage_env, container, cfg, tmp_path):
    src = tmp_path / "lib"
    files = {"2024/a.jpg": det_bytes(1, 3000), "2024/b.mov": det_bytes(2, 5000)}
    for rel, data in files.items():
        write_file(src, rel, data, mtime_ns=1_650_000_000_000_000_001)
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--json")
    assert r.code == 0, r.err
    out = r.json()
    assert (out["uploaded"], out["mirrored"], out["mirror_pending"], out["mirror_error"]) == (2, 2, 0, "")

    blobs = {b.name: b for b in container.list_blobs(include=["metadata"])}
    rows = rows_by_name(cfg)
    assert set(rows) == set(blobs)
    for name, row in rows.items():
        rel = row[ti.P_RELPATH]
        assert name == f"photos/testhost/{sha(files[rel])[:2]}/{sha(files[rel])}/{rel}"
        assert (row["PartitionKey"], row["RowKey"]) == ti.keys_for_blob("photos/testhost", name)
        assert row[ti.P_SIZE] == len(files[rel]) and row[ti.P_SHA256] == sha(files[rel])
        assert row[ti.P_MTIME_NS] == 1_650_000_000_000_000_001
        assert row[ti.P_BLOB_ETAG] == blobs[name].etag
        assert row[ti.P_SOURCE_ID] == "testhost" and row[ti.P_IS_CURRENT] is True
        assert row[ti.P_UPLOADED_AT] is not None and ti.P_DELETED_AT not in row
    # A second run mirrors nothing: nothing changed.
    again = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--json").json()
    assert (again["uploaded"], again["mirrored"]) == (0, 0)


def test_failed_mirror_leaves_rows_pending_and_next_run_mirrors_with_zero_uploads(cfg, container, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    for i in range(3):
        write_file(src, f"{i}.jpg", det_bytes(10 + i, 2000))

    def fail_writes(request) -> None:  # transactions and single-entity writes alike
        if request.http_request.method != "GET":
            raise ServiceRequestError("injected: table service unreachable")

    broken = table_service(cfg, raw_request_hook=fail_writes, retry_total=0).get_table_client(cfg.table)
    first = engine_sync(cfg, src, state_dir, table=broken)
    assert (first.uploaded, first.failed) == (3, 0)  # no file is failed by the mirror
    assert first.mirrored == 0 and first.mirror_pending == 3 and "injected" in first.mirror_error
    assert first.exit_code == 1
    assert rows_by_name(cfg) == {}

    second = engine_sync(cfg, src, state_dir)
    assert (second.uploaded, second.copied, second.bytes_uploaded, second.hashed) == (0, 0, 0, 0)
    assert (second.mirrored, second.mirror_pending, second.exit_code) == (3, 0, 0)
    assert len(rows_by_name(cfg)) == 3


def test_edit_and_delete_leave_history_rows(cfg, container, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    old, new, gone = det_bytes(20, 1500), det_bytes(21, 1600), det_bytes(22, 1700)
    write_file(src, "a.jpg", old)
    write_file(src, "b.jpg", gone)
    engine_sync(cfg, src, state_dir)
    write_file(src, "a.jpg", new, mtime_ns=1_700_000_000_000_000_000)
    (src / "b.jpg").unlink()
    s = engine_sync(cfg, src, state_dir)
    assert (s.uploaded, s.deleted, s.mirrored) == (1, 1, 3)

    rows = rows_by_name(cfg)
    assert len(rows) == 3 and len(list(container.list_blobs())) == 3  # nothing deleted anywhere
    by = {(r[ti.P_RELPATH], r[ti.P_SHA256]): r for r in rows.values()}
    assert by["a.jpg", sha(old)][ti.P_IS_CURRENT] is False and ti.P_DELETED_AT not in by["a.jpg", sha(old)]
    assert by["a.jpg", sha(new)][ti.P_IS_CURRENT] is True
    assert by["b.jpg", sha(gone)][ti.P_IS_CURRENT] is False
    assert by["b.jpg", sha(gone)][ti.P_DELETED_AT] is not None


def test_two_source_ids_share_a_container_and_table(storage_env, container, cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("AZPHOTOSYNC_SOURCE_ID")
    same = det_bytes(30, 2500)
    for dev in ("laptop", "nas"):
        write_file(tmp_path / dev, "DCIM/same.jpg", same)
        write_file(tmp_path / dev, f"DCIM/{dev}-only.jpg", det_bytes(hash(dev) % 1000, 900))
        r = run_cli("--source", str(tmp_path / dev), "--state-dir", str(tmp_path / f"s-{dev}"), "--source-id", dev)
        assert r.code == 0, r.err
    # The source id is remembered: the next runs need no --source-id.
    (tmp_path / "nas" / "DCIM/same.jpg").unlink()
    r = run_cli("--source", str(tmp_path / "nas"), "--state-dir", str(tmp_path / "s-nas"), "--json")
    assert r.code == 0 and r.json()["deleted"] == 1, r.err

    rows = rows_by_name(cfg)
    assert len(rows) == 4
    for name, row in rows.items():
        dev = row[ti.P_SOURCE_ID]
        assert name.startswith(f"photos/{dev}/") and row["PartitionKey"].startswith(f"photos%2F{dev}%2F")
    same_rows = {r[ti.P_SOURCE_ID]: r for r in rows.values() if r[ti.P_RELPATH] == "DCIM/same.jpg"}
    assert same_rows["laptop"][ti.P_IS_CURRENT] is True  # the NAS's deletion did not touch the laptop's row
    assert same_rows["nas"][ti.P_IS_CURRENT] is False


def test_names_table_keys_forbid_round_trip(cfg, container, tmp_path):
    src = tmp_path / "lib"
    names = [
        "we#ird/q?x%41.jpg",
        "ünï/cödé ñ.jpg",
        "d/" + "/".join(["x" * 200] * 3) + ".jpg",
        "h/" + "#" * 200 + ".jpg",
    ]
    for i, rel in enumerate(names):
        write_file(src, rel, det_bytes(40 + i, 700))
    s = engine_sync(cfg, src, tmp_path / "s")
    assert (s.uploaded, s.mirrored, s.mirror_error) == (4, 4, "")
    rows = rows_by_name(cfg)
    assert sorted(r[ti.P_RELPATH] for r in rows.values()) == sorted(names)
    table = table_service(cfg).get_table_client(cfg.table)
    for name, row in rows.items():
        pk, rk = row["PartitionKey"], row["RowKey"]
        assert not any(c in pk + rk for c in "/\\#?") and len(rk.encode("utf-16-le")) <= 1024
        assert (pk, rk) == ti.keys_for_blob("photos", name)
        assert plain(table.get_entity(pk, rk))[ti.P_BLOB_NAME] == name
    long_rows = [r for r in rows.values() if len(r[ti.P_RELPATH]) > 400]
    assert len(long_rows) == 1 and "%2F~" in long_rows[0]["RowKey"]  # too long: hashed, full name kept


def test_missing_table_is_created_by_create_container(storage_env, container, tmp_path):
    """A missing table does not hold the backup back (one line says how to fix it); --create-container
    creates it and the waiting row is mirrored."""
    src = tmp_path / "lib"
    write_file(src, "a.jpg", det_bytes(50, 100))
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--table", "absenttable1")
    assert r.code == 0, r.err
    said = [ln for ln in r.err.splitlines() if "absenttable1" in ln]
    assert len(said) == 1 and "--create-container" in said[0]
    assert len(list(container.list_blobs())) == 1
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--table", "absenttable1",
                "--create-container", "--json")  # fmt: skip
    assert r.code == 0 and r.json()["mirrored"] == 1, r.err


def test_rows_are_mirrored_while_the_uploads_run(monkeypatch, container, cfg, tmp_path):
    """With the live mirror's byte threshold low, rows reach the Table during the uploads; the run's result
    is the same as an end-of-run mirror: one exact row per blob, nothing pending, every row counted once."""
    from sync_core.index import table_mirror

    sent_live: list[int] = []
    real_close = table_mirror.LiveMirror.close

    def close(self: table_mirror.LiveMirror) -> table_mirror.MirrorResult:
        res = real_close(self)
        sent_live.append(res.mirrored)
        return res

    monkeypatch.setattr(table_mirror.LiveMirror, "FLUSH_BYTES", 4000)
    monkeypatch.setattr(table_mirror.LiveMirror, "close", close)
    src = tmp_path / "lib"
    files = {f"d/{i:02d}.jpg": det_bytes(40 + i, 1500 + i) for i in range(24)}
    for rel, data in files.items():
        write_file(src, rel, data)
    s = engine_sync(cfg, src, tmp_path / "state", open_table(table_service(cfg), cfg, create=True))
    assert (s.uploaded, s.mirrored, s.mirror_pending, s.mirror_error) == (24, 24, 0, "")
    assert sent_live and sent_live[0] >= 12  # most went out during the uploads, not after them
    rows = rows_by_name(cfg)
    assert {r[ti.P_RELPATH] for r in rows.values()} == set(files)
    assert all(r[ti.P_SHA256] == sha(files[r[ti.P_RELPATH]]) for r in rows.values())
