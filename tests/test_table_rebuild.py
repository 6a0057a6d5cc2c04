"""`azphotosync index rebuild|mirror` on Azurite: a lost state dir comes back from the Table, missing Table
rows come back from blob metadata, and no file bytes are sent."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from azure.data.tables import TableServiceClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta, build_metadata
from sync_core.index import table_index as ti
from sync_core.index.table_mirror import plain
from sync_core.local.state import StateDB

from .conftest import det_bytes, run_cli, write_file


def cli(*args: str) -> dict[str, Any]:
    r = run_cli(*args, "--json")
    assert r.code in (0, 1), r.err
    out = r.json()
    out["_code"] = r.code
    return out


def table_rows(cfg: StorageConfig) -> dict[str, dict[str, Any]]:
    t = TableServiceClient.from_connection_string(cfg.connection_string or "").get_table_client(cfg.table)
    return {r[ti.P_BLOB_NAME]: plain(r) for r in t.list_entities() if r["PartitionKey"] != ti.BINDING_PARTITION}


def snapshot(state_dir: Path) -> tuple[set[tuple], set[tuple]]:
    """The facts the index holds (timestamps of the rebuild itself aside)."""
    s = StateDB(state_dir)
    try:
        blobs = {(b.blob_name, b.relpath, b.sha256, b.size, b.mtime_ns, b.etag, b.source_id, b.is_current)
                 for b in s.iter_blobs()}  # fmt: skip
        files = {(f.relpath, f.size, f.mtime_ns, f.sha256, f.blob_name) for f in s.load_files().values()}
        return blobs, files
    finally:
        s.close()


def test_rebuild_round_trip_sends_no_bytes(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "a.jpg", det_bytes(1, 3000))
    write_file(src, "b/c.mov", det_bytes(2, 4000))
    write_file(src, "gone.jpg", det_bytes(3, 1000))
    assert cli("--source", str(src), "--state-dir", str(state_dir))["uploaded"] == 3
    write_file(src, "a.jpg", det_bytes(4, 3100))  # edit: history row
    (src / "gone.jpg").unlink()  # delete: not-current row
    assert cli("--source", str(src), "--state-dir", str(state_dir))["uploaded"] == 1
    before = snapshot(state_dir)
    rows_before = table_rows(cfg)
    assert len(rows_before) == 4

    # Lose the state dir, and lose one Table row as well.
    shutil.rmtree(state_dir)
    lost_name = next(n for n, r in rows_before.items() if r[ti.P_RELPATH] == "b/c.mov")
    t = TableServiceClient.from_connection_string(cfg.connection_string or "").get_table_client(cfg.table)
    t.delete_entity(rows_before[lost_name]["PartitionKey"], rows_before[lost_name]["RowKey"])

    out = cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir))
    assert out["_code"] == 0
    assert (out["table_rows"], out["from_table"], out["from_blobs"], out["blobs_listed"]) == (3, 3, 1, 4)
    assert (out["files_restored"], out["files_confirmed"], out["mirrored"]) == (2, 2, 1)
    assert snapshot(state_dir) == before
    rows_after = table_rows(cfg)
    assert set(rows_after) == set(rows_before)
    keep = (ti.P_RELPATH, ti.P_SIZE, ti.P_MTIME_NS, ti.P_SHA256, ti.P_BLOB_ETAG, ti.P_SOURCE_ID, ti.P_IS_CURRENT)
    assert {k: rows_after[lost_name][k] for k in keep} == {k: rows_before[lost_name][k] for k in keep}

    again = cli("--source", str(src), "--state-dir", str(state_dir))
    assert (again["uploaded"], again["copied"], again["bytes_uploaded"], again["hashed"]) == (0, 0, 0, 0)
    assert (again["unchanged"], again["deleted"], again["mirrored"]) == (2, 0, 0)

    # A second rebuild finds nothing to do.
    twice = cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir))
    assert (twice["from_table"], twice["from_blobs"], twice["files_restored"], twice["mirrored"]) == (0, 0, 0, 0)


def test_an_unreadable_row_is_reported_and_its_blob_reindexed_from_metadata(storage_env, container, cfg, tmp_path):
    """One row another tool wrote with a Size that is not a number stops neither the rebuild nor a restore."""
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "good.jpg", det_bytes(10, 2000))
    write_file(src, "odd.jpg", det_bytes(11, 3000))
    cli("--source", str(src), "--state-dir", str(state_dir))
    rows = table_rows(cfg)
    odd = next(n for n, r in rows.items() if r[ti.P_RELPATH] == "odd.jpg")
    t = TableServiceClient.from_connection_string(cfg.connection_string or "").get_table_client(cfg.table)
    t.upsert_entity({"PartitionKey": rows[odd]["PartitionKey"], "RowKey": rows[odd]["RowKey"], ti.P_SIZE: "big"})
    assert table_rows(cfg)[odd][ti.P_SIZE] == "big"  # plain() leaves what it cannot read as it is

    restored = run_cli("restore", "--to", str(tmp_path / "dest"), "--index", "table", "--json")
    assert restored.code == 1, restored.err
    r = restored.json()
    assert r["restored"] == 1 and (tmp_path / "dest" / "good.jpg").read_bytes() == det_bytes(10, 2000)
    assert [(p["path"], p["detail"]) for p in r["problems"]] == [("'odd.jpg'", "size or mtime is not a number")]

    shutil.rmtree(state_dir)
    out = cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir))
    assert out["_code"] == 1  # reported for a look, even though it was mended
    assert [u["blob_name"] for u in out["unusable"]] == [odd] and "not usable" in out["unusable"][0]["error"]
    assert (out["table_rows"], out["from_table"], out["from_blobs"], out["mirrored"]) == (2, 1, 1, 1)
    assert table_rows(cfg)[odd][ti.P_SIZE] == 3000  # the row was rewritten from the blob's own metadata
    again = cli("--source", str(src), "--state-dir", str(state_dir))
    assert (again["uploaded"], again["bytes_uploaded"], again["unchanged"]) == (0, 0, 2)


def test_rebuild_without_source_rehashes_locally_but_uploads_nothing(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "x.jpg", det_bytes(5, 2000))
    cli("--source", str(src), "--state-dir", str(state_dir))
    shutil.rmtree(state_dir)
    out = cli("index", "rebuild", "--state-dir", str(state_dir))
    assert (out["from_table"], out["files_restored"], out["files_confirmed"]) == (1, 1, 0)
    again = cli("--source", str(src), "--state-dir", str(state_dir))
    assert (again["uploaded"], again["bytes_uploaded"], again["touched"]) == (0, 0, 1)


def test_rebuild_from_blobs_only_picks_the_newest_version_as_current(storage_env, container, cfg, tmp_path):
    """An empty Table (say, deleted): rows come back from metadata; unusable and foreign blobs are reported."""
    import hashlib

    def put(rel: str, data: bytes, mtime_ns: int, source_id: str = "testhost", meta: dict | None = None) -> str:
        sha = hashlib.sha256(data).hexdigest()
        name = f"photos/testhost/{sha[:2]}/{sha}/{rel}"
        md = meta or build_metadata(BlobMeta(sha, rel, len(data), mtime_ns, source_id))
        container.get_blob_client(name).upload_blob(data, metadata=md)
        return name

    old = put("p.jpg", det_bytes(6, 100), 1_000)
    new = put("p.jpg", det_bytes(7, 100), 2_000)
    put("theirs.jpg", det_bytes(8, 100), 1_000, source_id="nas")
    bad = put("bad.jpg", det_bytes(9, 100), 1_000, meta={"sha256": "0" * 64})
    out = cli("index", "rebuild", "--state-dir", str(tmp_path / "s"))
    assert out["_code"] == 1  # an unusable blob is a problem to look at
    assert (out["from_blobs"], out["other_sources"], out["mirrored"]) == (2, 1, 2)
    assert [u["blob_name"] for u in out["unusable"]] == [bad]
    rows = table_rows(cfg)
    assert set(rows) == {old, new}
    assert rows[new][ti.P_IS_CURRENT] is True and rows[old][ti.P_IS_CURRENT] is False


def test_index_mirror_writes_pending_rows(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "m.jpg", det_bytes(10, 500))
    cli("--source", str(src), "--state-dir", str(state_dir))
    s = StateDB(state_dir)
    s.set_mirror_pending([b.blob_name for b in s.iter_blobs()])
    s.commit()
    assert s.count_mirror_pending() == 1
    s.close()
    out = cli("index", "mirror", "--state-dir", str(state_dir))
    assert (out["mirrored"], out["transactions"], out["pending"], out["_code"]) == (1, 1, 0, 0)
