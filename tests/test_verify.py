"""sync_core.verify's unit step against Azurite: cost per partition, write-back under etag conditions, the deep-verify
rotation's coverage guarantee, prefix discovery; plus the pure verdict and allowance rules."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from sync_core.errors import ConfigError, UnstorableNameError
from sync_core.index.table_index import (
    BINDING_PARTITION,
    P_DELETED_AT,
    P_IS_CURRENT,
    P_LAST_DEEP_VERIFIED,
    P_LAST_VERIFIED,
    P_VERIFY_STATUS,
    encode_key,
    keys_for_blob,
)
from sync_core.verify.partition import (
    UNIT_ROWS,
    BlobView,
    Problem,
    deep_allowance,
    discover_prefixes,
    partitions_for,
    quick_verdict,
    unit_digits,
    verify_partition,
)
from sync_core.verify.reports import iso
from sync_core.verify.run import Verifier, VerifySettings, parse_prefixes
from sync_core.verify.summary import Job, Plan, Summary, empty_summary, failed_summary, merge_summaries, run_summary
from sync_core.verify.verdicts import ALL_VERDICTS, DAMAGE_VERDICTS, PROBLEM_VERDICTS, Verdict
from tests.conftest import det_bytes, run_cli, write_file

PREFIX = "photos/testhost"
T0 = datetime(2026, 11, 1, 3, 0, 0, tzinfo=UTC)
LATER = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # after the test's uploads


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _in_shard(shard: str, seed: int, size: int) -> bytes:
    while not _sha(data := det_bytes(seed, size)).startswith(shard):
        seed += 1
    return data


def _sync(src, tmp_path) -> None:
    r = run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / "state"))
    assert r.code == 0, r.err


@pytest.fixture
def table(azurite, storage_env, container) -> TableClient:
    return TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )


@pytest.fixture
def verifier(storage_env, container) -> Verifier:
    return Verifier(VerifySettings.from_env(storage_env))


def verify_units(
    verifier: Verifier,
    partitions: list[str],
    *,
    now: datetime,
    deep_budget: int = 0,
    deep_reference: int | None = None,
    workers: int = 8,
) -> tuple[Summary, list[Problem]]:
    """The verify step over ``partitions`` as ``azphotosync verify`` runs it (a thread pool of units)."""
    plan: Plan = {
        "prefixes": [PREFIX],
        "deep_budget": deep_budget,
        "deep_reference": deep_reference,
        "previous_rows": None,
    }
    return verifier.run_units(plan, partitions, run_id="test", started_at=iso(now), workers=workers)


# -- pure rules ---------------------------------------------------------------------------------------------
SHA = "ab" + "0" * 62


@pytest.mark.parametrize(
    ("row", "blob", "verdict"),
    [
        ({"Size": 10, "BlobEtag": "e1"}, None, "missing"),
        ({"Size": 10, "BlobEtag": "e1"}, BlobView("n", 9, '"e1"', {"sha256": SHA}), "size_mismatch"),
        ({"Size": 10, "BlobEtag": "e1"}, BlobView("n", 10, '"e1"', {}), "sha_missing"),
        ({"Size": 10, "BlobEtag": "e1"}, BlobView("n", 10, '"e1"', {"Sha256": "cd" + "0" * 62}), "sha_mismatch"),
        ({"Size": 10, "BlobEtag": "e1"}, BlobView("n", 10, '"e2"', {"sha256": SHA}), "etag_mismatch"),
        ({"Size": 10, "BlobEtag": '"e1"'}, BlobView("n", 10, "e1", {"sha256": SHA}), "ok"),
        # A row another tool wrote with a Size that is not a number: judged, not a failed unit.
        ({"Size": "ten", "BlobEtag": "e1"}, BlobView("n", 10, '"e1"', {"sha256": SHA}), "size_mismatch"),
    ],
)
def test_quick_verdicts(row: dict, blob: BlobView | None, verdict: str):
    assert quick_verdict(row, blob, SHA)[0] == verdict


def test_deep_allowance_is_a_proportional_share_rounded_up():
    assert deep_allowance(0, 100, 1000, 256) == 0
    assert deep_allowance(500, 0, 1000, 256) == 0
    assert deep_allowance(300, 100, 1000, 256) == 30
    assert deep_allowance(1, 100, 1000, 256) == 1  # rounded up: every partition moves
    assert deep_allowance(10, 5000, 1000, 256) == 10  # never more than it has
    assert deep_allowance(300, 1000, None, 4) == 250  # no previous run: an even split


def test_merge_is_order_independent():
    a = {"partition": "p/00", "rows": 2, "counts": {"ok": 2}, "prefix_bytes": {"p": 5}, "requests": {"writes": 1}}
    b = {"partition": "p/01", "rows": 1, "counts": {"missing": 1}, "errors": ["x"], "prefix_bytes": {"p": 1}}
    assert merge_summaries([a, b]) == merge_summaries([b, a]) | {"errors": ["x"]}
    m = merge_summaries([a, b])
    assert m["partitions"] == 2 and m["rows"] == 3 and m["counts"] == {"missing": 1, "ok": 2}
    assert m["prefix_bytes"] == {"p": 6}


def test_verdicts_are_the_strings_rows_and_reports_store():
    assert [str(v) for v in ALL_VERDICTS] == [
        "ok", "missing", "size_mismatch", "etag_mismatch", "sha_mismatch", "sha_missing", "orphan_repaired", "orphan"
    ]  # fmt: skip
    assert json.dumps({Verdict.SHA_MISMATCH: 1, "v": Verdict.OK}) == '{"sha_mismatch": 1, "v": "ok"}'
    assert DAMAGE_VERDICTS < PROBLEM_VERDICTS and Verdict.ORPHAN_REPAIRED not in PROBLEM_VERDICTS
    assert Verdict.REUPLOADED not in ALL_VERDICTS  # the agent's, never a verifier's count


def test_units_not_verified_enter_the_sum_as_failed_never_as_verified():
    ok = {"partition": "p/00", "rows": 2, "counts": {"ok": 2}}
    total = run_summary(
        {"prefixes": ["p"], "deep_budget": 7, "deep_reference": None, "previous_rows": None},
        [ok, failed_summary("partitions p/01 … p/20", "service unavailable", 32)],
    )
    assert (total["partitions"], total["partitions_failed"], total["rows"]) == (1, 32, 2)
    assert total["errors"] == ["partitions p/01 … p/20: service unavailable"]
    assert (total["prefixes"], total["deep_budget"]) == (["p"], 7)


def test_a_bad_prefix_setting_keeps_its_cause():
    with pytest.raises(ConfigError, match="VERIFY_PREFIXES") as info:
        parse_prefixes("photos/../x")
    assert isinstance(info.value.__cause__, UnstorableNameError)


class RecordingVerifier(Verifier):
    """Records the jobs the verify step gets, and verifies nothing."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.jobs: list[tuple[Job, bool]] = []

    def verify_unit(self, job: Job, *, stage: bool) -> tuple[Summary, list[Problem]]:
        self.jobs.append((job, stage))
        return {**empty_summary(), "partition": job["partition"], "partitions": 1, "rows": 1}, []


def test_the_cli_runs_every_unit_through_the_cloud_s_verify_step(storage_env):
    v = RecordingVerifier(VerifySettings.from_env(storage_env))
    plan: Plan = {"prefixes": [PREFIX], "deep_budget": 5, "deep_reference": 40, "previous_rows": None}
    units = partitions_for([PREFIX], digits=1)
    summary, problems = v.run_units(plan, units, run_id="r1", started_at="2026-11-01T03:00:00Z", workers=4)
    assert (summary["partitions"], summary["rows"], problems) == (16, 16, [])
    want = {"run_id": "r1", "started_at": "2026-11-01T03:00:00Z", "deep_budget": 5, "deep_reference": 40,
            "partitions_total": 16}  # fmt: skip
    assert sorted(v.jobs, key=lambda js: js[0]["partition"]) == [({**want, "partition": u}, False) for u in units]


def test_unit_size_follows_the_library_size():
    assert unit_digits(None) == 2 and unit_digits(0) == 1
    assert unit_digits(16 * UNIT_ROWS) == 1 and unit_digits(16 * UNIT_ROWS + 1) == 2


def test_settings_from_the_app_settings():
    env = {"AZURE_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net", "VERIFY_DEEP_BUDGET": "500MB",
           "VERIFY_PREFIXES": "photos/b, photos/a/", "VERIFY_RUNS_TABLE": "myruns"}  # fmt: skip
    s = VerifySettings.from_env(env)
    assert s.deep_budget == 500_000_000 and s.prefixes == ("photos/a", "photos/b")
    assert s.cfg.container == "photos-archive" and s.cfg.table == "azphotosyncindex"
    assert s.reports_container == "azphotosync-reports" and s.runs_table == "myruns"
    assert VerifySettings.from_env({"AZURE_STORAGE_ACCOUNT_URL": "https://a.blob.x"}).deep_budget == 2 * 1024**3
    with pytest.raises(ConfigError, match="VERIFY_DEEP_BUDGET"):
        VerifySettings.from_env({**env, "VERIFY_DEEP_BUDGET": "much"})
    with pytest.raises(ConfigError, match="VERIFY_PREFIXES"):
        VerifySettings.from_env({**env, "VERIFY_PREFIXES": "photos/../x"})


# -- against Azurite -------------------------------------------------------------------------------------------
def test_cost_is_one_listing_and_one_query_per_unit_and_a_healthy_archive_writes_nothing(
    container, table, verifier, tmp_path
):
    src = tmp_path / "lib"
    for i in range(12):
        write_file(src, f"a/{i}.jpg", det_bytes(i, 500 + i))
    _sync(src, tmp_path)
    first, problems = verify_units(verifier, partitions_for([PREFIX]), now=T0, workers=16)
    assert problems == [] and first["counts"] == {"ok": 12} and first["rows"] == 12
    assert first["requests"] == {"listing_pages": 256, "query_pages": 256, "property_calls": 0, "writes": 0}
    # sixteen units of sixteen partitions: the same verdicts from 16 listings and 16 key-range queries
    units = partitions_for([PREFIX], digits=1)
    assert len(units) == 16 and units[10] == f"{PREFIX}/a"
    second, _ = verify_units(verifier, units, now=T0 + timedelta(days=1), workers=4)
    assert second["requests"] == {"listing_pages": 16, "query_pages": 16, "property_calls": 0, "writes": 0}
    assert second["counts"] == {"ok": 12} and second["rows"] == 12 and second["blobs"] == 12
    # never judged and now judged ok: nothing to record per row
    rows = [r for r in table.list_entities() if r["PartitionKey"] != BINDING_PARTITION]
    assert len(rows) == 12 and not any(P_VERIFY_STATUS in r or P_LAST_VERIFIED in r for r in rows)

    # A blob whose etag changed is judged with its metadata (one properties call) and its verdict written.
    name = rows[0]["BlobName"]
    blob = container.get_blob_client(name)
    blob.set_blob_metadata({**blob.get_blob_properties().metadata, "sha256": "0" * 64})
    third, problems = verify_units(verifier, units, now=T0 + timedelta(days=2), workers=4)
    assert third["counts"] == {"ok": 11, "sha_mismatch": 1} and [p.blob_name for p in problems] == [name]
    # Three writes: the damaged row's flag, its source's presence entity (sync_core.index.flags), its verdict.
    assert third["requests"]["property_calls"] == 1 and third["requests"]["writes"] == 3
    row = table.get_entity(rows[0]["PartitionKey"], rows[0]["RowKey"])
    assert row[P_VERIFY_STATUS] == "sha_mismatch" and row[P_LAST_VERIFIED] == T0 + timedelta(days=2)


def test_many_changed_blobs_are_judged_from_one_more_listing_with_metadata(container, table, tmp_path):
    src = tmp_path / "lib"
    datas = [_in_shard("3", 50 * i, 300 + i) for i in range(40)]  # all in unit "3"
    for i, d in enumerate(datas):
        write_file(src, f"m/{i}.jpg", d)
    _sync(src, tmp_path)
    for i, d in enumerate(datas):  # new etags, same content and metadata: a metadata re-write
        blob = container.get_blob_client(f"{PREFIX}/{_sha(d)[:2]}/{_sha(d)}/m/{i}.jpg")
        blob.set_blob_metadata(blob.get_blob_properties().metadata)
    res = verify_partition(container, table, f"{PREFIX}/3", now=T0)
    assert res.counts == {"etag_mismatch": 40} and res.property_calls == 0
    assert res.listing_pages == 2 and res.query_pages == 1  # without metadata, then once more with it


def test_verdicts_are_written_in_transactions_of_at_most_100(container, table):
    partition = f"{PREFIX}/5c"
    pk = encode_key(partition)
    names = [f"{PREFIX}/5c/5c{i:062x}/gone/{i}.jpg" for i in range(150)]
    rows = [{"PartitionKey": pk, "RowKey": keys_for_blob(PREFIX, n)[1], "BlobName": n, "Size": 1} for n in names]
    for i in range(0, 150, 100):
        table.submit_transaction([("create", r) for r in rows[i : i + 100]])
    res = verify_partition(container, table, partition, now=T0)
    assert res.counts == {"missing": 150} and res.writes == 2 and res.query_pages == 1 and res.listing_pages == 1
    assert {p.blob_name for p in res.problems} == set(names)
    assert all(r[P_VERIFY_STATUS] == "missing" for r in table.list_entities())


def test_a_concurrent_agent_write_is_never_lost(azurite, storage_env, container, table, tmp_path, monkeypatch):
    """The agent merges into a row just before the verifier's transaction: the transaction (conditional on
    the etags read) is refused, the rows are settled one by one and the raced one re-read."""
    from sync_core.index import table_batch
    src = tmp_path / "lib"
    datas = [_in_shard("7e", 100 * i, 800 + i) for i in range(3)]
    for i, d in enumerate(datas):
        write_file(src, f"b/{i}.jpg", d)
    _sync(src, tmp_path)
    names = [f"{PREFIX}/7e/{_sha(d)}/b/{i}.jpg" for i, d in enumerate(datas)]
    pk, rk = keys_for_blob(PREFIX, names[0])
    deleted_at = datetime(2026, 11, 2, tzinfo=UTC)
    for n in names:  # the agent re-uploaded these after a flag: the verifier has a verdict to write
        key_pk, key_rk = keys_for_blob(PREFIX, n)
        table.update_entity({"PartitionKey": key_pk, "RowKey": key_rk, P_VERIFY_STATUS: "reuploaded"})
    agent_write: list[dict[str, Any]] = [
        {"PartitionKey": pk, "RowKey": rk, P_IS_CURRENT: False, P_DELETED_AT: deleted_at}
    ]
    real_submit = table_batch.submit

    def racing_submit(t: TableClient, ops: Any) -> None:
        while agent_write:  # the mirror's write, unconditional, lands first
            t.upsert_entity(agent_write.pop(), mode=UpdateMode.MERGE)
        real_submit(t, ops)

    monkeypatch.setattr(table_batch, "submit", racing_submit)
    res = verify_partition(container, table, f"{PREFIX}/7e", now=T0)
    assert res.counts == {"ok": 3} and res.skipped_changed == 0
    assert res.writes >= 1 + 3  # the refused transaction, then row by row (the raced one re-read)
    raced = table.get_entity(pk, rk)
    assert raced[P_IS_CURRENT] is False and raced[P_DELETED_AT] == deleted_at  # the agent's write survived
    assert raced[P_VERIFY_STATUS] == "ok" and raced[P_LAST_VERIFIED] == T0  # and the verdict landed after it
    for n in names[1:]:
        assert table.get_entity(*keys_for_blob(PREFIX, n))[P_VERIFY_STATUS] == "ok"


def test_deep_rotation_covers_every_blob_within_ceil_total_over_budget_runs(container, table, verifier, tmp_path):
    src = tmp_path / "lib"
    sizes = [1000 + 731 * i for i in range(16)]  # uneven sizes, two partitions
    datas = [_in_shard("0a" if i % 2 else "0b", 1000 * i, s) for i, s in enumerate(sizes)]
    for i, d in enumerate(datas):
        write_file(src, f"c/{i:02d}.jpg", d)
    _sync(src, tmp_path)
    total = sum(sizes)
    budget = total // 4 + 1
    window = math.ceil(total / budget)
    parts = [f"{PREFIX}/0a", f"{PREFIX}/0b"]  # the other 254 are empty: no need to list them 13 times
    reference = None
    verified_in: list[set[str]] = []
    for run in range(1 + 3 * window):
        now = LATER + timedelta(days=run)
        summary, problems = verify_units(verifier, parts, now=now, deep_budget=budget, deep_reference=reference)
        assert problems == []
        reference = summary["prefix_bytes"][PREFIX]
        assert reference == total
        rows = list(table.list_entities())
        verified_in.append({r["RowKey"] for r in rows if r.get(P_LAST_DEEP_VERIFIED) == now})
        assert summary["deep_verified"] == len(verified_in[-1])
        if run:  # with a reference: about the budget, overshooting by at most one blob per partition
            assert budget <= summary["deep_bytes"] <= budget + 2 * max(sizes)
    everyone = {r["RowKey"] for r in table.list_entities() if r["PartitionKey"] != BINDING_PARTITION}
    assert len(everyone) == 16
    for start in range(1, len(verified_in) - window + 1):  # every window of ⌈total/budget⌉ runs
        assert set().union(*verified_in[start : start + window]) == everyone, start


def test_deep_verify_catches_a_same_size_swap_that_quick_verify_cannot(container, table, tmp_path):
    src = tmp_path / "lib"
    data = _in_shard("c3", 5, 4096)
    write_file(src, "d/x.jpg", data)
    _sync(src, tmp_path)
    name = f"{PREFIX}/c3/{_sha(data)}/d/x.jpg"
    blob = container.get_blob_client(name)
    md = blob.get_blob_properties().metadata
    new = blob.upload_blob(det_bytes(77, 4096), overwrite=True, metadata=md)
    pk, rk = keys_for_blob(PREFIX, name)
    table.update_entity({"PartitionKey": pk, "RowKey": rk, "BlobEtag": new["etag"].strip('"')})  # as if adopted
    quick = verify_partition(container, table, f"{PREFIX}/c3", now=T0)
    assert quick.counts == {"ok": 1}
    deep = verify_partition(container, table, f"{PREFIX}/c3", now=T0, deep_budget=1)
    assert deep.counts == {"sha_mismatch": 1} and deep.deep_verified == 1 and deep.deep_bytes == 4096
    assert "re-hash" in deep.problems[0].detail
    assert table.get_entity(pk, rk)[P_VERIFY_STATUS] == "sha_mismatch"


def test_discover_prefixes_with_one_query_per_prefix(table):
    for prefix in ("photos/alpha", "photos/beta", "other/x/y"):
        for shard in ("00", "7f", "ff"):
            table.create_entity({"PartitionKey": encode_key(f"{prefix}/{shard}"), "RowKey": "r"})
    table.create_entity({"PartitionKey": "not-ours", "RowKey": "r"})
    assert discover_prefixes(table) == ["other/x/y", "photos/alpha", "photos/beta"]
