"""The Table mirror against Azurite's Table service: exact rows, batching, merge semantics, read helpers."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import TableClient, UpdateMode

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta
from sync_core.contracts.blobname import prefix_of
from sync_core.errors import ConfigError
from sync_core.index import table_index as ti
from sync_core.index.entity import entity_for, entity_from_blob, row_from_entity
from sync_core.index.table_mirror import TableMirror, flagged_rows, open_table, plain
from sync_core.local.state import BlobRow, StateDB
from sync_core.storage.clients import table_service
from sync_core.verify.verdicts import Verdict

BIG = 5 * 2**31  # sizes and mtimes beyond Int32 must round-trip (Edm.Int64)


def sha_of(i: int, shard: str | None = None) -> str:
    h = hashlib.sha256(str(i).encode()).hexdigest()
    return (shard + h[2:]) if shard else h


def add_row(state: StateDB, prefix: str, rel: str, sha: str, *, size: int = 10, source: str = "testhost") -> BlobRow:
    name = f"{prefix}/{sha[:2]}/{sha}/{rel}"
    return state.record_blob(
        relpath=rel, size=size, mtime_ns=BIG + 7, inode=1, sha256=sha, blob_name=name,
        etag=f'"0x{sha[:8]}"', source_id=source, now=1_700_000_000.5,
    )  # fmt: skip


def add_blob(state: StateDB, prefix: str, rel: str, sha: str, *, size: int = 10, source: str = "testhost") -> str:
    return add_row(state, prefix, rel, sha, size=size, source=source).blob_name


def counted_table(cfg: StorageConfig) -> tuple[TableClient, list[str]]:
    """The index table, and the last path segment of every request its client sends (``$batch``, …)."""
    paths: list[str] = []

    def count_request(request) -> None:
        paths.append(request.http_request.url.split("?")[0].rsplit("/", 1)[-1])

    return open_table(table_service(cfg, raw_request_hook=count_request), cfg, create=True), paths


@pytest.fixture
def table(cfg: StorageConfig) -> TableClient:
    return open_table(table_service(cfg), cfg, create=True)


def test_one_row_per_blob_with_exact_fields(cfg, table, tmp_path: Path):
    state = StateDB(tmp_path / "state")
    sha = sha_of(1)
    name = add_blob(state, "photos/dev", "2024/IMG 1.JPG", sha, size=BIG)
    state.commit()
    assert state.count_mirror_pending() == 1
    res = TableMirror(table, state).run()
    assert (res.mirrored, res.transactions, res.partitions, res.pending, res.error) == (1, 1, 1, 0, "")
    assert state.count_mirror_pending() == 0

    rows = [plain(e) for e in table.list_entities()]
    assert len(rows) == 1
    row = rows[0]
    assert row["PartitionKey"] == f"photos%2Fdev%2F{sha[:2]}"
    assert row["RowKey"] == f"{sha}%2F2024%2FIMG 1.JPG"
    assert (row["PartitionKey"], row["RowKey"]) == ti.keys_for_blob("photos/dev", name)
    assert row[ti.P_BLOB_NAME] == name
    assert row[ti.P_RELPATH] == "2024/IMG 1.JPG"
    assert row[ti.P_SIZE] == BIG and row[ti.P_MTIME_NS] == BIG + 7
    assert row[ti.P_SHA256] == sha
    assert row[ti.P_BLOB_ETAG] == f'"0x{sha[:8]}"'
    assert row[ti.P_SOURCE_ID] == "testhost"
    assert row[ti.P_IS_CURRENT] is True
    assert row[ti.P_UPLOADED_AT] == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert ti.P_DELETED_AT not in row and ti.P_VERIFY_STATUS not in row
    state.close()


def test_250_rows_in_one_partition_take_3_transactions(cfg, tmp_path: Path):
    """Counted twice for real: by the mirror's own callback and by an azure-core per-request hook that sees
    every HTTP request the Table client sends."""
    table, paths = counted_table(cfg)
    state = StateDB(tmp_path / "state")
    for i in range(250):
        add_blob(state, "photos", f"a/{i}.jpg", sha_of(i, shard="7f"))
    seen: list[tuple[str, int]] = []
    res = TableMirror(table, state, on_transaction=lambda pk, n: seen.append((pk, n))).run()
    assert res.transactions == 3 and res.mirrored == 250 and res.partitions == 1
    assert paths[2:] == ["$batch"] * 3  # after open_table's create-table request and its binding check
    batches = paths.count("$batch")
    assert sorted(seen) == [("photos%2F7f", 50), ("photos%2F7f", 100), ("photos%2F7f", 100)]
    assert len(list(table.query_entities("PartitionKey eq 'photos%2F7f'"))) == 250
    # Replaying is safe and sends nothing: no row is pending any more.
    again = TableMirror(table, state).run()
    assert (again.transactions, again.mirrored) == (0, 0) and paths.count("$batch") == batches == 3
    state.close()


def test_rows_spread_over_partitions_batch_per_partition(cfg, table, tmp_path: Path):
    state = StateDB(tmp_path / "state")
    for i in range(30):
        add_blob(state, "photos", f"{i}.jpg", sha_of(i, shard=("0a", "b3", "ff")[i % 3]))
    res = TableMirror(table, state).run()
    assert (res.transactions, res.partitions, res.mirrored) == (3, 3, 30)
    state.close()


def test_merge_keeps_cloud_verdicts(cfg, table, tmp_path: Path):
    state = StateDB(tmp_path / "state")
    sha = sha_of(3)
    add_blob(state, "photos", "x.jpg", sha)
    TableMirror(table, state).run()
    ent = next(iter(table.list_entities()))
    verdict = {"PartitionKey": ent["PartitionKey"], "RowKey": ent["RowKey"], ti.P_VERIFY_STATUS: Verdict.OK,
               ti.P_LAST_VERIFIED: datetime(2026, 1, 1, tzinfo=UTC), ti.P_VERIFY_DETAIL: "fine"}  # fmt: skip
    table.update_entity(verdict, mode=UpdateMode.MERGE)
    state.mark_deleted(["x.jpg"], now=1_800_000_000)
    assert TableMirror(table, state).run().mirrored == 1
    row = plain(table.get_entity(ent["PartitionKey"], ent["RowKey"]))
    assert row[ti.P_VERIFY_STATUS] == Verdict.OK and row[ti.P_VERIFY_DETAIL] == "fine"
    assert row[ti.P_IS_CURRENT] is False
    assert row[ti.P_DELETED_AT] == datetime.fromtimestamp(1_800_000_000, UTC)
    state.close()


def test_flagged_rows_and_pending_count(cfg, table, tmp_path: Path):
    state = StateDB(tmp_path / "state")
    names = [add_blob(state, "photos/dev", f"{i}.jpg", sha_of(i)) for i in range(4)]
    other = add_blob(state, "photos/dev", "o.jpg", sha_of(9), source="otherhost")
    longer = add_blob(state, "photos/dev/0a", "l.jpg", sha_of(10))  # a longer prefix inside the key range
    TableMirror(table, state).run()
    assert state.count_mirror_pending() == 0
    verdicts = {names[0]: Verdict.MISSING, names[1]: Verdict.OK, names[2]: Verdict.SHA_MISMATCH, other: Verdict.MISSING,
                longer: Verdict.MISSING}  # fmt: skip
    for name, verdict in verdicts.items():
        pk, rk = ti.keys_for_blob(prefix_of(name, name.split("/")[-2]), name)
        table.update_entity({"PartitionKey": pk, "RowKey": rk, ti.P_VERIFY_STATUS: verdict}, mode=UpdateMode.MERGE)
    got = flagged_rows(table, "photos/dev", "testhost")
    assert sorted(r[ti.P_BLOB_NAME] for r in got) == sorted([names[0], names[2]])
    assert {r[ti.P_VERIFY_STATUS] for r in got} == {Verdict.MISSING, Verdict.SHA_MISMATCH}
    assert all(isinstance(r[ti.P_SIZE], int) for r in got)
    state.close()


def test_entity_keys_for_names_table_keys_forbid(tmp_path: Path):
    state = StateDB(tmp_path / "state")
    sha = sha_of(5)
    rel = "a#b/c?d/%e/tab\there/ü.jpg"
    name = add_blob(state, "photos/x", rel, sha)
    state.commit()
    row = state.get_blob(name)
    assert row is not None
    ent = entity_for(row)
    for ch in "/\\#?\t":
        assert ch not in ent["PartitionKey"] and ch not in ent["RowKey"]
    assert ent["RowKey"] == f"{sha}%2Fa%23b%2Fc%3Fd%2F%25e%2Ftab%09here%2Fü.jpg"
    state.close()


def test_missing_table_is_a_clear_config_error(cfg):
    with pytest.raises(ConfigError, match=r"does not exist.*--create-container"):
        open_table(table_service(cfg), cfg)


def test_an_entity_the_service_refuses_is_isolated_and_stays_pending(cfg, table, tmp_path: Path):
    state = StateDB(tmp_path / "state")
    for i in range(3):
        add_blob(state, "photos", f"{i}.jpg", sha_of(i, shard="42"))
    state.record_blob(
        relpath="huge.jpg", size=1, mtime_ns=1, inode=1, sha256=sha_of(99, shard="42"),
        blob_name=f"photos/42/{sha_of(99, shard='42')}/huge.jpg", etag="e", source_id="testhost",
        camera_model="x" * 40_000,  # over the service's 64 KiB per-property limit (UTF-16)
    )  # fmt: skip
    res = TableMirror(table, state).run()
    assert (res.mirrored, res.pending, res.transactions) == (3, 1, 0)
    assert [r["blob_name"] for r in res.rejected] == [f"photos/42/{sha_of(99, shard='42')}/huge.jpg"]
    assert len(list(table.list_entities())) == 3
    state.close()


def test_keys_for_any_file_name_are_accepted_by_the_service(table):
    """Control characters, the forbidden four, '%', non-UTF-8 bytes (as os.fsdecode gives them), very long."""
    sha = sha_of(6)
    names = ["tab\there", "a/b\\c#d?e%f", "raw\udcff\udcfebytes.jpg", "ü" * 600, "#" * 400]
    keys = set()
    for rel in names:
        rk = ti.row_key(sha, rel)
        assert not any(c in rk for c in "/\\#?\t") and len(rk.encode("utf-16-le")) <= ti.MAX_KEY_BYTES
        rk.encode("utf-8")  # no lone surrogate left
        table.upsert_entity({"PartitionKey": ti.partition_key("photos", sha), "RowKey": rk, "n": rel.encode(
            "utf-8", "surrogateescape").hex()})  # fmt: skip
        keys.add(rk)
    assert ti.row_key(sha, "raw\udcff\udcfebytes.jpg") == f"{sha}%2Fraw%FF%FEbytes.jpg"
    stored = {e["RowKey"] for e in table.list_entities()}
    assert stored == keys and len(keys) == len(names)


def test_throttled_transactions_are_retried_by_the_sdk_policy(azurite, cfg, tmp_path: Path):
    """503 ServerBusy on the first two transactions (a real HTTP proxy in front of Azurite's Table port)."""
    from .faultproxy import FaultPlan, FaultProxy

    plan = FaultPlan(busy=1.0, first_n=2, retry_after=0, only=lambda r: r.path.endswith("$batch"))
    with FaultProxy(azurite.table_port, plan) as proxy:
        conn = (cfg.connection_string or "").replace(
            azurite.table_url, f"http://127.0.0.1:{proxy.port}/devstoreaccount1"
        )
        proxied = StorageConfig(**{**cfg.__dict__, "connection_string": conn})
        table = open_table(table_service(proxied), proxied, create=True)
        state = StateDB(tmp_path / "state")
        for i in range(150):
            add_blob(state, "photos", f"{i}.jpg", sha_of(i, shard="c4"))
        res = TableMirror(table, state).run()
        state.close()
        batches = [e for e in proxy.exchanges() if e.request.path.endswith("$batch")]
    assert (res.error, res.mirrored, res.transactions, res.pending) == ("", 150, 2, 0)
    assert proxy.fault_counts()["busy"] == 2 and len(batches) == 4
    assert [e.status for e in batches].count(202) == 2


def test_table_endpoint_from_account_url_or_explicit():
    class Token:
        def get_token(self, *scopes, **kw):  # never called: no request is made
            raise AssertionError

    base = {"container": "c1c", "table": "t1t", "prefix": "p", "source_id": "s"}
    derived = table_service(StorageConfig(**base, account_url="https://acct.blob.core.windows.net"), credential=Token())
    assert derived.url.startswith("https://acct.table.core.windows.net")
    explicit = table_service(
        StorageConfig(**base, account_url="https://acct.blob.example.org", table_endpoint="https://tables.example.org"),
        credential=Token(),
    )
    assert explicit.url.startswith("https://tables.example.org")


def test_rows_new_this_run_are_inserted_and_an_existing_one_falls_back_to_merge(cfg, table, tmp_path: Path):
    """``fresh_since``: rows recorded from then on are inserted; if one exists after all (here with a cloud
    verdict, as after a lost state dir) the service refuses the insert and the batch goes again as merges,
    which keep the verdict."""
    table, requests = counted_table(cfg)
    state = StateDB(tmp_path / "state")
    names = [add_blob(state, "photos", f"{i}.jpg", sha_of(i, shard="5e")) for i in range(3)]
    pk, rk = ti.keys_for_blob("photos", names[0])
    table.create_entity({"PartitionKey": pk, "RowKey": rk, ti.P_VERIFY_STATUS: Verdict.OK})
    requests.clear()
    res = TableMirror(table, state, fresh_since=1_700_000_000.0).run()
    assert (res.mirrored, res.transactions, res.pending, res.error) == (3, 1, 0, "")
    assert len(requests) == 2  # the refused insert, then the merge
    rows = {r[ti.P_BLOB_NAME]: r for r in map(plain, table.query_entities(f"PartitionKey eq '{pk}'"))}
    assert sorted(rows) == sorted(names)
    assert rows[names[0]][ti.P_VERIFY_STATUS] == Verdict.OK and rows[names[0]][ti.P_SIZE] == 10
    # Rows recorded before ``fresh_since`` are merged as always: one request, no conflict possible.
    state.set_mirror_pending(names)
    requests.clear()
    again = TableMirror(table, state, fresh_since=1_800_000_000.0).run()
    assert (again.mirrored, again.transactions, len(requests)) == (3, 1, 1)
    state.close()


def test_every_partition_is_one_transaction_and_an_existing_fresh_row_is_merged(cfg, tmp_path: Path):
    """Even a one-row partition goes as a transaction (table_batch: as cheap as a single write); an inserted
    row that exists after all makes its transaction go again as merges, which keep the cloud's verdict."""
    table, paths = counted_table(cfg)
    state = StateDB(tmp_path / "state")
    one = add_blob(state, "photos", "one.jpg", sha_of(1, shard="11"))
    two = [add_blob(state, "photos", f"two{i}.jpg", sha_of(2 + i, shard="22")) for i in range(2)]
    pk, rk = ti.keys_for_blob("photos", two[0])
    table.create_entity({"PartitionKey": pk, "RowKey": rk, ti.P_VERIFY_STATUS: Verdict.OK})
    paths.clear()
    res = TableMirror(table, state, fresh_since=1_700_000_000.0).run()
    assert (res.mirrored, res.transactions, res.partitions, res.pending, res.error) == (3, 2, 2, 0, "")
    assert paths == ["$batch"] * 3  # partition 11; partition 22 refused as inserts, then merged
    rows = {r[ti.P_BLOB_NAME]: r for r in map(plain, table.list_entities())}
    assert sorted(rows) == sorted([one, *two])
    assert rows[two[0]][ti.P_VERIFY_STATUS] == Verdict.OK and rows[two[0]][ti.P_SHA256] == sha_of(2, shard="22")
    state.close()


def test_live_mirror_sends_during_the_run_and_leaves_the_rest_pending(table, tmp_path: Path):
    """Rows go out as soon as a partition fills a transaction or ``flush_bytes`` more content was stored;
    what was sent is marked mirrored, what was not stays pending for the end-of-run pass."""
    from sync_core.index.table_mirror import LiveMirror

    state = StateDB(tmp_path / "state")
    live = LiveMirror(TableMirror(table, state, batch_size=3, fresh_since=1_600_000_000.0), flush_bytes=1000)

    def add(rel: str, sha: str, nbytes: int) -> str:
        row = add_row(state, "photos", rel, sha)
        live.add(row, nbytes)
        return row.blob_name

    full = [add(f"full{i}.jpg", sha_of(i, shard="aa"), 10) for i in range(3)]  # a full transaction: sent
    flushed = add("flushed.jpg", sha_of(10, shard="bb"), 990)  # 1000 bytes stored: every buffer is sent
    later = add("later.jpg", sha_of(11, shard="cc"), 10)  # buffered when the run ends: not sent
    res = live.close()
    assert (res.mirrored, res.transactions, res.error) == (4, 2, "")
    in_table = {r[ti.P_BLOB_NAME] for r in map(plain, table.list_entities())}
    assert in_table == {*full, flushed}
    state.commit()  # pending rows are read through another connection
    assert {r.blob_name for r in state.iter_mirror_pending()} == {later}  # the end-of-run pass sends it
    assert TableMirror(table, state).run().mirrored == 1 and state.count_mirror_pending() == 0
    state.close()


def test_live_mirror_stops_at_a_service_error_and_rows_stay_pending(cfg, tmp_path: Path):
    from sync_core.index.table_mirror import LiveMirror

    missing = table_service(cfg).get_table_client("nosuchtable")  # every transaction fails (404)
    state = StateDB(tmp_path / "state")
    live = LiveMirror(TableMirror(missing, state, batch_size=2), flush_bytes=10**9)
    for i in range(4):
        live.add(add_row(state, "photos", f"f{i}.jpg", sha_of(i, shard="dd")), 1)
    res = live.close()
    assert res.mirrored == 0 and "does not exist" in res.error
    assert state.count_mirror_pending() == 4
    state.close()


def test_live_mirror_sends_every_buffer_after_flush_rows_rows(table, tmp_path: Path):
    from sync_core.index.table_mirror import LiveMirror

    state = StateDB(tmp_path / "state")
    live = LiveMirror(TableMirror(table, state), flush_bytes=10**12, flush_rows=3)
    names = []
    for i in range(5):  # five partitions: rows 1-3 go out with the third, rows 4-5 stay buffered
        row = add_row(state, "photos", f"r{i}.jpg", sha_of(i, shard=f"e{i}"))
        names.append(row.blob_name)
        live.add(row, 1)
    res = live.close()
    assert (res.mirrored, res.transactions) == (3, 3)
    assert {r[ti.P_BLOB_NAME] for r in map(plain, table.list_entities())} == set(names[:3])
    state.close()


def test_encode_key_matches_one_substitution_of_the_forbidden_set():
    """The fast path (``%`` and ``/`` replaced, the rest by regex) gives what one substitution of every
    forbidden character gives, for every character class a key can hold."""
    import random

    alphabet = "aZ09 %/\\#?~'é€\x00\x1f\x7f\x85\x9f\udc80\udcff日-_.|"
    rng = random.Random(8)
    samples = [
        "",
        "plain",
        "100%/2",
        "a%2Fb",
        *("".join(rng.choices(alphabet, k=rng.randint(1, 24))) for _ in range(2000)),
    ]
    for text in samples:
        assert ti.encode_key(text) == ti._FORBIDDEN.sub(ti._enc, text), repr(text)


def test_record_blob_returns_the_row_as_recorded(tmp_path: Path):
    state = StateDB(tmp_path / "state")
    sha = sha_of(1)
    name = f"photos/{sha[:2]}/{sha}/a.jpg"
    kw = dict(relpath="a.jpg", size=5, mtime_ns=7, inode=1, sha256=sha, blob_name=name, source_id="s")
    first = state.record_blob(etag="e1", capture_time="2024-01-01T00:00:00", now=100.0, **kw)
    again = state.record_blob(etag="e2", now=200.0, **kw)  # re-recorded: etag new, capture time kept
    assert (first.etag, first.uploaded_at, first.capture_time, first.is_current) == (
        "e1",
        100.0,
        "2024-01-01T00:00:00",
        True,
    )
    state.commit()  # pending rows are read through another connection: the recorded row, as the SQL sees it
    assert [r for r in state.iter_mirror_pending() if r.blob_name == name] == [again]
    assert (again.etag, again.uploaded_at, again.capture_time) == ("e2", 100.0, "2024-01-01T00:00:00")
    state.close()


def test_one_mapping_row_to_entity_and_back(table):
    """What the mirror writes and what a rebuild or a repair reads back are one mapping: a row survives the
    round trip through the service unchanged (Int64 sizes and mtimes, times, history, capture facts)."""
    sha = sha_of(7)
    name = f"photos/x/{sha[:2]}/{sha}/a/b.jpg"
    row = BlobRow(name, "a/b.jpg", sha, BIG, -BIG, "0x8D1", "testhost", 1_700_000_000.25, False, 1_700_000_100.5,
                  "2021-05-01T10:00:00", "Pixel 7")  # fmt: skip
    table.create_entity(entity_for(row))
    assert row_from_entity(plain(table.get_entity(*ti.keys_for_blob("photos/x", name)))) == row
    orphan = entity_from_blob(name, BlobMeta(sha, "a/b.jpg", BIG, -BIG, "testhost"), "0x8D1", None)
    expected = entity_for(replace(row, is_current=True, deleted_at=None, capture_time=None, camera_model=None))
    del expected[ti.P_UPLOADED_AT]  # unknown from the blob alone when its creation time is
    assert orphan == expected
