"""sync_core.storage.sdk_internals is the one door to the Azure SDKs' private names: no other product file touches
them, this SDK takes every fast path, and with a fast path switched off its public-API fallback gives the same
result against Azurite (List Blobs, Put Blob, Get Blob, Query Entities, entity-group transactions)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta
from sync_core.index import table_batch
from sync_core.index.table_mirror import open_table
from sync_core.index.table_query import query_pages
from sync_core.storage import sdk_internals
from sync_core.storage.clients import blob_service, open_container, table_service
from sync_core.storage.download import Downloads
from sync_core.storage.listing import list_pages
from sync_core.storage.put_blob import put_sender
from sync_core.sync.transfer import Transfer

ROOT = Path(__file__).resolve().parent.parent
# An underscore name of azure.*, or the private attributes the fast paths read on SDK clients.
PRIVATE = re.compile(
    r"azure\.[a-z_.]*\._[a-z]|_client\._client|\._client\.|[\"']_client[\"']|_upload_helpers|\._pipeline"
    r"|\._config|[\"']_config[\"']|_process_table_error|process_storage_error|_convert_mod_error"
)
NAMES = ["a b/c d.jpg", "100%/50%25.jpg", "quote'\"/<x>.jpg", "emoji/📷 ünï.heic"]


def _product_files() -> list[Path]:
    files = [ROOT / "function_app.py"]
    for package in ("sync_core", "agent", "gallery"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def test_only_the_door_touches_sdk_internals():
    door = ROOT / "sync_core" / "storage" / "sdk_internals.py"
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in _product_files()
        if path != door
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert offenders == []
    assert PRIVATE.search(door.read_text(encoding="utf-8"))  # the pattern does find what the door holds


def test_this_sdk_takes_every_fast_path(cfg: StorageConfig, container: ContainerClient):
    assert sdk_internals.BLOB_PIPELINE and sdk_internals.BLOB_PUT_ERRORS and sdk_internals.BLOB_GET_ERRORS
    assert sdk_internals.TABLE_PIPELINE and sdk_internals.TABLE_ERRORS
    client = open_container(blob_service(cfg), cfg)
    assert put_sender(client) is not None and Transfer(client)._put is not None
    assert Downloads(client).direct
    table = open_table(table_service(cfg), cfg, create=True)
    assert sdk_internals.table_sender(table) is not None and sdk_internals.table_query_sender(table) is not None


def _listing(container: ContainerClient) -> list[list[tuple[Any, ...]]]:
    return [
        [(e.name, e.size, e.etag, dict(e.metadata), e.created) for e in page]
        for page in list_pages(container, "p/", metadata=True, page_size=3)
    ]


def test_listing_fallback_gives_the_same_pages(container: ContainerClient, monkeypatch: pytest.MonkeyPatch):
    for i, name in enumerate(NAMES):
        container.get_blob_client("p/" + name).upload_blob(b"x" * i, metadata={"sha256": f"{i:064x}"})
    fast = _listing(container)
    monkeypatch.setattr(sdk_internals, "BLOB_PIPELINE", False)
    assert sdk_internals.blob_sender(container) is None
    assert _listing(container) == fast
    assert [len(p) for p in fast] == [3, 1]


@pytest.mark.parametrize("flag", ["BLOB_PIPELINE", "BLOB_PUT_ERRORS"])
def test_put_fallback_writes_the_same_blob_and_fails_the_same_way(
    cfg: StorageConfig, container: ContainerClient, monkeypatch: pytest.MonkeyPatch, flag: str
):
    client = open_container(blob_service(cfg), cfg)
    data = b"the same bytes"
    meta = BlobMeta(hashlib.sha256(data).hexdigest(), "a.jpg", len(data), 1_700_000_000_123_456_789, "host")
    fast = Transfer(client)
    assert fast._put is not None
    fast.upload("fast/x.jpg", "", meta, "image/jpeg", data)
    with pytest.raises(ResourceExistsError) as fast_error:
        fast._put.put("fast/x.jpg", data, {}, None)

    monkeypatch.setattr(sdk_internals, flag, False)
    public = Transfer(client)
    assert public._put is None and put_sender(client) is None
    public.upload("public/x.jpg", "", meta, "image/jpeg", data)
    with pytest.raises(ResourceExistsError) as public_error:
        client.upload_blob("public/x.jpg", data, overwrite=False)

    a = client.get_blob_client("fast/x.jpg").get_blob_properties()
    b = client.get_blob_client("public/x.jpg").get_blob_properties()
    assert (a.size, a.blob_type, a.metadata, dict(a.content_settings)) == (
        b.size,
        b.blob_type,
        b.metadata,
        dict(b.content_settings),
    )
    assert client.download_blob("public/x.jpg").readall() == data
    assert fast_error.value.error_code == public_error.value.error_code


def test_query_fallback_gives_the_same_rows_and_errors(cfg: StorageConfig, monkeypatch: pytest.MonkeyPatch):
    table = open_table(table_service(cfg), cfg, create=True)
    for i in range(5):
        table.create_entity(
            {
                "PartitionKey": f"p{i % 2}",
                "RowKey": f"r'{i} ü",
                "Size": EntityProperty(2**40 + i, EdmType.INT64),
                "When": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
                "Flag": i % 2 == 0,
            }
        )
    missing = table_service(cfg).get_table_client(cfg.table + "missing")

    def run() -> tuple[list[list[dict[str, Any]]], Any]:
        with pytest.raises(ResourceNotFoundError) as error:
            next(iter(query_pages(missing, "PartitionKey eq 'p0'")))
        return list(query_pages(table, "PartitionKey ge 'p0'", page_size=2)), error.value.error_code

    fast = run()
    monkeypatch.setattr(sdk_internals, "TABLE_ERRORS", False)
    assert sdk_internals.table_query_sender(table) is None
    assert run() == fast
    assert [len(p) for p in fast[0]] == [2, 2, 1] and fast[1] == "TableNotFound"


def test_batch_fallback_writes_the_same_rows(cfg: StorageConfig, monkeypatch: pytest.MonkeyPatch):
    service = table_service(cfg)
    fast_table = open_table(service, dataclasses.replace(cfg, table=cfg.table + "fast"), create=True)
    public_table = open_table(service, dataclasses.replace(cfg, table=cfg.table + "public"), create=True)

    def run(table: TableClient) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
        ents = [
            {"PartitionKey": "p", "RowKey": f"r{i}", "Size": EntityProperty(2**33, EdmType.INT64)} for i in range(3)
        ]
        table_batch.submit(table, [("create", e) for e in ents])
        table_batch.submit(table, [("merge", {"PartitionKey": "p", "RowKey": "r1", "Note": "x"})])
        with pytest.raises(table_batch.TransactionError) as error:
            table_batch.submit(table, [("create", {"PartitionKey": "p", "RowKey": "new"}), ("create", ents[2])])
        err = error.value
        listed = sorted((dict(e) for e in table.list_entities()), key=lambda d: d["RowKey"])
        return listed, (err.status_code, err.error_code, err.index)

    fast = run(fast_table)
    monkeypatch.setattr(sdk_internals, "TABLE_PIPELINE", False)
    assert sdk_internals.table_sender(public_table) is None
    assert run(public_table) == fast
    assert [r["RowKey"] for r in fast[0]] == ["r0", "r1", "r2"] and fast[0][1]["Note"] == "x"
    assert fast[1] == (409, "EntityAlreadyExists", 1)
