"""Hand-built entity-group transactions (sync_core.index.table_batch) against Azurite's Table service: the rows they
write are the rows the SDK writes, all-or-nothing, errors carry the refused operation, retries apply."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

from agent.emulator import ACCOUNT_KEY
from sync_core.config import StorageConfig
from sync_core.index import table_batch
from sync_core.index.table_mirror import open_table
from sync_core.storage import sdk_internals
from sync_core.storage.clients import table_service

from .faultproxy import FaultPlan, FaultProxy

KEYS = ["plain", "it's", "ünï|cødé", "100%", "a b+c&d=e;f", "~x"]  # every quoting rule of a key URL


def entity(pk: str, rk: str, i: int) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": rk,
        "BlobName": f"photos/ab/{i:064x}/Ferien 2024/Bild #{i} – ü.jpg",
        "Size": EntityProperty(5 * 2**31 + i, EdmType.INT64),
        "Small": i,
        "Ratio": 0.5 + i,
        "IsCurrent": i % 2 == 0,
        "UploadedAt": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "Quote": 'say "cheese"\\ \n',
    }


def rows(table: TableClient) -> list[dict[str, Any]]:
    return sorted((dict(e) for e in table.list_entities()), key=lambda d: (d["PartitionKey"], d["RowKey"]))


@pytest.fixture(params=["direct", "public"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each behaviour holds for the direct body and for the public ``submit_transaction`` fallback (what runs
    when the SDK keeps its pipeline elsewhere)."""
    if request.param == "public":
        monkeypatch.setattr(sdk_internals, "TABLE_PIPELINE", False)
    return str(request.param)


@pytest.fixture
def tables(cfg: StorageConfig) -> tuple[TableClient, TableClient]:
    service = table_service(cfg)
    a = open_table(service, dataclasses.replace(cfg, table=cfg.table + "sdk"), create=True)
    b = open_table(service, dataclasses.replace(cfg, table=cfg.table + "ours"), create=True)
    return a, b


def test_inserts_and_merges_write_what_the_sdk_writes(tables, path):
    sdk, ours = tables
    ents = [entity("p|1", rk, i) for i, rk in enumerate(KEYS)]
    sdk.submit_transaction([("create", e) for e in ents])
    table_batch.submit(ours, [("create", e) for e in ents])
    assert rows(ours) == rows(sdk) and len(rows(ours)) == len(KEYS)

    # A merge-upsert changes only what it sends (keeps the rest) and inserts a missing row.
    for t in (sdk, ours):
        t.update_entity({"PartitionKey": "p|1", "RowKey": "it's", "VerifyStatus": "ok"}, mode=UpdateMode.MERGE)
    patch = {"PartitionKey": "p|1", "RowKey": "it's", "Small": 99}
    sdk.submit_transaction([("upsert", patch, {"mode": UpdateMode.MERGE}), ("upsert", entity("p|1", "new", 7))])
    table_batch.submit(ours, [("merge", patch), ("merge", entity("p|1", "new", 7))])
    got = rows(ours)
    assert got == rows(sdk)
    changed = next(r for r in got if r["RowKey"] == "it's")
    assert (changed["Small"], changed["VerifyStatus"], changed["BlobName"]) == (99, "ok", entity("", "", 1)["BlobName"])


def test_a_refused_operation_refuses_the_whole_transaction(tables, path):
    _, ours = tables
    table_batch.submit(ours, [("create", entity("p", "taken", 1))])
    ops: list[tuple[table_batch.Op, dict[str, Any]]] = [
        ("create", entity("p", "fresh", 2)),
        ("create", entity("p", "taken", 3)),
    ]
    with pytest.raises(table_batch.TransactionError) as info:
        table_batch.submit(ours, ops)
    err = info.value
    assert isinstance(err, HttpResponseError)  # callers handle it like any service error
    assert (err.status_code, err.error_code, err.index) == (409, "EntityAlreadyExists", 1)
    assert [r["RowKey"] for r in rows(ours)] == ["taken"]  # "fresh" was not written either
    assert rows(ours)[0]["Small"] == 1


def test_a_conditional_update_merges_into_the_version_read_and_refuses_another(tables, path):
    """The verifier's verdicts: a merge under the etag it read lands; after another write, 412, nothing."""
    _, ours = tables
    table_batch.submit(ours, [("create", entity("p", "a", 1)), ("create", entity("p", "b", 2))])
    etags = {e["RowKey"]: e.metadata["etag"] for e in ours.list_entities()}
    ok: list[table_batch.Operation] = [
        ("update", {"PartitionKey": "p", "RowKey": rk, "VerifyStatus": "ok"}, etags[rk]) for rk in ("a", "b")
    ]
    table_batch.submit(ours, ok)
    got = {r["RowKey"]: r for r in rows(ours)}
    assert got["a"]["VerifyStatus"] == "ok" and got["a"]["Small"] == 1  # merged: the rest kept
    patch = {"PartitionKey": "p", "RowKey": "a", "VerifyStatus": "missing"}
    stale: list[table_batch.Operation] = [("update", patch, etags["a"])]
    with pytest.raises(table_batch.TransactionError) as info:
        table_batch.submit(ours, stale)
    assert info.value.status_code == 412
    assert {r["RowKey"]: r["VerifyStatus"] for r in rows(ours)} == {"a": "ok", "b": "ok"}


def test_a_missing_table_and_bad_input_are_errors(cfg, tables, path):
    missing = table_service(cfg).get_table_client("nosuchtable")
    with pytest.raises(HttpResponseError) as info:
        table_batch.submit(missing, [("create", entity("p", "r", 1))])
    assert info.value.status_code == 404

    _, ours = tables
    with pytest.raises(TypeError, match="'Blob'"):
        table_batch.submit(ours, [("create", {"PartitionKey": "p", "RowKey": "r", "Blob": b"bytes"})])
    with pytest.raises(TypeError, match="naive"):
        table_batch.submit(ours, [("create", {"PartitionKey": "p", "RowKey": "r", "At": datetime(2026, 1, 1)})])
    with pytest.raises(ValueError, match=r"1\.\.100"):
        table_batch.submit(ours, [("create", entity("p", f"r{i}", i)) for i in range(101)])
    assert rows(ours) == []


def test_a_busy_service_is_retried_by_the_client_pipeline(azurite, cfg, tables):
    _, ours = tables
    with FaultProxy(azurite.table_port) as proxy:
        proxy.set_plan(FaultPlan(busy=1.0, retry_after=0, first_n=1, only=lambda r: r.path.endswith("$batch")))
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint={proxy.blob_url};"
        )
        proxied = table_service(dataclasses.replace(cfg, connection_string=conn)).get_table_client(ours.table_name)
        table_batch.submit(proxied, [("create", entity("p", f"r{i}", i)) for i in range(3)])
        assert proxy.fault_counts().get("busy") == 1
        assert [x.status for x in proxy.exchanges() if x.request.path.endswith("$batch")] == [503, 202]
    assert [r["RowKey"] for r in rows(ours)] == ["r0", "r1", "r2"]
