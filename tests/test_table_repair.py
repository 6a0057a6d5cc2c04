"""The closed loop on Azurite: the test plays the cloud verifier by writing verdicts into the Table; the agent
re-uploads from local copies (conditionally), clears the flag, and reports plainly what it cannot repair."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobServiceClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import normalize_etag, parse_metadata
from sync_core.index import table_index as ti
from sync_core.index.table_mirror import open_table, plain
from sync_core.local.hasher import block_digest
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, table_service
from sync_core.sync.repair import FAILED, LOST, RESTORED, REUPLOADED, Repairer
from sync_core.sync.transfer import BLOCK_SIZE, block_id
from sync_core.verify.verdicts import Verdict

from .conftest import det_bytes, run_cli, write_file

PREFIX = "photos/testhost"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def name_of(rel: str, data: bytes) -> str:
    return f"{PREFIX}/{sha(data)[:2]}/{sha(data)}/{rel}"


def flag(table: TableClient, name: str, verdict: str) -> None:
    """Play the verifier: write a verdict (merge, as the cloud does)."""
    pk, rk = ti.keys_for_blob(PREFIX, name)
    table.update_entity(
        {"PartitionKey": pk, "RowKey": rk, ti.P_VERIFY_STATUS: verdict, ti.P_VERIFY_DETAIL: "test verifier"},
        mode=UpdateMode.MERGE,
    )


def row(table: TableClient, name: str) -> dict[str, Any]:
    return plain(table.get_entity(*ti.keys_for_blob(PREFIX, name)))


def sync(src: Path, state_dir: Path, *extra: str) -> dict[str, Any]:
    r = run_cli("--source", str(src), "--state-dir", str(state_dir), "--json", *extra)
    assert r.code in (0, 1), r.err
    out = r.json()
    out["_code"], out["_err"] = r.code, r.err
    return out


def test_closed_loop_reuploads_damaged_blobs_and_reports_lost_ones(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    keep, damaged, gone = det_bytes(1, 4000), det_bytes(2, 5000), det_bytes(3, 6000)
    write_file(src, "keep.jpg", keep)
    write_file(src, "damaged.jpg", damaged)
    write_file(src, "gone.jpg", gone)
    assert sync(src, state_dir)["mirrored"] == 3
    (src / "gone.jpg").unlink()
    assert sync(src, state_dir)["deleted"] == 1
    table = table_service(cfg).get_table_client(cfg.table)

    # Behind the agent's back: two blobs deleted, one overwritten with other bytes.
    container.delete_blob(name_of("keep.jpg", keep))
    container.delete_blob(name_of("gone.jpg", gone))
    bad = container.get_blob_client(name_of("damaged.jpg", damaged))
    bad.upload_blob(b"bit rot", overwrite=True)
    flag(table, name_of("keep.jpg", keep), Verdict.MISSING)
    flag(table, name_of("damaged.jpg", damaged), Verdict.SIZE_MISMATCH)
    flag(table, name_of("gone.jpg", gone), Verdict.MISSING)

    out = sync(src, state_dir)
    assert (out["repaired"], out["repair_lost"], out["repair_failed"]) == (2, 1, 0)
    assert out["_code"] == 1  # a loss is a problem the user must hear about
    assert out["uploaded"] == 0 and out["bytes_uploaded"] == len(keep) + len(damaged)
    [lost] = out["repair_problems"]
    assert lost["blob_name"] == name_of("gone.jpg", gone) and lost["outcome"] == LOST
    assert "no local file has this content" in lost["detail"] and "gone.jpg" in lost["detail"]
    assert "lost" in out["_err"] and "gone.jpg" in out["_err"]

    state = StateDB(state_dir)
    for rel, data in (("keep.jpg", keep), ("damaged.jpg", damaged)):
        blob = container.get_blob_client(name_of(rel, data))
        assert blob.download_blob().readall() == data
        props = blob.get_blob_properties()
        meta = parse_metadata(props.metadata)
        assert meta is not None and (meta.sha256, meta.relpath, meta.size) == (sha(data), rel, len(data))
        r = row(table, name_of(rel, data))
        assert r[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED and r[ti.P_BLOB_ETAG] == normalize_etag(props.etag)
        assert "testhost" in r[ti.P_VERIFY_DETAIL] and r[ti.P_IS_CURRENT] is True
        local = state.get_blob(name_of(rel, data))
        assert local is not None and local.etag == normalize_etag(props.etag)
    assert row(table, name_of("gone.jpg", gone))[ti.P_VERIFY_STATUS] == Verdict.MISSING  # left for the user
    state.close()

    again = sync(src, state_dir)
    assert (again["repaired"], again["repair_lost"], again["uploaded"]) == (0, 1, 0)
    assert again["_code"] == 0  # reported again, but it is no longer news


def test_repair_uses_a_duplicate_elsewhere_and_clears_a_stale_flag(storage_env, container, cfg, tmp_path):
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    data = det_bytes(4, 3000)
    write_file(src, "a/orig.jpg", data)
    write_file(src, "b/copy.jpg", data)
    sync(src, state_dir)
    (src / "a/orig.jpg").unlink()
    sync(src, state_dir)
    table = table_service(cfg).get_table_client(cfg.table)
    orig = name_of("a/orig.jpg", data)
    container.delete_blob(orig)
    flag(table, orig, Verdict.MISSING)
    copy = name_of("b/copy.jpg", data)
    flag(table, copy, Verdict.ETAG_MISMATCH)  # stale: the blob is exactly what SQLite recorded

    out = sync(src, state_dir)
    assert out["repaired"] == 2 and out["_code"] == 0 and out["bytes_uploaded"] == len(data)
    assert container.get_blob_client(orig).download_blob().readall() == data  # from b/copy.jpg
    assert row(table, orig)[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED
    assert "from 'b/copy.jpg'" in row(table, orig)[ti.P_VERIFY_DETAIL]
    assert row(table, copy)[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED
    assert "nothing sent" in row(table, copy)[ti.P_VERIFY_DETAIL]


def _synced(cfg: StorageConfig, tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path, TableClient]:
    src, state_dir = tmp_path / "lib", tmp_path / "s"
    for rel, data in files.items():
        write_file(src, rel, data)
    assert sync(src, state_dir)["mirrored"] == len(files)
    return src, state_dir, open_table(table_service(cfg), cfg)


def _repairer(
    cfg: StorageConfig,
    state: StateDB,
    src: Path,
    table: TableClient,
    read_hook: Callable[[int], object] | None = None,
    **kw: Any,
) -> Repairer:
    container = blob_service(cfg, **kw).get_container_client(cfg.container)
    return Repairer(cfg.__class__(**{**cfg.__dict__, "prefix": PREFIX}), state, container, table, src,
                    block_size=64 * 1024, single_put_max=64 * 1024, read_hook=read_hook)  # fmt: skip


def test_large_file_repaired_in_blocks_only_when_its_bytes_still_match(storage_env, container, cfg, tmp_path):
    big, edited = det_bytes(5, 300_000), det_bytes(6, 200_000)
    src, state_dir, table = _synced(cfg, tmp_path, {"big.mov": big, "edited.mov": edited})
    for rel, data in (("big.mov", big), ("edited.mov", edited)):
        container.get_blob_client(name_of(rel, data)).upload_blob(b"x", overwrite=True)
        flag(table, name_of(rel, data), Verdict.SHA_MISMATCH)
    (src / "edited.mov").write_bytes(det_bytes(7, 200_000))  # same size, other bytes: not a copy any more

    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table).run()
    state.close()
    outcomes = {i.blob_name: i.outcome for i in res.items}
    assert outcomes == {name_of("big.mov", big): REUPLOADED, name_of("edited.mov", edited): LOST}
    assert res.new_losses == 1
    assert container.get_blob_client(name_of("big.mov", big)).download_blob().readall() == big
    committed, _ = container.get_blob_client(name_of("big.mov", big)).get_block_list("committed")
    assert len(committed) == 5  # 300 kB in 64 KiB blocks
    # The edited file's staged blocks were never committed: the damaged blob is untouched, not made worse.
    assert container.get_blob_client(name_of("edited.mov", edited)).download_blob().readall() == b"x"


def test_repair_never_overwrites_a_blob_that_changed_after_inspection(storage_env, container, cfg, azurite, tmp_path):
    data = det_bytes(8, 2000)
    src, state_dir, table = _synced(cfg, tmp_path, {"race.jpg": data})
    name = name_of("race.jpg", data)
    container.get_blob_client(name).upload_blob(b"damaged", overwrite=True)
    flag(table, name, Verdict.SIZE_MISMATCH)
    other = BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(cfg.container)

    def interloper(response) -> None:
        """Right after the agent inspected the blob, someone else writes it."""
        req = response.http_request
        if req.method == "HEAD" and req.url.split("?")[0].endswith("race.jpg"):
            other.get_blob_client(name).upload_blob(b"someone else's write", overwrite=True)

    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table, raw_response_hook=interloper).run()
    state.close()
    [item] = res.items
    assert item.outcome == FAILED and "changed since it was inspected" in item.detail
    assert container.get_blob_client(name).download_blob().readall() == b"someone else's write"
    assert row(table, name)[ti.P_VERIFY_STATUS] == Verdict.SIZE_MISMATCH  # flag kept for the next pass


def test_blob_back_in_place_is_restored_without_sending(storage_env, container, cfg, tmp_path):
    data = det_bytes(9, 2500)
    src, state_dir, table = _synced(cfg, tmp_path, {"back.jpg": data})
    flag(table, name_of("back.jpg", data), Verdict.MISSING)  # the blob is there (e.g. restored by an admin)
    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table).run()
    state.close()
    [item] = res.items
    assert (item.outcome, item.bytes_sent) == (RESTORED, 0)
    assert row(table, name_of("back.jpg", data))[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED


def test_an_unreadable_flagged_row_of_ours_is_rewritten_then_repaired(storage_env, container, cfg, tmp_path):
    """A flagged row with a Size that is not a number (another tool wrote it) is rewritten from the local index
    by the run that finds it, and the next run repairs it as usual: the loop closes without the user."""
    data = det_bytes(11, 1500)
    src, state_dir, table = _synced(cfg, tmp_path, {"odd.jpg": data})
    name = name_of("odd.jpg", data)
    pk, rk = ti.keys_for_blob(PREFIX, name)
    table.update_entity({"PartitionKey": pk, "RowKey": rk, ti.P_SIZE: "big"}, mode=UpdateMode.MERGE)
    flag(table, name, Verdict.SIZE_MISMATCH)

    first = sync(src, state_dir)
    [problem] = first["repair_problems"]
    assert problem["outcome"] == FAILED and "rewritten from the local index" in problem["detail"]
    assert row(table, name)[ti.P_SIZE] == len(data)  # the end-of-run mirror rewrote it
    second = sync(src, state_dir)
    # A size_mismatch verdict is answered from the local copy, as always (conditionally, over the same bytes).
    assert (second["repaired"], second["repair_failed"], second["bytes_uploaded"]) == (1, 0, len(data))
    assert row(table, name)[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED
    assert container.get_blob_client(name).download_blob().readall() == data
    third = sync(src, state_dir)
    assert (third["repaired"], third["repair_failed"], third["repair_lost"]) == (0, 0, 0) and third["_code"] == 0


def test_other_sources_flags_are_not_ours(storage_env, container, cfg, tmp_path):
    data = det_bytes(10, 1000)
    src, state_dir, table = _synced(cfg, tmp_path, {"x.jpg": data})
    name = name_of("x.jpg", data)
    pk, rk = ti.keys_for_blob(PREFIX, name)
    table.update_entity({"PartitionKey": pk, "RowKey": rk, ti.P_SOURCE_ID: "someoneelse",
                         ti.P_VERIFY_STATUS: Verdict.MISSING}, mode=UpdateMode.MERGE)  # fmt: skip
    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table).run()
    state.close()
    assert (res.flagged, res.items) == (0, [])


def test_repair_sends_the_blocks_of_any_upload(storage_env, container, cfg, tmp_path):
    """A repair of a large file goes through the one transfer path: the agent's block size, block ids that
    name their content, and the whole blob's Content-MD5."""
    big = det_bytes(12, 2 * BLOCK_SIZE + 12_345)
    src, state_dir, table = _synced(cfg, tmp_path, {"big.mov": big})
    name = name_of("big.mov", big)
    container.delete_blob(name)
    flag(table, name, Verdict.MISSING)

    out = sync(src, state_dir)
    assert (out["repaired"], out["bytes_uploaded"]) == (1, len(big))
    blob = container.get_blob_client(name)
    committed, _ = blob.get_block_list("committed")
    pieces = [big[i : i + BLOCK_SIZE] for i in range(0, len(big), BLOCK_SIZE)]
    assert [b.size for b in committed] == [len(p) for p in pieces]
    assert [b.id for b in committed] == [block_id(i, block_digest(p)) for i, p in enumerate(pieces)]
    assert bytes(blob.get_blob_properties().content_settings.content_md5) == hashlib.md5(big).digest()


def test_a_file_edited_during_its_repair_is_not_committed(storage_env, container, cfg, tmp_path):
    """The blocks a repair reads are proven against the hash pass, as for any upload: a file rewritten (same
    size) after the hash pass and before its last block is read leaves the damaged blob as it was."""
    big = det_bytes(13, 300_000)
    src, state_dir, table = _synced(cfg, tmp_path, {"big.mov": big})
    name = name_of("big.mov", big)
    container.get_blob_client(name).upload_blob(b"x", overwrite=True)
    flag(table, name, Verdict.SHA_MISMATCH)
    reads: list[int] = []

    def edit_after_first_block(nbytes: int) -> None:
        reads.append(nbytes)
        if len(reads) == 1:
            with open(src / "big.mov", "r+b") as f:
                f.seek(200_000)
                f.write(b"edited!")

    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table, read_hook=edit_after_first_block).run()
    state.close()
    [item] = res.items
    assert item.outcome == LOST and "no longer has this content" in item.detail
    assert len(reads) >= 2  # blocks were read after the edit, and refused
    assert container.get_blob_client(name).download_blob().readall() == b"x"
    assert row(table, name)[ti.P_VERIFY_STATUS] == Verdict.SHA_MISMATCH
