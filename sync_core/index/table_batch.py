"""Entity-group transactions for the Table mirror, written as one plain multipart body.

Why not ``TableClient.submit_transaction``: azure-data-tables builds every entity as its own ``HttpRequest``,
runs request policies over each on a fresh thread pool, serializes them through ``http.client`` and parses
the answer with the ``email`` package. For a 100-row transaction that is several times the CPU the service
spends on it (``python -m bench.micro agent``; figures in ``docs/benchmarks.md``), and the mirror is a large
part of a small-file first sync. The body here is the same wire format (docs: "Performing entity group
transactions"), built as text in one pass; it is still sent through the table client's own pipeline (reached through
:mod:`~sync_core.storage.sdk_internals`), so authentication, retries and the throttle signal apply as for every
other request. If this SDK version keeps the pipeline elsewhere, the same operations go through the public
``submit_transaction`` and fail the same way; tests check both write the same rows.

Only what the mirror and the verifier write is supported: inserts that do not echo the entity back,
merge-upserts and merges conditional on an etag, of
entities whose values are ``str``, ``bool``, ``int`` (Int32 range), ``float``, ``datetime`` or an
``EntityProperty`` of Edm.Int64. Anything else raises ``TypeError`` before a byte is sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, TableClient, TableTransactionError, UpdateMode

from sync_core.storage.sdk_internals import table_sender

Op = Literal["create", "merge", "update"]
# An operation: ``(op, entity)``, or ``("update", entity, etag)``: a merge into that version of the entity only
# (``If-Match``), refused with 412 if it changed or 404 if it is gone (the verifier's verdicts).
Operation = tuple[Op, Mapping[str, Any]] | tuple[Op, Mapping[str, Any], str]
MAX_OPERATIONS = 100  # the service's limit for one transaction
_INT32 = range(-(2**31), 2**31)
_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})", re.MULTILINE)
_ERRORS = {401: ClientAuthenticationError, 404: ResourceNotFoundError}


class TransactionError(HttpResponseError):
    """The service refused the transaction (nothing in it was applied). ``status_code`` and ``error_code``
    are those of the operation it refused (e.g. 409 ``EntityAlreadyExists``); ``index`` is its position."""

    def __init__(self, message: str, status_code: int, error_code: str | None, index: int | None):
        super().__init__(message=message)
        self.status_code = status_code
        self.error_code = error_code
        self.index = index


def _value(name: str, v: Any, out: dict[str, Any]) -> None:
    if isinstance(v, (bool, str)) or (isinstance(v, int) and v in _INT32):
        out[name] = v
    elif isinstance(v, float):
        out[name], out[f"{name}@odata.type"] = v, "Edm.Double"
    elif isinstance(v, datetime):
        if v.tzinfo is None:
            raise TypeError(f"property {name!r}: naive datetime (give it a time zone)")
        out[name] = v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out[f"{name}@odata.type"] = "Edm.DateTime"
    elif isinstance(v, EntityProperty) and v.edm_type == EdmType.INT64 and isinstance(v.value, int):
        out[name], out[f"{name}@odata.type"] = str(v.value), "Edm.Int64"
    else:
        raise TypeError(f"property {name!r}: {type(v).__name__} is not supported by table_batch")


def entity_json(entity: Mapping[str, Any]) -> str:
    """The entity as the Table service's JSON (OData types where a bare JSON value would be ambiguous)."""
    out: dict[str, Any] = {}
    for name, v in entity.items():
        if v is not None:
            _value(name, v, out)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def _endpoint(table: TableClient) -> str:
    return table.url.rstrip("/")


def build_body(table: TableClient, ops: Sequence[Operation], batch: str, changeset: str) -> bytes:
    """The multipart/mixed body of one transaction (one changeset, one operation per entity)."""
    table_url = f"{_endpoint(table)}/{table.table_name}"
    parts: list[bytes] = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for i, operation in enumerate(ops):
        op, ent = operation[0], operation[1]
        if op == "create":
            line = f"POST {table_url} HTTP/1.1\r\nPrefer: return-no-content\r\n"
            accept = "application/json;odata=minimalmetadata"
        elif op == "merge":  # an upsert: no If-Match, so a missing entity is inserted
            keys = f"PartitionKey='{_key(ent['PartitionKey'])}',RowKey='{_key(ent['RowKey'])}'"
            line = f"PATCH {table_url}({keys}) HTTP/1.1\r\n"
            accept = "application/json"
        elif op == "update" and len(operation) == 3:  # a merge into the version read only
            keys = f"PartitionKey='{_key(ent['PartitionKey'])}',RowKey='{_key(ent['RowKey'])}'"
            line = f"PATCH {table_url}({keys}) HTTP/1.1\r\nIf-Match: {operation[2]}\r\n"
            accept = "application/json"
        else:
            raise ValueError(f"unsupported operation {op!r}")
        data = entity_json(ent).encode()
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i}\r\n\r\n{line}Content-Type: application/json\r\nAccept: {accept}\r\n"
            f"DataServiceVersion: 3.0;\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        )
        parts.append(data + b"\r\n")
    parts.append(f"--{changeset}--\r\n--{batch}--\r\n".encode())
    return b"".join(parts)


def submit(table: TableClient, ops: Sequence[Operation]) -> None:
    """Apply ``ops`` (all in one partition) as one entity-group transaction: all of them, or none.

    Raises :class:`TransactionError` when the service refused an operation, and the azure-core error for
    the status otherwise (404: the table does not exist; 401: authentication)."""
    if not 1 <= len(ops) <= MAX_OPERATIONS:
        raise ValueError(f"a transaction holds 1..{MAX_OPERATIONS} operations, not {len(ops)}")
    send = table_sender(table)
    if send is None:
        _submit_public(table, ops)
        return
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    request = HttpRequest(
        "POST",
        f"{_endpoint(table)}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=build_body(table, ops, batch, changeset),
    )
    # Streamed, as the pipeline's content decoder cannot read multipart answers.
    response = send(request, stream=True)
    response.read()
    if response.status_code != 202:
        map_error(response.status_code, response, _ERRORS)
        raise HttpResponseError(response=response)
    _check_parts(response.content)


def _submit_public(table: TableClient, ops: Sequence[Operation]) -> None:
    """The same transaction through ``submit_transaction``: same input checks, same rows, same errors."""
    sdk_ops: list[Any] = []
    for operation in ops:
        op, ent = operation[0], operation[1]
        entity_json(ent)  # the same TypeError for a value the direct body would refuse
        if op == "create":
            sdk_ops.append(("create", dict(ent)))
        elif op == "merge":
            sdk_ops.append(("upsert", dict(ent), {"mode": UpdateMode.MERGE}))
        elif op == "update" and len(operation) == 3:
            match = {"etag": operation[2], "match_condition": MatchConditions.IfNotModified}
            sdk_ops.append(("update", dict(ent), {"mode": UpdateMode.MERGE, **match}))
        else:
            raise ValueError(f"unsupported operation {op!r}")
    try:
        table.submit_transaction(sdk_ops)
    except TableTransactionError as exc:
        code = str(exc.error_code) if exc.error_code is not None else None
        head, sep, rest = (exc.message or "").partition(":")
        message = rest if sep and head.isdigit() else exc.message or ""
        raise TransactionError(
            f"{message.splitlines()[0] if message else ''} (ErrorCode:{code})", exc.status_code or 0, code, exc.index
        ) from exc


def _check_parts(content: bytes) -> None:
    """Every operation answered 2xx, or raise for the one that did not (a refused transaction answers with
    that operation's error alone)."""
    for m in _STATUS.finditer(content):
        status = int(m.group(1))
        if 200 <= status < 300:
            continue
        code, message, index = None, f"operation refused with HTTP {status}", None
        start = content.find(b"{", m.end())
        if start >= 0:
            try:
                err = json.JSONDecoder().raw_decode(content[start:].decode("utf-8", "replace"))[0]["odata.error"]
                code = err.get("code")
                message = str(err.get("message", {}).get("value", message))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
        head, sep, rest = message.partition(":")
        if sep and head.isdigit():
            index, message = int(head), rest
        raise TransactionError(f"{message.splitlines()[0] if message else ''} (ErrorCode:{code})", status, code, index)
    if not _STATUS.search(content):
        raise HttpResponseError(message="the transaction's answer holds no operation status")
