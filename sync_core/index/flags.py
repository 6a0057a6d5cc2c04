"""The flags index: where the verifier tells each source which of its rows to re-upload.

A damage verdict lives in the row it judges (``VerifyStatus``), and rows are keyed by blob name, so "which
rows of this source are damaged" is a filter the service evaluates on every row of the prefix: a sync of a
1M-file library would read 1M rows before it could back up one file. The verifier therefore also writes a
small *flag* for every damaged row into a reserved partition of the same table, one partition per source
id, and the agent reads that partition: a request or two however large the library, and a point read per
flag to see the row itself.

A flag is only a pointer. The row stays the truth: a flag whose row is gone, belongs to another source, or
no longer carries a damage verdict (repaired, re-judged ``ok``) is stale, and the agent drops it when it
meets it. So the verifier only ever adds flags — for every row that it judges damaged and every row it
*reads* with a damage verdict, which also covers damage written before flags existed.

A prefix's flags are complete only once a verification has read all of its rows with this code: the run
that did so writes a *ready* entity for the prefix. Until then (and when the flags are too many for point
reads to be cheaper) the agent falls back to the one filtered query over the prefix.

Most syncs find no flags at all, and even the query of one small partition costs in proportion to the
table where the store does not index partitions (Azurite scans every entity of the table for it). So each
source also has a *presence* entity: the verifier sets it (``Flagged``) after writing any flag of that
source, and a sync that queried the source's partition and found it empty clears it under the ETag it read
before the query — a flag written meanwhile set it again and changed that ETag, so the clear fails and the
next sync looks. While it is clear (or was never set) a sync reads two entities and no partition. Ready
entities written by this code say so (``Presence``); under an older one the partition is always queried.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from sync_core.contracts.blobname import normalize_prefix
from sync_core.index import table_batch
from sync_core.index.table_index import P_SOURCE_ID, P_VERIFY_STATUS
from sync_core.index.table_query import odata_string, query_pages
from sync_core.verify.verdicts import DAMAGE_VERDICTS

READY_PARTITION = "%~flags"  # one entity per prefix whose flags are complete
FLAGS_PARTITION_MARK = "%~flags-"  # + 32 hex digits of the source id's SHA-256: one partition per source
P_INDEX_PARTITION = "IndexPartition"
P_INDEX_ROW = "IndexRow"
P_PREFIX = "Prefix"
P_VERDICT = "Verdict"
P_SINCE = "Since"
P_PRESENCE = "Presence"  # on a ready entity: its verifier keeps presence entities (module doc)
P_FLAGGED = "Flagged"  # on a presence entity: the source may have flags
PRESENCE_MARK = "source-"  # + the 32 hex digits of the source's flags partition: RowKeys in READY_PARTITION
MAX_POINT_READS = 1000  # above this many flags one filtered query over the prefix is the cheaper read
_READERS = 8


def flags_partition(source_id: str) -> str:
    """The reserved partition of ``source_id``'s flags (hex: reserved keys continue with [0-9a-z-] only)."""
    return FLAGS_PARTITION_MARK + hashlib.sha256(source_id.encode()).hexdigest()[:32]


def flag_key(partition_key: str, row_key: str) -> str:
    """A flag's RowKey: a digest of its row's keys (both may be near the key size limit)."""
    return hashlib.sha256(f"{partition_key}\n{row_key}".encode()).hexdigest()


def ready_key(prefix: str) -> str:
    return hashlib.sha256(normalize_prefix(prefix).encode()).hexdigest()


def presence_key(source_id: str) -> str:
    return _presence_key_of(flags_partition(source_id))


def _presence_key_of(partition: str) -> str:
    """The presence entity's RowKey of a flags partition (the same 32 hex digits)."""
    return PRESENCE_MARK + partition[len(FLAGS_PARTITION_MARK) :]


def is_damaged(row: Mapping[str, Any]) -> bool:
    status = row.get(P_VERIFY_STATUS)
    return str(getattr(status, "value", status) or "") in DAMAGE_VERDICTS


# -- the verifier's side -----------------------------------------------------------------------------------
def write_flags(table: TableClient, prefix: str, rows: Iterable[tuple[Mapping[str, Any], str]]) -> int:
    """Flag ``(row, verdict)`` pairs (rows as read from the index, with their ``SourceId``); returns the
    write requests sent. Merge-upserts in transactions of one source's partition: replayable."""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for row, verdict in rows:
        source = row.get(P_SOURCE_ID)
        source = str(getattr(source, "value", source) or "")
        if not source:  # no agent can repair a row without a source id: the report still names it
            continue
        pk, rk = str(row["PartitionKey"]), str(row["RowKey"])
        by_partition.setdefault(flags_partition(source), []).append({
            "PartitionKey": flags_partition(source), "RowKey": flag_key(pk, rk),
            P_INDEX_PARTITION: pk, P_INDEX_ROW: rk, P_PREFIX: normalize_prefix(prefix), P_VERDICT: str(verdict),
        })  # fmt: skip
    sent = 0
    for partition, flags in by_partition.items():
        unique = list({f["RowKey"]: f for f in flags}.values())
        for i in range(0, len(unique), table_batch.MAX_OPERATIONS):
            table_batch.submit(table, [("merge", f) for f in unique[i : i + table_batch.MAX_OPERATIONS]])
            sent += 1
        # After the flags, never before: a sync that clears the presence between the two would miss them.
        table.upsert_entity({"PartitionKey": READY_PARTITION, "RowKey": _presence_key_of(partition), P_FLAGGED: True})
        sent += 1
    return sent


def mark_ready(table: TableClient, prefixes: Iterable[str], when: datetime | None = None) -> None:
    """Say that ``prefixes``' flags are complete: called after a verification read every row under them."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for prefix in prefixes:
        table.upsert_entity({
            "PartitionKey": READY_PARTITION, "RowKey": ready_key(prefix), P_PREFIX: normalize_prefix(prefix),
            P_SINCE: stamp, P_PRESENCE: True,
        })  # fmt: skip


# -- the agent's side ----------------------------------------------------------------------------------------
def _ready_entity(table: TableClient, prefix: str) -> Any | None:
    try:
        return table.get_entity(READY_PARTITION, ready_key(prefix))
    except ResourceNotFoundError:
        return None


def is_ready(table: TableClient, prefix: str) -> bool:
    return _ready_entity(table, prefix) is not None


def presence(table: TableClient, source_id: str) -> tuple[bool, str | None]:
    """Whether ``source_id`` may have flags, and the presence entity's ETag (``None``: never set)."""
    try:
        e = table.get_entity(READY_PARTITION, presence_key(source_id))
    except ResourceNotFoundError:
        return False, None
    return bool(e.get(P_FLAGGED)), e.metadata.get("etag")


def clear_presence(table: TableClient, source_id: str, etag: str) -> bool:
    """Say ``source_id`` has no flags, unless the presence entity changed since it read ``etag``. Best
    effort (a presence left set costs the next sync one query); whether it was cleared."""
    try:
        table.update_entity(
            {"PartitionKey": READY_PARTITION, "RowKey": presence_key(source_id), P_FLAGGED: False},
            mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified,
        )  # fmt: skip
    except AzureError:
        return False
    return True


def read_flags(table: TableClient, source_id: str) -> list[dict[str, Any]]:
    """Every flag of ``source_id`` (all prefixes): one partition query."""
    flt = f"PartitionKey eq {odata_string(flags_partition(source_id))}"
    return [dict(f) for page in query_pages(table, flt) for f in page]


def flagged_rows(
    table: TableClient, prefix: str, source_id: str, *, tidy: bool = False
) -> list[Any] | None:
    """The damaged rows of ``source_id`` under ``prefix`` found through its flags (entities as the service
    returned them), or ``None`` when the flags cannot answer (the prefix is not ready, or so many flags
    that the filtered query is cheaper).

    Each flag's row is read by its keys and kept only while it still carries a damage verdict for this
    source; with ``tidy`` the stale flags met are dropped (a sync does; ``status`` only reads)."""
    ready = _ready_entity(table, prefix)
    if ready is None:
        return None
    etag: str | None = None
    if ready.get(P_PRESENCE):
        flagged, etag = presence(table, source_id)
        if not flagged:
            return []
    want = normalize_prefix(prefix)
    every = read_flags(table, source_id)
    if tidy and not every and etag is not None:
        clear_presence(table, source_id, etag)
    flags = [f for f in every if f.get(P_PREFIX) == want]
    if len(flags) > MAX_POINT_READS:
        return None

    def row_of(flag: dict[str, Any]) -> Any:
        try:
            return table.get_entity(flag[P_INDEX_PARTITION], flag[P_INDEX_ROW])
        except ResourceNotFoundError:
            return None

    with ThreadPoolExecutor(min(_READERS, max(1, len(flags))), thread_name_prefix="flags") as pool:
        rows = list(pool.map(row_of, flags))
    out: list[Any] = []
    for flag, row in zip(flags, rows, strict=True):
        if row is not None and is_damaged(row) and row.get(P_SOURCE_ID) == source_id:
            out.append(row)
        elif tidy:
            drop_flag(table, source_id, flag[P_INDEX_PARTITION], flag[P_INDEX_ROW])
    return out


def drop_flag(table: TableClient, source_id: str, partition_key: str, row_key: str) -> None:
    """Remove a row's flag once it is repaired or stale. Best effort: a flag left behind is dropped by the
    next run that finds its row undamaged."""
    with contextlib.suppress(AzureError):
        table.delete_entity(flags_partition(source_id), flag_key(partition_key, row_key))
