"""Table query pages as plain dicts, for readers that go through a whole index (verification, restore, rebuild).

Verification reads every index row on every run, so the client's cost per row matters as much as the
service's. The SDK's ``query_entities`` turns each row into a ``TableEntity`` through a generic converter
(every property's EDM type looked up, ``Int64`` wrapped in an ``EntityProperty``, ``DateTime`` parsed with
``strptime``), which verification then unwraps again: several times the CPU of ``json.loads`` and one pass
over the typed properties (figures in ``docs/benchmarks.md``), and it holds the GIL. We
send the same Query Entities request through the table client's own pipeline — its credential, retry
policy, throttle hook and connection pool all apply — as :mod:`sync_core.storage.listing` does for List Blobs. A
failed page raises what the SDK would (same class and ``error_code``), through the SDK's own error
mapping (both reached through :mod:`~sync_core.storage.sdk_internals`). If this SDK version keeps them
elsewhere, the public ``query_entities`` is used instead; tests check both give the same rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote
from uuid import UUID

from azure.core.rest import HttpRequest
from azure.data.tables import EntityProperty, TableClient

from sync_core.storage.listing import read_page
from sync_core.storage.sdk_internals import raise_table_query_error, table_query_sender

ETAG = "odata.etag"  # the key a row's own etag is kept under (what If-Match needs)
_ACCEPT = "application/json;odata=minimalmetadata"


def odata_string(value: str) -> str:
    """``value`` as an OData string literal (single quotes doubled), for a ``$filter``."""
    return "'" + value.replace("'", "''") + "'"


def _datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)  # the service sends up to 7 fractional digits; 6 are kept
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "Edm.Int64": int,
    "Edm.Int32": int,
    "Edm.Double": float,  # "NaN", "Infinity" and "-Infinity" arrive as strings
    "Edm.DateTime": _datetime,
    "Edm.Guid": UUID,
    "Edm.Binary": base64.b64decode,
    "Edm.String": str,
}


def plain_row(entity: dict[str, Any]) -> dict[str, Any]:
    """One row of a query response as plain Python values, plus its etag under :data:`ETAG`."""
    row: dict[str, Any] = {}
    types: dict[str, str] = {}
    for key, value in entity.items():
        if key.endswith("@odata.type"):
            types[key[:-11]] = value
        elif key.startswith("odata."):
            if key == ETAG:
                row[ETAG] = value
        elif value is not None:
            row[key] = value
    for key, edm in types.items():
        if key in row:
            convert = _CONVERT.get(edm)
            if convert is not None:
                row[key] = convert(row[key])
    row.pop("Timestamp", None)  # the SDK keeps it in metadata, not among the properties
    return row


def sdk_row(entity: Any) -> dict[str, Any]:
    """The same plain row from an SDK ``TableEntity`` (the fallback, and what tests compare against)."""
    row = {k: (v.value if isinstance(v, EntityProperty) else v) for k, v in entity.items() if v is not None}
    row[ETAG] = entity.metadata["etag"]
    return row


def query_pages(
    table: TableClient, query_filter: str, *, select: Sequence[str] | None = None, page_size: int = 1000
) -> Iterator[list[dict[str, Any]]]:
    """Pages of the rows matching ``query_filter`` (parameters already substituted, e.g. with
    :func:`odata_string`), in key order, as :func:`plain_row` dicts."""
    send = table_query_sender(table)
    if send is None:
        pager = table.query_entities(query_filter, select=list(select) if select else None, results_per_page=page_size)
        for page in pager.by_page():
            yield [sdk_row(e) for e in page]
        return
    endpoint, _, sas = table.url.partition("?")  # a SAS in the client's URL is not a pipeline policy: keep it
    base = f"{endpoint.rstrip('/')}/{quote(table.table_name)}()"
    query = {"$top": str(page_size), "$filter": query_filter}
    if select:
        query["$select"] = ",".join(select)
    headers = {"Accept": _ACCEPT, "DataServiceVersion": "3.0", "x-ms-version": table.api_version}
    next_keys: dict[str, str] = {}
    while True:
        # Parameters are encoded here as the SDK does (``$`` kept literal): ``HttpRequest(params=)`` would
        # send ``%24filter``, which Azurite does not recognise. A SAS goes last.
        parts = [f"{k}={quote(v, safe='')}" for k, v in {**query, **next_keys}.items()]
        qs = "&".join([*parts, sas] if sas else parts)
        response = read_page(send, partial(HttpRequest, "GET", f"{base}?{qs}", headers=headers))
        if response.status_code != 200:
            raise_table_query_error(response)
        yield [plain_row(e) for e in json.loads(response.content).get("value", [])]
        pk = response.headers.get("x-ms-continuation-NextPartitionKey")
        if not pk:
            return
        next_keys = {"NextPartitionKey": pk}
        rk = response.headers.get("x-ms-continuation-NextRowKey")
        if rk:
            next_keys["NextRowKey"] = rk
