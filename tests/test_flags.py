"""The flags index on Azurite: the real verifier flags damaged rows and marks its prefixes ready; a sync
then finds what to repair by reading its source's flags (never the whole prefix), drops the flags it
repaired or found stale, and falls back to the filtered query while the flags are not complete."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode

from sync_core.config import StorageConfig
from sync_core.index import flags, table_mirror
from sync_core.index import table_index as ti
from sync_core.storage.clients import table_service
from sync_core.verify.verdicts import Verdict
from tests.conftest import det_bytes, run_cli, write_file

PREFIX = "photos/testhost"


def name_of(rel: str, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    return f"{PREFIX}/{sha[:2]}/{sha}/{rel}"


def keys(rel: str, data: bytes) -> tuple[str, str]:
    return ti.keys_for_blob(PREFIX, name_of(rel, data))


@pytest.fixture
def lib(storage_env, container, cfg: StorageConfig, tmp_path: Path, monkeypatch) -> dict[str, Any]:
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", f"r{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("VERIFY_RUNS_TABLE", f"runs{uuid.uuid4().hex[:12]}")
    src, state = tmp_path / "lib", tmp_path / "state"
    datas = {f"f/{i}.jpg": det_bytes(700 + i, 2000 + i) for i in range(6)}
    for rel, d in datas.items():
        write_file(src, rel, d)
    assert sync(src, state)["mirrored"] == len(datas)
    table = table_service(cfg).get_table_client(cfg.table)
    return {"src": src, "state": state, "datas": datas, "table": table, "container": container}


def sync(src: Path, state: Path) -> dict[str, Any]:
    r = run_cli("--source", str(src), "--state-dir", str(state), "--json")
    assert r.code in (0, 1), r.err
    return r.json()


def verify(state: Path) -> int:
    return run_cli("verify", "--state-dir", str(state), "--json").code


def flags_of(table: TableClient, source_id: str = "testhost") -> list[dict[str, Any]]:
    return flags.read_flags(table, source_id)


def old_verifier_flag(table: TableClient, pk: str, rk: str, verdict: str) -> None:
    """A verdict written the way verifiers wrote them before flags existed: in the row only."""
    table.update_entity(
        {"PartitionKey": pk, "RowKey": rk, ti.P_VERIFY_STATUS: verdict, ti.P_VERIFY_DETAIL: "old verifier"},
        mode=UpdateMode.MERGE,
    )


def test_the_verifier_flags_damage_and_a_sync_repairs_it_without_scanning_the_prefix(lib, monkeypatch):
    table, container, datas = lib["table"], lib["container"], lib["datas"]
    assert verify(lib["state"]) == 0
    assert flags.is_ready(table, PREFIX) and flags_of(table) == []  # a healthy library: ready, nothing flagged

    rel, data = "f/2.jpg", datas["f/2.jpg"]
    container.delete_blob(name_of(rel, data))
    assert verify(lib["state"]) == 1
    [flag] = flags_of(table)
    assert (flag[flags.P_INDEX_PARTITION], flag[flags.P_INDEX_ROW]) == keys(rel, data)
    assert flag[flags.P_VERDICT] == Verdict.MISSING and flag[flags.P_PREFIX] == PREFIX

    def no_scan(*_a: object, **_k: object) -> list[dict[str, Any]]:
        raise AssertionError("the sync scanned the whole prefix for flagged rows")

    monkeypatch.setattr(table_mirror, "scan_flagged_rows", no_scan)
    out = sync(lib["src"], lib["state"])
    assert out["repaired"] == 1 and out["repair_failed"] == 0, out
    assert container.get_blob_client(name_of(rel, data)).download_blob().readall() == data
    assert flags_of(table) == []  # dropped once the row says reuploaded
    assert verify(lib["state"]) == 0


def test_a_prefix_is_read_by_the_filtered_query_until_a_whole_verification_marked_it_ready(lib):
    table, datas = lib["table"], lib["datas"]
    rel, data = "f/1.jpg", datas["f/1.jpg"]
    lib["container"].delete_blob(name_of(rel, data))
    old_verifier_flag(table, *keys(rel, data), Verdict.MISSING)  # damage from before the flags
    assert not flags.is_ready(table, PREFIX)
    assert flags.flagged_rows(table, PREFIX, "testhost") is None
    [found] = table_mirror.flagged_rows(table, PREFIX, "testhost")  # the fallback finds it
    assert found["RowKey"] == keys(rel, data)[1]

    assert verify(lib["state"]) == 1  # reads the old verdict: flags it, then marks the prefix ready
    assert flags.is_ready(table, PREFIX)
    [row] = flags.flagged_rows(table, PREFIX, "testhost") or []
    assert row["RowKey"] == keys(rel, data)[1]


def test_a_flag_read_with_its_verdict_unchanged_is_still_written(lib):
    """Damage the verifier had judged before flags existed keeps its verdict (no verdict write): its flag is
    written anyway, or a ready prefix would hide it."""
    table, datas = lib["table"], lib["datas"]
    rel, data = "f/3.jpg", datas["f/3.jpg"]
    lib["container"].delete_blob(name_of(rel, data))
    assert verify(lib["state"]) == 1
    pk, rk = keys(rel, data)
    table.delete_entity(flags.flags_partition("testhost"), flags.flag_key(pk, rk))  # as if written before flags
    assert verify(lib["state"]) == 1
    assert [f[flags.P_INDEX_ROW] for f in flags_of(table)] == [rk]


def test_stale_flags_are_dropped_by_a_sync_but_not_by_a_reader(lib):
    table, datas = lib["table"], lib["datas"]
    assert verify(lib["state"]) == 0
    rel, data = "f/4.jpg", datas["f/4.jpg"]
    pk, rk = keys(rel, data)
    row = table.get_entity(pk, rk)
    flags.write_flags(table, PREFIX, [(row, Verdict.MISSING)])  # a flag whose row is fine (judged ok since)
    gone = {"PartitionKey": ti.partition_key(PREFIX, "ab" * 32), "RowKey": "nothing", ti.P_SOURCE_ID: "testhost"}
    flags.write_flags(table, PREFIX, [(gone, Verdict.MISSING)])  # a flag whose row no longer exists
    assert len(flags_of(table)) == 2

    assert flags.flagged_rows(table, PREFIX, "testhost") == []
    assert len(flags_of(table)) == 2  # status only reads
    out = sync(lib["src"], lib["state"])
    assert out["repaired"] == 0 and out["problems"] == 0
    assert flags_of(table) == []


def test_flags_are_per_source_and_per_prefix(lib):
    table, datas = lib["table"], lib["datas"]
    assert verify(lib["state"]) == 0
    rel, data = "f/5.jpg", datas["f/5.jpg"]
    pk, rk = keys(rel, data)
    old_verifier_flag(table, pk, rk, Verdict.MISSING)
    row = table.get_entity(pk, rk)
    flags.write_flags(table, PREFIX, [(row, Verdict.MISSING)])
    assert [r["RowKey"] for r in flags.flagged_rows(table, PREFIX, "testhost") or []] == [rk]
    assert flags.flagged_rows(table, PREFIX, "otherhost") == []  # another source's partition is empty
    assert flags.flagged_rows(table, "photos/elsewhere", "testhost") is None  # never verified: not ready


def test_a_run_with_a_failed_unit_does_not_mark_its_prefixes_ready(lib, monkeypatch):
    from azure.core.exceptions import ServiceRequestError

    from sync_core.verify import run

    real = run.verify_partition

    def one_fails(container: Any, table: Any, partition: str, **kw: Any) -> Any:
        if partition.endswith("/0"):
            raise ServiceRequestError("connection reset")
        return real(container, table, partition, **kw)

    monkeypatch.setattr(run, "verify_partition", one_fails)
    assert verify(lib["state"]) == 1
    assert not flags.is_ready(lib["table"], PREFIX)


def test_too_many_flags_for_point_reads_fall_back_to_the_query(lib, monkeypatch):
    table, datas = lib["table"], lib["datas"]
    for rel, data in list(datas.items())[:3]:
        lib["container"].delete_blob(name_of(rel, data))
    assert verify(lib["state"]) == 1 and len(flags_of(table)) == 3
    monkeypatch.setattr(flags, "MAX_POINT_READS", 2)
    assert flags.flagged_rows(table, PREFIX, "testhost") is None
    assert len(table_mirror.flagged_rows(table, PREFIX, "testhost")) == 3


def no_partition_read(*_a: object, **_k: object) -> list[dict[str, Any]]:
    raise AssertionError("the flags partition was queried while the source's presence says it has no flags")


def test_a_clean_sync_reads_two_entities_and_no_partition(lib, monkeypatch):
    table = lib["table"]
    assert verify(lib["state"]) == 0
    assert flags.presence(table, "testhost") == (False, None)  # never flagged
    monkeypatch.setattr(flags, "read_flags", no_partition_read)
    monkeypatch.setattr(table_mirror, "scan_flagged_rows", no_partition_read)
    out = sync(lib["src"], lib["state"])
    assert out["repaired"] == 0 and out["problems"] == 0, out
    assert flags.flagged_rows(table, PREFIX, "testhost") == []


def test_presence_is_set_after_flags_and_cleared_by_the_sync_that_finds_none(lib, monkeypatch):
    table, datas = lib["table"], lib["datas"]
    rel, data = "f/0.jpg", datas["f/0.jpg"]
    lib["container"].delete_blob(name_of(rel, data))
    assert verify(lib["state"]) == 1
    assert flags.presence(table, "testhost")[0] is True
    assert sync(lib["src"], lib["state"])["repaired"] == 1
    assert flags_of(table) == [] and flags.presence(table, "testhost")[0] is True  # dropped by the repair
    reads: list[str] = []
    real = flags.read_flags

    def counted(t: TableClient, source_id: str) -> list[dict[str, Any]]:
        reads.append(source_id)
        return real(t, source_id)

    monkeypatch.setattr(flags, "read_flags", counted)
    sync(lib["src"], lib["state"])  # looks once, finds nothing, clears
    assert reads == ["testhost"] and flags.presence(table, "testhost")[0] is False
    sync(lib["src"], lib["state"])
    assert reads == ["testhost"]  # the next one does not look


def test_a_flag_written_between_the_read_and_the_clear_keeps_the_presence(lib):
    table, datas = lib["table"], lib["datas"]
    assert verify(lib["state"]) == 0
    row = table.get_entity(*keys("f/1.jpg", datas["f/1.jpg"]))
    flags.write_flags(table, PREFIX, [(row, Verdict.MISSING)])
    flagged, etag = flags.presence(table, "testhost")
    assert flagged and etag
    flags.write_flags(table, PREFIX, [(row, Verdict.SHA_MISMATCH)])  # a verifier, between a sync's read and its clear
    assert flags.clear_presence(table, "testhost", etag) is False
    assert flags.presence(table, "testhost")[0] is True


def test_a_ready_prefix_from_a_verifier_without_presence_is_always_queried(lib):
    table, datas = lib["table"], lib["datas"]
    assert verify(lib["state"]) == 0
    table.upsert_entity(  # the ready entity as the first flags verifier wrote it
        {"PartitionKey": flags.READY_PARTITION, "RowKey": flags.ready_key(PREFIX), flags.P_PRESENCE: False},
        mode=UpdateMode.MERGE,
    )
    pk, rk = keys("f/2.jpg", datas["f/2.jpg"])
    old_verifier_flag(table, pk, rk, Verdict.MISSING)
    table.upsert_entity({  # its flag, with no presence entity beside it
        "PartitionKey": flags.flags_partition("testhost"), "RowKey": flags.flag_key(pk, rk),
        flags.P_INDEX_PARTITION: pk, flags.P_INDEX_ROW: rk, flags.P_PREFIX: PREFIX, flags.P_VERDICT: "missing",
    })  # fmt: skip
    assert flags.presence(table, "testhost") == (False, None)
    assert [r["RowKey"] for r in flags.flagged_rows(table, PREFIX, "testhost") or []] == [rk]
