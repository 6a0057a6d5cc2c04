"""sync_core.index.table_query: the direct Query Entities reader gives exactly what the SDK's query_entities gives
(Azurite), raises what it raises, and follows continuations to the end."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient

from sync_core.config import StorageConfig
from sync_core.index.table_index import partition_key
from sync_core.index.table_mirror import flagged_rows, open_table, prefix_rows
from sync_core.index.table_query import ETAG, odata_string, plain_row, query_pages, sdk_row
from sync_core.storage import sdk_internals
from sync_core.storage.clients import table_service

KEYS = ["p%2F00", "p%2F01", "p%2F0'2", "p%2F0ü", "q%2F00"]  # a quote and a non-ASCII key among them


@pytest.fixture
def table(cfg: StorageConfig) -> TableClient:
    client = open_table(table_service(cfg), cfg, create=True)
    for pk in KEYS:
        for i in range(3):
            client.create_entity(
                {
                    "PartitionKey": pk,
                    "RowKey": f"{i:02d} x y'z 📷.jpg",
                    "Size": EntityProperty(2**40 + i, EdmType.INT64),
                    "Small": i,
                    "Ratio": 0.5 + i,
                    "Flag": i % 2 == 0,
                    "Name": f"name {pk} {i}",
                    "When": datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC),
                    "Blob": b"\x00\xff" * (i + 1),
                    "Id": uuid.UUID(int=i),
                    "Missing": None,
                }
            )
    return client


def _sdk(table: TableClient, query: str, select: list[str] | None, page_size: int) -> list[list[dict]]:
    pager = table.query_entities(query, select=select, results_per_page=page_size)
    return [[sdk_row(e) for e in page] for page in pager.by_page()]


@pytest.mark.parametrize("select", [None, ["PartitionKey", "RowKey", "Size", "When", "Flag"]])
def test_direct_pages_equal_the_sdk_query(table: TableClient, select: list[str] | None):
    low, high = odata_string("p%2F0'"), odata_string("p%2F0ü")  # "'" sorts before "0"
    query = f"PartitionKey ge {low} and PartitionKey le {high}"
    direct = list(query_pages(table, query, select=select, page_size=4))
    sdk = _sdk(table, query, select, 4)
    assert [len(p) for p in direct] == [4, 4, 4] == [len(p) for p in sdk]  # continuations followed to the end
    assert direct == sdk
    rows = [r for p in direct for r in p]
    assert [r["PartitionKey"] for r in rows] == sorted(KEYS[:-1] * 3)
    assert rows[0]["Size"] == 2**40 and type(rows[0]["Size"]) is int
    assert rows[0]["When"] == datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)
    assert all(r[ETAG].startswith('W/"datetime') for r in rows)
    assert "Missing" not in rows[0] and "Timestamp" not in rows[0]
    if select is None:
        assert rows[1]["Blob"] == b"\x00\xff\x00\xff" and rows[1]["Id"] == uuid.UUID(int=1)
        assert rows[1]["Small"] == 1 and rows[1]["Ratio"] == 1.5 and rows[1]["Flag"] is False


def test_a_quote_in_a_key_is_escaped(table: TableClient):
    pages = list(query_pages(table, "PartitionKey eq " + odata_string("p%2F0'2")))
    assert [r["RowKey"] for r in pages[0]] == [f"{i:02d} x y'z 📷.jpg" for i in range(3)]


def test_no_match_is_one_empty_page(table: TableClient):
    assert list(query_pages(table, "PartitionKey eq 'nothing'")) == [[]]


def test_errors_are_the_sdks(table: TableClient, cfg: StorageConfig):
    missing = table_service(cfg).get_table_client(cfg.table + "missing")
    with pytest.raises(ResourceNotFoundError) as mine:
        next(iter(query_pages(missing, "PartitionKey eq 'a'")))
    with pytest.raises(ResourceNotFoundError) as theirs:
        next(iter(missing.query_entities("PartitionKey eq 'a'")))
    assert mine.value.error_code == theirs.value.error_code == "TableNotFound"
    with pytest.raises(HttpResponseError) as bad:
        next(iter(query_pages(table, "PartitionKey eq")))  # not a filter the service can parse
    assert bad.value.status_code == 400


def test_the_sdk_path_is_used_when_the_pipeline_is_not_where_we_expect(table: TableClient, monkeypatch):
    monkeypatch.setattr(sdk_internals, "TABLE_ERRORS", False)
    pages = list(query_pages(table, "PartitionKey eq 'p%2F01'", page_size=2))
    assert [len(p) for p in pages] == [2, 1]
    assert pages == _sdk(table, "PartitionKey eq 'p%2F01'", None, 2)


def test_plain_row_types():
    row = plain_row(
        {
            "odata.etag": "W/1",
            "odata.editLink": "x",
            "PartitionKey": "a",
            "RowKey": "b",
            "Timestamp@odata.type": "Edm.DateTime",
            "Timestamp": "2026-11-25T00:00:00.1234567Z",
            "N@odata.type": "Edm.Int64",
            "N": "-9007199254740993",
            "D@odata.type": "Edm.Double",
            "D": "NaN",
            "T@odata.type": "Edm.DateTime",
            "T": "2026-11-25T10:11:12Z",
            "S": "text",
            "Z": None,
        }
    )
    assert math.isnan(row.pop("D"))
    assert row == {
        ETAG: "W/1",
        "PartitionKey": "a",
        "RowKey": "b",
        "N": -9007199254740993,
        "T": datetime(2026, 11, 25, 10, 11, 12, tzinfo=UTC),
        "S": "text",
    }


def test_prefix_rows_substitutes_parameters_as_the_sdk_does(cfg: StorageConfig):
    """``prefix_rows`` (restore, rebuild, flagged rows) reads through ``query_pages``; a source id with a
    quote and a verdict list still select exactly their rows."""
    table = open_table(table_service(cfg), cfg, create=True)
    pk = partition_key("photos", "ab")
    for i, (sid, status) in enumerate([("o'brien", "missing"), ("o'brien", "ok"), ("other", "missing")]):
        table.create_entity({"PartitionKey": pk, "RowKey": f"r{i}", "SourceId": sid, "VerifyStatus": status})
    nested = partition_key("photos/a", "ab")  # inside the key range, but another prefix's partition
    table.create_entity({"PartitionKey": nested, "RowKey": "n", "SourceId": "o'brien"})
    assert [r["RowKey"] for r in prefix_rows(table, "photos", "o'brien")] == ["r0", "r1"]
    assert [r["RowKey"] for r in flagged_rows(table, "photos", "o'brien")] == ["r0"]


def test_a_sas_in_the_table_url_is_kept(table: TableClient, azurite):
    """A client made from a table URL with a SAS carries it in the URL, not in a pipeline policy."""
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.data.tables import TableSasPermissions, generate_table_sas

    from agent.emulator import ACCOUNT, ACCOUNT_KEY

    sas = generate_table_sas(
        AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY),
        table.table_name,
        permission=TableSasPermissions(read=True),
        expiry=datetime(2099, 1, 1, tzinfo=UTC),
    )
    with_sas = TableClient.from_table_url(f"{azurite.table_url}/{table.table_name}?{sas}")
    assert "?" in with_sas.url
    rows = [r for p in query_pages(with_sas, "PartitionKey eq 'p%2F01'") for r in p]
    assert [r["RowKey"] for r in rows] == [f"{i:02d} x y'z 📷.jpg" for i in range(3)]


def test_throttled_and_reset_pages_are_retried_by_the_clients_policy(table: TableClient, azurite, cfg: StorageConfig):
    """503 ServerBusy and a reset connection on query pages (a real HTTP proxy in front of Azurite's Table
    port): the table client's retry policy answers them, every row still arrives once."""
    from .faultproxy import FaultPlan, FaultProxy

    plan = FaultPlan(busy=0.5, reset=0.5, first_n=3, retry_after=0, only=lambda r: r.path.endswith("()"))
    with FaultProxy(azurite.table_port, plan) as proxy:
        proxy_url = f"http://127.0.0.1:{proxy.port}/devstoreaccount1"
        conn = (cfg.connection_string or "").replace(azurite.table_url, proxy_url)
        proxied = table_service(StorageConfig(**{**cfg.__dict__, "connection_string": conn}))
        pages = list(query_pages(proxied.get_table_client(cfg.table), "PartitionKey ge 'p'", page_size=4))
        queries = [e for e in proxy.exchanges() if e.request.path.endswith("()")]
    expected = [r["RowKey"] for p in _sdk(table, "PartitionKey ge 'p'", None, 4) for r in p]
    assert [r["RowKey"] for p in pages for r in p] == expected and len(expected) == 15
    assert sum(proxy.fault_counts().values()) == 3 and len(queries) == len(pages) + 3
