"""Backups never wait for the index table: without it (missing, forbidden) a sync backs up everything,
keeps the rows pending, says so in one line and exits 0; the next run after the table appears catches up
without reading a file again, and `status` shows the waiting rows and why."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from sync_core.sync.progress import NullProgress

from .conftest import det_bytes, run_cli, write_file


def test_sync_without_the_table_backs_up_then_catches_up(azurite, storage_env, tmp_path: Path) -> None:
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.get_container_client(storage_env["AZURE_STORAGE_CONTAINER"])
    container.create_container()  # the seed's setup: a container, no table
    table = storage_env["AZURE_STORAGE_TABLE"]
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    src, state = tmp_path / "lib", tmp_path / "state"
    for i in range(3):
        write_file(src, f"2024/{i}.jpg", det_bytes(40 + i, 1500))

    first = run_cli("--source", str(src), "--state-dir", str(state))
    assert first.code == 0, first.err
    assert "uploaded 3" in first.out
    said = [ln for ln in (first.out + first.err).splitlines() if "index table" in ln]
    assert len(said) == 1, first.out + first.err
    assert "does not exist" in said[0] and "index mirror" in said[0] and "3 row(s)" in said[0]
    assert len(list(container.list_blobs())) == 3
    with sqlite3.connect(state / "index.db") as db:
        assert db.execute("SELECT count(*) FROM blobs WHERE mirror_pending = 1").fetchone()[0] == 3

    st = run_cli("status", "--state-dir", str(state), "--json", "--local")
    assert st.code == 1
    doc = st.json()
    assert doc["local"]["mirror_pending"] == 3 and "does not exist" in doc["local"]["mirror_reason"]
    assert any("3 row(s) not yet in the Table index" in a and "does not exist" in a for a in doc["attention"])

    tables.create_table(table)
    second = run_cli("--source", str(src), "--state-dir", str(state), "--json")
    assert second.code == 0, second.err
    s = second.json()
    assert (s["hashed"], s["uploaded"], s["mirrored"], s["mirror_pending"], s["index_unavailable"]) == (0, 0, 3, 0, "")
    assert len([e for e in tables.get_table_client(table).list_entities() if "RelPath" in e]) == 3
    assert run_cli("status", "--state-dir", str(state), "--json", "--local").json()["local"]["mirror_pending"] == 0


def test_index_mirror_catches_up_after_the_table_appears(azurite, storage_env, tmp_path: Path) -> None:
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        storage_env["AZURE_STORAGE_CONTAINER"]
    )
    src, state = tmp_path / "lib", tmp_path / "state"
    write_file(src, "a.jpg", det_bytes(50, 900))
    assert run_cli("--source", str(src), "--state-dir", str(state), "--json").json()["mirror_pending"] == 1
    TableServiceClient.from_connection_string(azurite.connection_string).create_table(
        storage_env["AZURE_STORAGE_TABLE"]
    )
    r = run_cli("index", "mirror", "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    assert (r.json()["mirrored"], r.json()["pending"]) == (1, 0)


class Notes(NullProgress):
    """A progress sink that keeps the notes (the lines a run prints besides per-file ones)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str, *, verbose: bool = False) -> None:
        self.lines.append(text)


def test_a_table_gone_after_start_up_fails_neither_the_flag_read_nor_the_run(cfg, tmp_path: Path) -> None:
    """The flagged-rows read and the mirror both find the table gone: the backup is whole, exit 0, one line."""
    from sync_core.local.state import StateDB
    from sync_core.storage.clients import blob_service, open_container, table_service
    from sync_core.sync.pipeline import SyncEngine, SyncOptions

    BlobServiceClient.from_connection_string(cfg.connection_string or "").create_container(cfg.container)
    src = tmp_path / "lib"
    for i in range(2):
        write_file(src, f"{i}.jpg", det_bytes(60 + i, 800))
    gone = table_service(cfg).get_table_client("tablegone" + cfg.table[:8])
    state = StateDB(tmp_path / "state")
    notes = Notes()
    try:
        container = open_container(blob_service(cfg), cfg)
        s = SyncEngine(cfg, state, container, SyncOptions(source=src), notes, table=gone).run()
    finally:
        state.close()
    assert (s.uploaded, s.failed, s.mirror_pending, s.exit_code) == (2, 0, 2, 0), s
    assert s.repair_problems == [] and "does not exist" in s.index_unavailable
    assert len([ln for ln in notes.lines if "index table" in ln]) == 1, notes.lines
