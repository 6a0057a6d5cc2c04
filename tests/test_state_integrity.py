"""What one odd file, row or state dir may cost: never the whole run. Unreadable entries are not deleted,
out-of-range numbers are stored or rejected row by row, a damaged index is set aside, and a state dir or an
index table is bound to the one library or container it describes."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from azure.data.tables import EdmType, EntityProperty, TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import K_MTIME_NS
from sync_core.index import table_index as ti
from sync_core.index.table_mirror import plain
from sync_core.local.state import StateDB

from .conftest import det_bytes, run_cli, write_file

INT64_MAX = 2**63 - 1
NOBODY = 65534
YEAR_2300_NS = 10_413_792_000 * 10**9  # past 2262-04-11: more nanoseconds than an int64 holds
MOON_LANDING_NS = -14_182_940 * 10**9  # 1969-07-20T20:17:40Z


def sync(src: Path, state_dir: Path, *extra: str) -> dict[str, Any]:
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state_dir), "--json", *extra)
    assert r.code in (0, 1), r.err
    out = r.json()
    out["_code"] = r.code
    return out


def table_client(cfg: StorageConfig):
    return TableServiceClient.from_connection_string(cfg.connection_string or "").get_table_client(cfg.table)


def rows_by_path(cfg: StorageConfig) -> dict[str, dict[str, Any]]:
    return {r[ti.P_RELPATH]: plain(r) for r in table_client(cfg).list_entities() if ti.P_RELPATH in r}


# -- timestamps ---------------------------------------------------------------------------------------------
def test_a_file_dated_after_2262_is_backed_up_and_then_left_alone(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "future.jpg", det_bytes(1, 2000), mtime_ns=YEAR_2300_NS)
    write_file(src, "normal.jpg", det_bytes(2, 2000))
    assert (src / "future.jpg").stat().st_mtime_ns == YEAR_2300_NS
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state_dir), "--json")
    assert (r.code, r.json()["uploaded"], r.json()["failed"]) == (0, 2, 0), r.err
    assert "future.jpg: modification time outside 1677-2262" in r.err  # clamped, and said so
    again = sync(src, state_dir)
    assert (again["_code"], again["unchanged"], again["hashed"]) == (0, 2, 0)
    assert rows_by_path(cfg)["future.jpg"][ti.P_MTIME_NS] == INT64_MAX  # the nearest the index can hold
    # The blob keeps the true time: a restore from the listing gives it back exactly.
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--index", "listing", "--json")
    assert r.code == 0, r.err
    assert (tmp_path / "dest" / "future.jpg").stat().st_mtime_ns == YEAR_2300_NS
    r = run_cli("restore", "--to", str(tmp_path / "dest2"), "--index", "table", "--json")
    assert r.code == 0, r.err
    assert (tmp_path / "dest2" / "future.jpg").read_bytes() == det_bytes(1, 2000)


def test_a_photo_from_before_1970_is_restored_from_the_index(storage_env, container, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "1969/apollo.jpg", det_bytes(3, 3000), mtime_ns=MOON_LANDING_NS)
    assert sync(src, state_dir)["uploaded"] == 1
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--index", "table", "--json")
    assert r.code == 0, r.err
    assert r.json()["restored"] == 1
    assert (tmp_path / "dest" / "1969/apollo.jpg").stat().st_mtime_ns == MOON_LANDING_NS


def test_absurd_numbers_written_by_another_tool_are_that_rows_problem_only(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        write_file(src, name, det_bytes(10 + i, 1500))
    assert sync(src, state_dir)["uploaded"] == 3
    rows = rows_by_path(cfg)
    # The Table row of a.jpg: MtimeNs as a Double of 1e30; the blob of b.jpg: mtimens=10**30.
    table_client(cfg).upsert_entity(
        {"PartitionKey": rows["a.jpg"]["PartitionKey"], "RowKey": rows["a.jpg"]["RowKey"],
         ti.P_MTIME_NS: EntityProperty(1e30, EdmType.DOUBLE)},
        mode=UpdateMode.MERGE,
    )  # fmt: skip
    b_blob = container.get_blob_client(rows["b.jpg"][ti.P_BLOB_NAME])
    md = b_blob.get_blob_properties().metadata
    b_blob.set_blob_metadata({**md, K_MTIME_NS: str(10**30)})

    r = run_cli("restore", "--to", str(tmp_path / "t"), "--index", "table", "--json")
    assert r.code == 1, r.err
    out = r.json()
    assert out["restored"] == 2 and [p["path"] for p in out["problems"]] == ["'a.jpg'"]
    assert "out of range" in out["problems"][0]["detail"]

    r = run_cli("restore", "--to", str(tmp_path / "l"), "--index", "listing", "--json")
    assert r.code == 1, r.err
    out = r.json()
    assert out["restored"] == 2 and [p["path"] for p in out["problems"]] == ["'b.jpg'"]

    shutil.rmtree(state_dir)
    r = run_cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir), "--json")
    assert r.code == 1, r.err  # reported, not a crash
    out = r.json()
    assert {u["blob_name"] for u in out["unusable"]} == {rows["a.jpg"][ti.P_BLOB_NAME]}
    assert out["from_table"] == 2 and out["from_blobs"] == 1  # a.jpg's row came back from its blob's metadata
    s = StateDB(state_dir)
    try:
        assert set(s.load_files()) == {"a.jpg", "b.jpg", "c.jpg"}
    finally:
        s.close()


# -- unreadable is not deleted --------------------------------------------------------------------------------
def test_entries_that_cannot_be_read_stay_backed_up(storage_env, container, cfg, tmp_path, monkeypatch):
    from sync_core.local import scanner

    src, state_dir = tmp_path / "lib", tmp_path / "s"
    names = [
        "d/eacces.jpg",
        "d/eio.jpg",
        "estale.jpg",
        "d/sub/in-unlistable.jpg",
        "enoent.jpg",
        "removed.jpg",
        "ok.jpg",
    ]
    for i, rel in enumerate(names):
        write_file(src, rel, det_bytes(20 + i, 1000))
    assert sync(src, state_dir)["uploaded"] == 7
    (src / "removed.jpg").unlink()

    errors = {"eacces.jpg": errno.EACCES, "eio.jpg": errno.EIO, "estale.jpg": errno.ESTALE, "enoent.jpg": errno.ENOENT}
    real_lstat, real_list = scanner._lstat, scanner._list_dir

    def lstat(entry: os.DirEntry[str]) -> os.stat_result:
        if entry.name in errors:
            code = errors[entry.name]
            raise (FileNotFoundError if code == errno.ENOENT else OSError)(code, os.strerror(code), entry.path)
        return real_lstat(entry)

    def list_dir(path: str) -> list[os.DirEntry[str]]:
        if path.endswith("/sub"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_list(path)

    monkeypatch.setattr(scanner, "_lstat", lstat)
    monkeypatch.setattr(scanner, "_list_dir", list_dir)
    out = sync(src, state_dir)
    assert out["_code"] == 1 and out["failed"] == 4
    assert out["deleted"] == 2  # only the two positively absent: removed.jpg, and enoent.jpg (stat says ENOENT)
    rows = rows_by_path(cfg)
    current = {rel for rel, r in rows.items() if r[ti.P_IS_CURRENT]}
    assert current == {"d/eacces.jpg", "d/eio.jpg", "estale.jpg", "d/sub/in-unlistable.jpg", "ok.jpg"}
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--index", "table", "--json")
    assert r.code == 0 and r.json()["restored"] == 5, r.err


def test_a_folder_that_can_be_read_but_not_searched_as_a_real_user(storage_env, container, cfg):
    """``chmod 600`` on a folder, seen by an unprivileged user (root bypasses permissions): its names are
    listed but none can be stat'ed. Runs the real command as ``nobody`` through ``setpriv``."""
    base = Path(tempfile.mkdtemp(prefix="azps-nobody-"))
    try:
        src, state_dir = base / "lib", base / "state"
        write_file(src, "locked/a.jpg", det_bytes(40, 1000))
        write_file(src, "locked/deeper/b.jpg", det_bytes(41, 1000))
        write_file(src, "open/c.jpg", det_bytes(42, 1000))
        state_dir.mkdir()
        for p in (base, *base.rglob("*")):
            os.chown(p, NOBODY, NOBODY)

        def as_nobody() -> dict[str, Any]:
            env = {**os.environ, "HOME": str(base), "PYTHONPATH": str(Path(__file__).parents[1])}
            cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m",
                   "agent.cli", "sync", "--source", str(src), "--state-dir", str(state_dir), "--json"]  # fmt: skip
            p = subprocess.run(cmd, env=env, cwd=base, capture_output=True, text=True, timeout=300)
            assert p.returncode in (0, 1), p.stderr
            return {**json.loads(p.stdout), "_code": p.returncode}

        assert as_nobody()["uploaded"] == 3
        os.chmod(src / "locked", 0o600)
        out = as_nobody()
        assert (out["_code"], out["deleted"], out["failed"]) == (1, 0, 2)  # a.jpg (stat), deeper/ (listing)
        current = {rel for rel, r in rows_by_path(cfg).items() if r[ti.P_IS_CURRENT]}
        assert current == {"locked/a.jpg", "locked/deeper/b.jpg", "open/c.jpg"}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(base / "lib" / "locked", 0o700)
        shutil.rmtree(base)


# -- one state dir, one library ---------------------------------------------------------------------------------
def test_a_state_dir_is_bound_to_its_library(storage_env, container, cfg, tmp_path):
    lib1, lib3, state_dir = tmp_path / "lib1", tmp_path / "lib3", tmp_path / "s"
    write_file(lib1, "one.jpg", det_bytes(50, 1000))
    write_file(lib3, "three.jpg", det_bytes(51, 1000))
    assert sync(lib1, state_dir)["uploaded"] == 1
    r = run_cli("sync", "--source", str(lib3), "--state-dir", str(state_dir), "--json")
    assert r.code == 2
    assert "holds the index of" in r.err and "--state-dir" in r.err and len(r.err.strip().splitlines()) == 1
    again = sync(lib1, state_dir)
    assert (again["_code"], again["unchanged"], again["deleted"], again["hashed"]) == (0, 1, 0, 0)
    assert {rel for rel, row in rows_by_path(cfg).items() if row[ti.P_IS_CURRENT]} == {"one.jpg"}
    # The library itself moved: say so once, and nothing is re-read or deleted.
    moved = tmp_path / "lib1-moved"
    lib1.rename(moved)
    assert run_cli("sync", "--source", str(moved), "--state-dir", str(state_dir), "--json").code == 2
    out = sync(moved, state_dir, "--source-moved")
    assert (out["_code"], out["unchanged"], out["deleted"]) == (0, 1, 0)
    assert sync(moved, state_dir)["unchanged"] == 1


# -- a damaged index ----------------------------------------------------------------------------------------------
def _damage(db: Path, *, header: bool) -> None:
    """Overwrite the file's header (not a database any more), or every page after the first (the header
    still parses; reading the rows fails)."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file: the damage is what is read
    conn.close()
    size = db.stat().st_size
    with open(db, "r+b") as f:
        if header:
            f.write(b"this is not a database" * 10)
        else:
            f.seek(4096)
            f.write(det_bytes(99, size - 4096))


def _first_library(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A library synced under a source id given on the command line only (remembered in the state dir)."""
    monkeypatch.delenv("AZPHOTOSYNC_SOURCE_ID")
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    for i in range(5):
        write_file(src, f"d{i % 2}/p{i}.jpg", det_bytes(60 + i, 1500))
    assert sync(src, state_dir, "--source-id", "camera1")["uploaded"] == 5
    return src, state_dir


def test_a_damaged_index_is_reported_and_rebuilt(storage_env, container, tmp_path, monkeypatch):
    src, state_dir = _first_library(tmp_path, monkeypatch)
    db = state_dir / "index.db"
    _damage(db, header=True)
    for side in ("-wal", "-shm"):  # as a crashed writer leaves them (a clean close removes them)
        db.with_name(db.name + side).touch()

    for cmd in (["sync", "--source", str(src)], ["status"]):
        r = run_cli(*cmd, "--state-dir", str(state_dir))
        assert r.code == 2, (cmd, r.err)
        line = r.err.strip()
        assert len(line.splitlines()) == 1 and "is damaged" in line and "azphotosync index rebuild" in line
    assert db.exists() and not list(state_dir.glob("index.db.damaged-*"))  # sync and status change nothing

    # restore needs only the source id, remembered beside the index too
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--state-dir", str(state_dir), "--json")
    assert r.code == 0, r.err
    assert r.json()["restored"] == 5 and "is damaged" in r.err

    r = run_cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir), "--json")
    assert r.code == 0, r.err
    assert "moved aside" in r.err and r.json()["files_restored"] == 5
    aside = {p.name.rsplit("-", 1)[-1] for p in state_dir.glob("index.db.damaged-*")}
    assert aside == {"wal", "shm"} | {p.name.rsplit("-", 1)[-1] for p in state_dir.glob("index.db.damaged-*Z")}
    assert len(list(state_dir.glob("index.db.damaged-*Z"))) == 1  # the main file, with its -wal and -shm
    again = sync(src, state_dir)
    assert (again["_code"], again["unchanged"], again["uploaded"], again["deleted"]) == (0, 5, 0, 0)


def test_damaged_pages_behind_a_good_header(storage_env, container, tmp_path, monkeypatch):
    src, state_dir = _first_library(tmp_path, monkeypatch)
    _damage(state_dir / "index.db", header=False)
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state_dir))
    assert r.code == 2 and "azphotosync index rebuild" in r.err, r.err
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--state-dir", str(state_dir), "--json")
    assert r.code == 0 and r.json()["restored"] == 5, r.err
    r = run_cli("index", "rebuild", "--source", str(src), "--state-dir", str(state_dir), "--json")
    assert r.code == 0, r.err
    assert sync(src, state_dir)["unchanged"] == 5


def test_an_index_from_a_newer_version_is_reported_alike_by_every_command(storage_env, container, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    write_file(src, "a.jpg", det_bytes(70, 1000))
    assert sync(src, state_dir)["uploaded"] == 1
    conn = sqlite3.connect(state_dir / "index.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    messages = set()
    for cmd in (["sync", "--source", str(src)], ["sync", "--dry-run", "--source", str(src)], ["status"],
                ["index", "rebuild"], ["index", "mirror"]):  # fmt: skip
        r = run_cli(*cmd, "--state-dir", str(state_dir))
        assert r.code == 2, (cmd, r.err)
        messages.add(r.err.strip())
    r = run_cli("restore", "--to", str(tmp_path / "dest"), "--state-dir", str(state_dir))
    assert r.code == 0, r.err
    messages.add(r.err.strip().splitlines()[0].replace("azphotosync: warning: ", "azphotosync: error: "))
    assert len(messages) == 1 and "newer azphotosync (schema 99" in messages.pop()
    assert not list(state_dir.glob("index.db.damaged-*"))


# -- one index table, one container -------------------------------------------------------------------------------
def test_an_index_table_is_bound_to_its_container(azurite, storage_env, container, cfg, tmp_path):
    lib1, lib2 = tmp_path / "lib1", tmp_path / "lib2"
    write_file(lib1, "one.jpg", det_bytes(80, 1000))
    write_file(lib2, "two.jpg", det_bytes(81, 1000))
    c2 = f"{cfg.container[:-2]}c2"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(c2)
    assert sync(lib1, tmp_path / "s1")["uploaded"] == 1

    # Same (default) table, same prefix, another container: refused before anything is written.
    for cmd in (["sync", "--source", str(lib2), "--state-dir", str(tmp_path / "s2")], ["verify"],
                ["restore", "--to", str(tmp_path / "dest"), "--index", "table"]):  # fmt: skip
        r = run_cli(*cmd, "--container", c2)
        assert r.code == 2, (cmd, r.err)
        line = r.err.strip().splitlines()[-1]
        assert f"already indexes container {cfg.container!r}" in line and repr(c2) in line and "--table" in line
    assert set(rows_by_path(cfg)) == {"one.jpg"}
    r = run_cli("verify", "--json")
    assert r.code == 0, r.err  # container 1 verifies clean: nothing of container 2's in its table

    # A table from before the binding is bound by its next sync; the other container still gets its own table.
    table_client(cfg).delete_entity(ti.BINDING_PARTITION, ti.BINDING_ROW)
    assert sync(lib1, tmp_path / "s1")["unchanged"] == 1
    assert table_client(cfg).get_entity(ti.BINDING_PARTITION, ti.BINDING_ROW)["Container"] == cfg.container
    assert run_cli("sync", "--source", str(lib2), "--state-dir", str(tmp_path / "s2"), "--container", c2).code == 2
    out = sync(lib2, tmp_path / "s2", "--container", c2, "--table", f"{cfg.table}two", "--create-container")
    assert (out["_code"], out["uploaded"]) == (0, 1)
