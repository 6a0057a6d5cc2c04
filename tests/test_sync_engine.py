"""The sync pipeline against a real Azurite: names, metadata, incremental reruns, dedupe, edge cases."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import unicodedata
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import parse_metadata
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, open_container
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import NullProgress, RunSummary

from .conftest import det_bytes, write_file

MiB = 1024 * 1024


def do_sync(cfg: StorageConfig, source: Path, state_dir: Path, progress=None, **kw) -> RunSummary:
    container = open_container(blob_service(cfg), cfg)
    state = StateDB(state_dir)
    try:
        return SyncEngine(cfg, state, container, SyncOptions(source=source, **kw), progress).run()
    finally:
        state.close()


def expected_name(cfg: StorageConfig, rel: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{cfg.prefix}/{sha[:2]}/{sha}/{rel}"


def blob_names(container: ContainerClient) -> set[str]:
    return {b.name for b in container.list_blobs()}


def test_first_sync_names_metadata_and_content_types(cfg, container, tmp_path):
    src = tmp_path / "lib"
    files = {
        "2024/IMG_0001.JPG": det_bytes(1, 300_000),
        "2024/clip.MOV": det_bytes(2, 500_000),
        "raw/DSC_1.NEF": det_bytes(3, 100_000),
        "phone/photo.heic": det_bytes(4, 50_000),
    }
    for rel, data in files.items():
        write_file(src, rel, data, mtime_ns=1_600_000_000_123_456_789)
    write_file(src, "notes.txt", b"not media")
    write_file(src, ".DS_Store", b"junk")
    write_file(src, "@eaDir/IMG_0001.JPG/SYNOPHOTO_THUMB.jpg", b"thumb")
    write_file(src, ".hidden/secret.jpg", b"hidden")
    write_file(src, "dl/movie.mp4.part", b"partial")

    s = do_sync(cfg, src, tmp_path / "state")

    assert (s.scanned, s.uploaded, s.failed, s.skipped) == (4, 4, 0, 5)  # every file left out is counted
    assert s.left_out == {
        "not a photo or video": {".txt": 1},
        "hidden": {"(none)": 1, "(folder)": 1},
        "system or thumbnail file": {"(folder)": 1},
        "partial download": {".part": 1},
    }
    assert s.bytes_uploaded == sum(len(d) for d in files.values())
    assert blob_names(container) == {expected_name(cfg, rel, d) for rel, d in files.items()}
    types = {"2024/IMG_0001.JPG": "image/jpeg", "2024/clip.MOV": "video/quicktime",
             "raw/DSC_1.NEF": "image/x-nikon-nef", "phone/photo.heic": "image/heic"}  # fmt: skip
    for rel, data in files.items():
        blob = container.get_blob_client(expected_name(cfg, rel, data))
        props = blob.get_blob_properties()
        assert props.content_settings.content_type == types[rel]
        meta = parse_metadata(props.metadata)
        assert meta is not None
        assert (meta.sha256, meta.relpath, meta.size) == (hashlib.sha256(data).hexdigest(), rel, len(data))
        assert meta.mtime_ns == 1_600_000_000_123_456_789
        assert meta.source_id == "testhost"
        assert blob.download_blob().readall() == data


def test_rerun_uploads_nothing_and_reads_nothing(cfg, container, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    for i in range(5):
        write_file(src, f"a/{i}.jpg", det_bytes(i, 10_000))
    state = tmp_path / "state"
    first = do_sync(cfg, src, state)
    assert first.uploaded == 5

    import sync_core.sync.pipeline as pipeline

    def no_reads(*a, **k):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(pipeline, "hash_file", no_reads)
    again = do_sync(cfg, src, state)
    assert (again.scanned, again.unchanged, again.hashed, again.uploaded, again.bytes_uploaded) == (5, 5, 0, 0, 0)


def test_edit_uploads_once_and_keeps_old_blob(cfg, container, tmp_path):
    src = tmp_path / "lib"
    old, new = det_bytes(10, 20_000), det_bytes(11, 20_000)
    write_file(src, "x.jpg", old, mtime_ns=1_000_000_000_000_000_000)
    state = tmp_path / "state"
    do_sync(cfg, src, state)
    write_file(src, "x.jpg", new, mtime_ns=1_100_000_000_000_000_000)

    s = do_sync(cfg, src, state)

    assert (s.uploaded, s.bytes_uploaded) == (1, len(new))
    assert blob_names(container) == {expected_name(cfg, "x.jpg", old), expected_name(cfg, "x.jpg", new)}
    db = StateDB(state)
    rows = {b.blob_name: b.is_current for b in db.iter_blobs()}
    db.close()
    assert rows == {expected_name(cfg, "x.jpg", old): False, expected_name(cfg, "x.jpg", new): True}
    assert do_sync(cfg, src, state).uploaded == 0


def test_touch_uploads_nothing_and_next_run_does_not_rehash(cfg, container, tmp_path):
    src = tmp_path / "lib"
    p = write_file(src, "t.png", det_bytes(20, 5000), mtime_ns=1_000_000_000_000_000_000)
    state = tmp_path / "state"
    do_sync(cfg, src, state)
    os.utime(p, ns=(1_200_000_000_000_000_000, 1_200_000_000_000_000_000))

    s = do_sync(cfg, src, state)
    assert (s.touched, s.hashed, s.uploaded, s.bytes_uploaded) == (1, 1, 0, 0)
    s2 = do_sync(cfg, src, state)
    assert (s2.unchanged, s2.hashed) == (1, 0)
    assert len(blob_names(container)) == 1


def test_dry_run_writes_nothing(cfg, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "a.jpg", det_bytes(30, 1000))
    write_file(src, "b.mp4", det_bytes(31, 3000))
    state_dir = tmp_path / "state"
    state = StateDB(state_dir, readonly=True)
    s = SyncEngine(cfg, state, None, SyncOptions(source=src, dry_run=True), NullProgress()).run()
    state.close()
    assert (s.would_upload, s.would_upload_bytes, s.uploaded) == (2, 4000, 0)
    assert blob_names(container) == set()
    assert not state_dir.exists()

    # With an existing index, a dry run leaves the database byte-for-byte unchanged.
    do_sync(cfg, src, state_dir)
    write_file(src, "c.jpg", det_bytes(32, 100))
    before = (state_dir / "index.db").read_bytes()
    state = StateDB(state_dir, readonly=True)
    s = SyncEngine(cfg, state, None, SyncOptions(source=src, dry_run=True)).run()
    state.close()
    assert (s.would_upload, s.unchanged) == (1, 2)
    assert (state_dir / "index.db").read_bytes() == before
    assert len(blob_names(container)) == 2


def test_duplicate_in_one_run_is_a_server_side_copy(cfg, container, tmp_path):
    src = tmp_path / "lib"
    data = det_bytes(40, 200_000)
    write_file(src, "one/a.jpg", data)
    write_file(src, "two/a copy.jpg", data)

    s = do_sync(cfg, src, tmp_path / "state", max_workers=4)

    assert (s.uploaded, s.copied, s.bytes_uploaded) == (1, 1, len(data))
    names = {expected_name(cfg, "one/a.jpg", data), expected_name(cfg, "two/a copy.jpg", data)}
    assert blob_names(container) == names
    copies = [container.get_blob_client(n).get_blob_properties() for n in names]
    copied = [p for p in copies if p.copy.status == "success"]
    assert len(copied) == 1  # the second blob was created by Copy Blob, not by sending bytes
    assert parse_metadata(copied[0].metadata).relpath in {"one/a.jpg", "two/a copy.jpg"}
    for n in names:
        assert container.get_blob_client(n).download_blob().readall() == data


def test_moved_folder_reuploads_no_bytes(cfg, container, tmp_path):
    src = tmp_path / "lib"
    datas = {f"2019/trip/{i}.jpg": det_bytes(50 + i, 30_000) for i in range(4)}
    for rel, d in datas.items():
        write_file(src, rel, d)
    state = tmp_path / "state"
    do_sync(cfg, src, state)
    shutil.move(src / "2019" / "trip", src / "2019" / "Trip to Lisbon")

    s = do_sync(cfg, src, state)

    assert (s.copied, s.uploaded, s.bytes_uploaded, s.deleted) == (4, 0, 0, 4)
    for rel, d in datas.items():
        moved = rel.replace("trip", "Trip to Lisbon")
        blob = container.get_blob_client(expected_name(cfg, moved, d))
        assert parse_metadata(blob.get_blob_properties().metadata).relpath == moved
        assert container.get_blob_client(expected_name(cfg, rel, d)).exists()  # the old blob is kept
    db = StateDB(state)
    current = {b.relpath for b in db.iter_blobs(current_only=True)}
    gone = {b.relpath for b in db.iter_blobs() if not b.is_current}
    db.close()
    assert current == {r.replace("trip", "Trip to Lisbon") for r in datas}
    assert gone == set(datas)


def test_zero_byte_file(cfg, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "empty.jpg", b"")
    s = do_sync(cfg, src, tmp_path / "state")
    assert s.uploaded == 1
    blob = container.get_blob_client(expected_name(cfg, "empty.jpg", b""))
    assert blob.get_blob_properties().size == 0


def test_awkward_names_are_stored_exactly(cfg, container, tmp_path):
    src = tmp_path / "lib"
    names = [
        unicodedata.normalize("NFC", "Été/café.jpg"),
        unicodedata.normalize("NFD", "Ete/café.jpg"),
        "with space/a b.jpg",
        "hash#tag/#1.jpg",
        "pct/100%.jpg",
        "q/what?.jpg",
        "plus/a+b.jpg",
        "amp/a&b.jpg",
        "日本/写真.jpg",
    ]
    datas = {n: det_bytes(60 + i, 1000 + i) for i, n in enumerate(names)}
    for n, d in datas.items():
        write_file(src, n, d)

    s = do_sync(cfg, src, tmp_path / "state")

    assert (s.uploaded, s.failed) == (len(names), 0)
    assert blob_names(container) == {expected_name(cfg, n, d) for n, d in datas.items()}
    for n, d in datas.items():
        blob = container.get_blob_client(expected_name(cfg, n, d))
        assert blob.download_blob().readall() == d
        assert parse_metadata(blob.get_blob_properties().metadata).relpath == n


def test_large_file_goes_in_blocks(cfg, container, tmp_path):
    src = tmp_path / "lib"
    data = det_bytes(70, 3 * MiB + 12345)
    write_file(src, "big.mp4", data)

    s = do_sync(cfg, src, tmp_path / "state", small_file_max=MiB, block_size=MiB)

    assert (s.uploaded, s.bytes_uploaded) == (1, len(data))
    blob = container.get_blob_client(expected_name(cfg, "big.mp4", data))
    committed, _ = blob.get_block_list("committed")
    assert [b.size for b in committed] == [MiB, MiB, MiB, 12345]
    assert blob.download_blob().readall() == data
    assert blob.get_blob_properties().content_settings.content_type == "video/mp4"


class _DeleteOnPlan(NullProgress):
    def __init__(self, victim: Path):
        self.victim = victim

    def planned(self, files: int, total_bytes: int) -> None:
        self.victim.unlink()


def test_file_that_disappears_mid_run_is_skipped(cfg, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "keep.jpg", det_bytes(80, 100))
    gone = write_file(src, "gone.jpg", det_bytes(81, 100))

    s = do_sync(cfg, src, tmp_path / "state", progress=_DeleteOnPlan(gone))

    assert (s.uploaded, s.skipped, s.failed) == (1, 1, 0)
    assert len(blob_names(container)) == 1


def test_lost_state_dir_adopts_existing_blobs_without_sending(cfg, container, tmp_path):
    src = tmp_path / "lib"
    for i in range(3):
        write_file(src, f"{i}.jpg", det_bytes(90 + i, 40_000))
    write_file(src, "big.mov", det_bytes(99, 2 * MiB + 1))
    do_sync(cfg, src, tmp_path / "state1", small_file_max=MiB, block_size=MiB)
    before = {b.name: b.etag for b in container.list_blobs()}

    s = do_sync(cfg, src, tmp_path / "state2", small_file_max=MiB, block_size=MiB)

    assert (s.already_present, s.uploaded, s.bytes_uploaded) == (4, 0, 0)
    assert {b.name: b.etag for b in container.list_blobs()} == before  # nothing rewritten
    db = sqlite3.connect(tmp_path / "state2" / "index.db")
    assert db.execute("SELECT count(*) FROM files").fetchone()[0] == 4
    assert {r[0] for r in db.execute("SELECT etag FROM blobs")} == set(before.values())


def test_existing_blob_with_wrong_content_is_not_overwritten(cfg, container, tmp_path):
    src = tmp_path / "lib"
    data = det_bytes(100, 1000)
    write_file(src, "x.jpg", data)
    name = expected_name(cfg, "x.jpg", data)
    container.upload_blob(name, b"something else", metadata={"sha256": "0" * 64})

    s = do_sync(cfg, src, tmp_path / "state")

    assert (s.failed, s.uploaded) == (1, 0)
    assert "left untouched" in s.failures[0]["error"]
    assert container.get_blob_client(name).download_blob().readall() == b"something else"


def test_unstorable_name_fails_alone(cfg, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "ok.jpg", det_bytes(110, 100))
    # Only a name that is not UTF-8 is still unstorable (a backslash is now stored under an encoded name).
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9.jpg"), "wb") as f:
        f.write(det_bytes(111, 100))
    s = do_sync(cfg, src, tmp_path / "state")
    assert (s.uploaded, s.failed) == (1, 1)
    assert s.failures[0]["path"] == os.fsdecode(b"latin1-\xe9.jpg")
    assert "UTF-8" in s.failures[0]["error"]
    assert s.exit_code == 1


def test_deleted_file_keeps_blob_and_is_marked_not_current(cfg, container, tmp_path):
    src = tmp_path / "lib"
    a = write_file(src, "a.jpg", det_bytes(120, 100))
    write_file(src, "b.jpg", det_bytes(121, 100))
    state = tmp_path / "state"
    do_sync(cfg, src, state)
    a.unlink()
    s = do_sync(cfg, src, state)
    assert s.deleted == 1
    assert len(blob_names(container)) == 2
    db = StateDB(state)
    rows = {b.relpath: (b.is_current, b.deleted_at is not None) for b in db.iter_blobs()}
    db.close()
    assert rows == {"a.jpg": (False, True), "b.jpg": (True, False)}


def test_empty_source_with_populated_index_is_refused(cfg, container, tmp_path):
    from sync_core.errors import ConfigError

    src = tmp_path / "lib"
    p = write_file(src, "a.jpg", det_bytes(130, 100))
    state = tmp_path / "state"
    do_sync(cfg, src, state)
    p.unlink()
    with pytest.raises(ConfigError, match="mounted"):
        do_sync(cfg, src, state)
    assert do_sync(cfg, src, state, allow_empty_source=True).deleted == 1
