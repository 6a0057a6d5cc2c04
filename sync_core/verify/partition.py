"""Verify the container against the Table index, one unit at a time: a partition ``<prefix>/<xx>`` (the
cloud's fan-out) or the sixteen partitions ``<prefix>/<x>0``…``<x>f`` (``azphotosync verify``).

A unit costs one paged blob listing of its prefix (without metadata) plus one partition or key-range
query: about N/5000 + N/1000 requests for N rows, never a request per blob. Each row gets a verdict:

* **quick verify** (every row, every run): blob present, size, SHA-256 metadata = the SHA-256 in the name,
  etag = the one the agent recorded. A blob that still has the recorded etag still has the metadata the
  agent checked when it recorded it, so metadata is fetched only for blobs whose etag changed and for
  orphans. Blobs with no row are orphans; an orphan whose metadata is complete and self-consistent gets its
  row re-created (``orphan_repaired``), any other stays an ``orphan``.
* **deep verify** (a rotating share): the blob is downloaded and re-hashed, which is the only way to catch
  a same-size content swap behind an unchanged etag. Rows are taken oldest ``LastDeepVerified`` first
  (never-verified rows by upload time), within a byte allowance per unit proportional to its share
  of the bytes, so the whole archive is re-hashed at least once every ⌈total/budget⌉ runs.

Verdicts are merged into the rows under the etag the query returned (If-Match), in entity-group
transactions, and only when they change (a row never judged counts as ``ok``). A row the agent rewrote
meanwhile fails that condition; it is re-read and re-checked once, and otherwise left for the next run, so
a concurrent agent write is never lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EntityProperty, TableClient, UpdateMode
from azure.storage.blob import ContainerClient

from sync_core.config import ENV_TABLE
from sync_core.contracts.blobmeta import K_SHA256, parse_metadata
from sync_core.contracts.blobname import is_name_of, listing_prefix, normalize_prefix, parse_blob_name
from sync_core.errors import ConfigError
from sync_core.index import table_batch
from sync_core.index.entity import entity_from_blob, sort_epoch
from sync_core.index.flags import is_damaged, write_flags
from sync_core.index.table_index import (
    P_BLOB_ETAG,
    P_BLOB_NAME,
    P_LAST_DEEP_VERIFIED,
    P_LAST_VERIFIED,
    P_SHA256,
    P_SIZE,
    P_SOURCE_ID,
    P_UPLOADED_AT,
    P_VERIFY_DETAIL,
    P_VERIFY_STATUS,
    RESERVED_END,
    all_shards,
    encode_key,
    is_reserved_partition,
    keys_for_blob,
)
from sync_core.index.table_query import ETAG, odata_string, query_pages
from sync_core.storage.download import Downloads
from sync_core.storage.listing import LISTING_PAGE, BlobEntry, list_pages
from sync_core.storage.tiering import add_tier_bytes, is_online
from sync_core.verify.summary import Summary
from sync_core.verify.verdicts import DAMAGE_VERDICTS, Verdict

QUERY_PAGE = 1000  # the service maximum
TRANSACTION_SIZE = 100  # entity-group transaction limit
_SHARD_RE = re.compile(r"^[0-9a-f]{1,2}$")  # a unit of work: one partition (xx) or sixteen (x)
_PK_SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
UNIT_ROWS = 10_000  # rows a one-digit unit may hold (memory per worker) before runs use 256 units
MAX_PROPERTY_CALLS = 32  # above this many blobs needing metadata, list the unit again with metadata
_SELECT = [
    "PartitionKey", "RowKey", P_BLOB_NAME, P_SIZE, P_SHA256, P_BLOB_ETAG, P_UPLOADED_AT,
    P_VERIFY_STATUS, P_VERIFY_DETAIL, P_LAST_VERIFIED, P_LAST_DEEP_VERIFIED, P_SOURCE_ID,
]  # fmt: skip


# -- partitions ---------------------------------------------------------------------------------------------
def partition_id(prefix: str, shard: str) -> str:
    """The id the orchestration passes around: ``<prefix>/<xx>`` (one Table partition, the decoded
    PartitionKey) or ``<prefix>/<x>`` (the sixteen partitions ``x0``…``xf``: one listing prefix, one key range)."""
    return f"{normalize_prefix(prefix)}/{shard}"


def split_partition(partition: str) -> tuple[str, str]:
    prefix, _, shard = partition.rpartition("/")
    if not _SHARD_RE.match(shard):
        raise ValueError(f"not a partition id <prefix>/<xx> or <prefix>/<x>: {partition!r}")
    return normalize_prefix(prefix), shard


def unit_digits(rows_hint: int | None) -> int:
    """Units for a one-process run: 16 per prefix (fewer requests) while each holds at most ``UNIT_ROWS``
    rows in memory, else the 256 partitions. Unknown size: 256, the safe choice."""
    return 1 if rows_hint is not None and rows_hint <= 16 * UNIT_ROWS else 2


def partitions_for(prefixes: Iterable[str], digits: int = 2) -> list[str]:
    """Every unit of every prefix, in a fixed order (deterministic: the orchestrator calls it).

    ``digits=2``: the 256 Table partitions, for a wide fan-out (the cloud). ``digits=1``: 16 units of 16
    partitions each, for one process (``azphotosync verify``): the same rows and blobs in 16× fewer listing
    and query requests."""
    if digits not in (1, 2):
        raise ValueError("digits must be 1 or 2")
    shards = all_shards() if digits == 2 else [f"{i:x}" for i in range(16)]
    return [partition_id(p, s) for p in sorted({normalize_prefix(p) for p in prefixes}) for s in shards]


def indexed_prefixes(table: TableClient, table_name: str) -> list[str]:
    """:func:`discover_prefixes`, with a missing index table said in one line (a run before any sync)."""
    try:
        return discover_prefixes(table)
    except ResourceNotFoundError as exc:
        raise ConfigError(
            f"index table {table_name!r} does not exist: run a sync first or check {ENV_TABLE}"
        ) from exc


def discover_prefixes(table: TableClient) -> list[str]:
    """Prefixes that have rows, found by a skip-scan over PartitionKeys: one tiny keys-only query per
    prefix (``PartitionKey gt <prefix>/ff``, one result), not a scan of the table. Prefixes must not nest
    (``photos/a`` and ``photos/a/b``): the nested one would be skipped."""
    found: list[str] = []
    after = ""
    while True:
        pager = table.query_entities(
            "PartitionKey gt @after", parameters={"after": after}, select=["PartitionKey"], results_per_page=1
        )
        first = next(iter(pager), None)
        if first is None:
            return found
        pk = first["PartitionKey"]
        if is_reserved_partition(pk):  # albums: all of them stepped over at once
            after = RESERVED_END
            continue
        prefix, _, shard = unquote(pk, errors="surrogateescape").rpartition("/")
        if prefix and _PK_SHARD_RE.match(shard):
            found.append(prefix)
            after = encode_key(f"{prefix}/ff")
        else:  # not ours (another tool's rows): step over this one key
            after = pk


# -- verdicts -------------------------------------------------------------------------------------------
BlobView = BlobEntry  # what one listing entry (or a properties call) tells us about a blob


def sha_metadata(blob: BlobEntry) -> str | None:
    low = {k.lower(): v for k, v in blob.metadata.items()}
    return low.get(K_SHA256) or None


def plain(value: Any) -> Any:
    """Table values as plain Python (Int64 comes back wrapped in an ``EntityProperty``)."""
    return value.value if isinstance(value, EntityProperty) else value


def _etag(value: Any) -> str:
    return str(plain(value) or "").strip().strip('"')


def quick_verdict(
    row: Mapping[str, Any], blob: BlobView | None, name_sha: str, *, metadata: bool = True
) -> tuple[Verdict, str]:
    """``(verdict, detail)`` for one row from the listing entry of its blob (``None`` = not listed).

    ``metadata=False``: the entry was listed without metadata. That suffices when its etag is the one the
    agent recorded, since any change to the metadata changes the etag, and the agent recorded that etag
    only after checking (or writing) the SHA-256 metadata. Otherwise the caller must fetch the metadata."""
    if blob is None:
        return Verdict.MISSING, "blob not found in the container"
    size = plain(row.get(P_SIZE))
    if size is not None:
        try:
            recorded_size = int(size)
        except (TypeError, ValueError):  # a row another tool wrote: judged, not a failed partition
            return Verdict.SIZE_MISMATCH, f"blob has {blob.size} bytes, the index's Size {size!r} is not a number"
        if recorded_size != blob.size:
            return Verdict.SIZE_MISMATCH, f"blob has {blob.size} bytes, the index says {recorded_size}"
    recorded = _etag(row.get(P_BLOB_ETAG))
    if not metadata:
        if not recorded or recorded != _etag(blob.etag):
            raise ValueError("metadata needed to judge this blob")
        return Verdict.OK, ""
    got = sha_metadata(blob)
    if not got:
        return Verdict.SHA_MISSING, "blob metadata has no sha256"
    if got != name_sha:
        return Verdict.SHA_MISMATCH, f"sha256 metadata {got} differs from the name's {name_sha}"
    if recorded and recorded != _etag(blob.etag):
        return Verdict.ETAG_MISMATCH, f'blob etag "{_etag(blob.etag)}" differs from the recorded "{recorded}"'
    return Verdict.OK, ""


def _judged_by_etag(row: Mapping[str, Any], blob: BlobView | None) -> bool:
    """Whether the listing entry alone settles the row (see :func:`quick_verdict`)."""
    if blob is None:
        return True
    recorded = _etag(row.get(P_BLOB_ETAG))
    return bool(recorded) and recorded == _etag(blob.etag)


def orphan_verdict(prefix: str, blob: BlobView) -> tuple[Verdict, str]:
    """Whether a blob without a row can be re-indexed from its own name and metadata."""
    try:
        sha = parse_blob_name(prefix, blob.name)[0]
    except ValueError:
        return Verdict.ORPHAN, "no index row, and the name does not follow <prefix>/<xx>/<sha256>/<path>"
    meta = parse_metadata(dict(blob.metadata))
    if meta is None:
        why = "the metadata is incomplete (needs sha256, relpath, size, mtimens, sourceid)"
        return Verdict.ORPHAN, f"no index row, and {why}"
    if meta.sha256 != sha:
        return Verdict.ORPHAN, f"no index row, and the sha256 metadata {meta.sha256} differs from the name's {sha}"
    if not is_name_of(prefix, blob.name, sha, meta.relpath):
        return Verdict.ORPHAN, "no index row, and the relpath metadata differs from the name"
    if meta.size != blob.size:
        why = f"the size metadata {meta.size} differs from the blob's {blob.size} bytes"
        return Verdict.ORPHAN, f"no index row, and {why}"
    return Verdict.ORPHAN_REPAIRED, "index row re-created from the blob's metadata"


def deep_key(row: Mapping[str, Any]) -> float:
    """Rotation order: last deep verification, or upload time for a row never deep-verified (so new
    uploads queue behind rows verified before they arrived, and nobody starves)."""
    last = row.get(P_LAST_DEEP_VERIFIED)
    return sort_epoch(last) if last is not None else sort_epoch(row.get(P_UPLOADED_AT))


def deep_allowance(candidate_bytes: int, budget: int, reference_total: int | None, partitions_total: int) -> int:
    """Bytes this partition may re-hash: its share ``budget × own / total`` of the budget, rounded up.

    ``reference_total`` is the previous run's total of verifiable bytes (from its report); the archive
    only grows, so the share is never too small and every partition finishes its rotation within
    ⌈total/budget⌉ runs. Without a previous run the budget is split evenly."""
    if budget <= 0 or candidate_bytes <= 0:
        return 0
    if reference_total and reference_total > 0:
        return min(candidate_bytes, -(-budget * candidate_bytes // reference_total))
    return -(-budget // max(1, partitions_total))


@dataclass
class Problem:
    blob_name: str
    verdict: Verdict
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"blob_name": self.blob_name, "verdict": self.verdict, "detail": self.detail}


@dataclass
class PartitionResult:
    partition: str
    rows: int = 0
    blobs: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    deep_verified: int = 0
    deep_bytes: int = 0
    candidate_bytes: int = 0  # bytes of rows that passed quick verify and are online: the deep-verify pool
    deep_archived: int = 0  # rows that passed quick verify but are archived: not deep-verifiable until rehydrated
    tier_bytes: dict[str, int] = field(default_factory=dict)  # every listed blob's bytes by access tier
    deep_bytes_by_tier: dict[str, int] = field(default_factory=dict)  # re-hashed bytes by tier (their read cost)
    skipped_changed: int = 0  # rows or blobs that changed during the run: checked again next run
    listing_pages: int = 0
    query_pages: int = 0
    property_calls: int = 0  # blobs whose metadata was fetched one by one (changed etag, orphans)
    writes: int = 0  # write requests (transactions count once)
    error: str = ""  # why the partition could not be verified (its rows are checked again next run)

    def summary(self) -> Summary:
        """Ids and counts only: what the verify step returns (to the orchestrator, or to the CLI's pool)."""
        return {
            "partition": self.partition,
            # A partition that could not be verified is never counted among the verified ones.
            "partitions": 0 if self.error else 1,
            "partitions_failed": 1 if self.error else 0,
            "rows": self.rows,
            "blobs": self.blobs,
            "counts": dict(self.counts),
            "problems": len(self.problems),
            "deep_verified": self.deep_verified,
            "deep_bytes": self.deep_bytes,
            "candidate_bytes": self.candidate_bytes,
            "skipped_changed": self.skipped_changed,
            "prefix_bytes": {split_partition(self.partition)[0]: self.candidate_bytes},
            "deep_archived": self.deep_archived,
            "deep_bytes_by_tier": dict(self.deep_bytes_by_tier),
            "tier_bytes": {split_partition(self.partition)[0]: dict(self.tier_bytes)},
            "requests": {
                "listing_pages": self.listing_pages,
                "query_pages": self.query_pages,
                "property_calls": self.property_calls,
                "writes": self.writes,
            },
            "errors": [f"{self.partition}: {self.error}"] if self.error else [],
            "prefixes": [],
            "deep_budget": 0,
        }


# -- one partition --------------------------------------------------------------------------------------
@dataclass
class _RowCheck:
    row: dict[str, Any]
    name: str
    sha: str
    blob: BlobView | None
    verdict: Verdict = Verdict.OK
    detail: str = ""
    deep: bool = False


def verify_partition(
    container: ContainerClient,
    table: TableClient,
    partition: str,
    *,
    now: datetime,
    deep_budget: int = 0,
    deep_reference: int | None = None,
    partitions_total: int = 256,
) -> PartitionResult:
    """Quick-verify every row and blob of ``partition`` (one partition ``<prefix>/<xx>`` or sixteen,
    ``<prefix>/<x>``), deep-verify its share, write verdicts back and re-create repairable rows. ``now``
    stamps ``LastVerified`` (the run's start time)."""
    prefix, shard = split_partition(partition)
    res = PartitionResult(partition)

    rows: dict[str, dict[str, Any]] = {}  # RowKeys embed the SHA-256, so they are unique across partitions
    for page in _query_rows(table, prefix, shard):
        res.query_pages += 1
        for row in page:
            rows[row["RowKey"]] = row
    res.rows = len(rows)

    list_prefix = listing_prefix(prefix, shard) if len(shard) == 2 else f"{prefix}/{shard}"
    blobs, foreign = _list(container, prefix, list_prefix, res, metadata=False)
    res.blobs = len(blobs) + len(foreign)
    # The listing without metadata settles every row whose blob kept the recorded etag; the rest (and
    # orphans, whose rows are re-created from metadata) need the metadata: a few properties calls, or
    # one more listing of the unit when many blobs changed.
    need = [rk for rk, row in rows.items() if not _judged_by_etag(row, blobs.get(rk))]
    need += [rk for rk in blobs if rk not in rows]
    if foreign or need:
        blobs, foreign = _with_metadata(container, prefix, list_prefix, res, blobs, foreign, need)

    checks: list[_RowCheck] = []
    for rk, row in rows.items():
        name = str(plain(row.get(P_BLOB_NAME)) or rk)
        sha = str(plain(row.get(P_SHA256)) or "")
        with contextlib.suppress(ValueError):
            sha = parse_blob_name(prefix, name)[0]
        c = _RowCheck(row, name, sha, blobs.pop(rk, None))
        c.verdict, c.detail = quick_verdict(row, c.blob, sha, metadata=not _judged_by_etag(row, c.blob))
        checks.append(c)

    add_tier_bytes(res.tier_bytes, [c.blob for c in checks if c.blob is not None] + [*blobs.values(), *foreign])
    _deep_verify(container, checks, res, deep_budget, deep_reference, partitions_total)
    # Flags before verdicts, so no damage verdict is ever without its flag; then the rows a re-check
    # judged damaged, or left damaged (a verdict that could not be written, an old verdict read).
    flagged = [c for c in checks if c.verdict in DAMAGE_VERDICTS]
    res.writes += write_flags(table, prefix, [(c.row, c.verdict) for c in flagged])
    _write_verdicts(container, table, checks, res, now)
    done = {id(c) for c in flagged}
    late = [c for c in checks if id(c) not in done and (c.verdict in DAMAGE_VERDICTS or is_damaged(c.row))]
    res.writes += write_flags(table, prefix, [(c.row, c.verdict) for c in late])
    for c in checks:
        res.counts[c.verdict] += 1
        if c.verdict != Verdict.OK:
            res.problems.append(Problem(c.name, c.verdict, c.detail))
    for view in [*blobs.values(), *foreign]:
        _handle_orphan(table, prefix, view, res, now)
    return res


def _query_rows(table: TableClient, prefix: str, shard: str) -> Iterator[list[dict[str, Any]]]:
    """One partition query, or one key-range query over the sixteen partitions of a one-digit unit: pages
    of plain rows (a third of an SDK entity's memory, which matters with a worker per unit of up to
    ``UNIT_ROWS`` rows)."""
    if len(shard) == 2:
        query = "PartitionKey eq " + odata_string(encode_key(partition_id(prefix, shard)))
    else:
        lo, hi = encode_key(partition_id(prefix, shard + "0")), encode_key(partition_id(prefix, shard + "f"))
        query = f"PartitionKey ge {odata_string(lo)} and PartitionKey le {odata_string(hi)}"
    return query_pages(table, query, select=_SELECT, page_size=QUERY_PAGE)


def _list(
    container: ContainerClient, prefix: str, list_prefix: str, res: PartitionResult, *, metadata: bool
) -> tuple[dict[str, BlobView], list[BlobView]]:
    """The unit's blobs by RowKey, plus those whose names do not follow the contract (``foreign``)."""
    blobs: dict[str, BlobView] = {}
    foreign: list[BlobView] = []
    for page in list_pages(container, list_prefix, metadata=metadata, page_size=LISTING_PAGE):
        res.listing_pages += 1
        for view in page:
            try:
                blobs[keys_for_blob(prefix, view.name)[1]] = view
            except ValueError:
                foreign.append(view)
    return blobs, foreign


def _with_metadata(
    container: ContainerClient,
    prefix: str,
    list_prefix: str,
    res: PartitionResult,
    blobs: dict[str, BlobView],
    foreign: list[BlobView],
    need: list[str],
) -> tuple[dict[str, BlobView], list[BlobView]]:
    """``blobs``/``foreign`` with metadata for the entries in ``need`` and every foreign one."""
    if len(need) + len(foreign) > MAX_PROPERTY_CALLS:
        return _list(container, prefix, list_prefix, res, metadata=True)
    out = dict(blobs)
    for rk in need:
        if rk in out:
            fresh = _properties(container, out[rk].name, res)
            if fresh is None:
                del out[rk]  # gone since the listing: judged as not listed
            else:
                out[rk] = fresh
    fetched = [_properties(container, v.name, res) for v in foreign]
    return out, [v for v in fetched if v is not None]


def _properties(container: ContainerClient, name: str, res: PartitionResult) -> BlobView | None:
    res.property_calls += 1
    try:
        return BlobView.of(container.get_blob_client(name).get_blob_properties())
    except ResourceNotFoundError:
        return None


def _deep_verify(
    container: ContainerClient,
    checks: list[_RowCheck],
    res: PartitionResult,
    budget: int,
    reference: int | None,
    partitions_total: int,
) -> None:
    listed_ok = [c for c in checks if c.verdict == Verdict.OK and c.blob is not None]
    # An archived blob cannot be read: it is counted, and neither its bytes nor its turn takes from the
    # online blobs' rotation.
    pool = [c for c in listed_ok if c.blob is not None and is_online(c.blob.tier)]
    res.deep_archived = len(listed_ok) - len(pool)
    res.candidate_bytes = sum(c.blob.size for c in pool if c.blob)
    allowance = deep_allowance(res.candidate_bytes, budget, reference, partitions_total)
    downloads = Downloads(container)
    spent = 0
    for c in sorted(pool, key=lambda c: (deep_key(c.row), c.row["RowKey"])):
        if spent >= allowance:  # the last blob may cross the line: that is what makes progress certain
            break
        assert c.blob is not None
        spent += c.blob.size
        digest = _rehash(downloads, c.blob)
        if digest is None:
            res.skipped_changed += 1
            continue
        sha, n = digest
        c.deep = True
        res.deep_verified += 1
        res.deep_bytes += n
        add_tier_bytes(res.deep_bytes_by_tier, [c.blob])
        if n != c.blob.size:
            c.verdict, c.detail = Verdict.SIZE_MISMATCH, f"download returned {n} bytes, the listing says {c.blob.size}"
        elif sha != c.sha:
            c.verdict = Verdict.SHA_MISMATCH
            c.detail = f"content re-hash gives {sha}, the name says {c.sha} (content replaced or corrupted)"


def _rehash(downloads: Downloads, blob: BlobView) -> tuple[str, int] | None:
    """SHA-256 and length of the blob version we listed; ``None`` if it changed or vanished since."""
    h = hashlib.sha256()
    n = 0
    try:
        with contextlib.closing(downloads.open(blob.name, etag=blob.etag)) as pieces:
            for piece in pieces:
                h.update(piece)
                n += len(piece)
    except (ResourceModifiedError, ResourceNotFoundError):
        return None
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return None
        raise
    return h.hexdigest(), n


def _verdict_props(c: _RowCheck, now: datetime) -> dict[str, Any]:
    props: dict[str, Any] = {P_VERIFY_STATUS: c.verdict, P_VERIFY_DETAIL: c.detail, P_LAST_VERIFIED: now}
    if c.deep:
        props[P_LAST_DEEP_VERIFIED] = now
    return props


def _row_etag(row: Any) -> str:
    return str(row[ETAG] if ETAG in row else row.metadata["etag"])


def _if_match(row: Any) -> dict[str, Any]:
    """Merge only into the row version we read (its etag), never over a newer agent write."""
    return {"mode": UpdateMode.MERGE, "etag": _row_etag(row), "match_condition": MatchConditions.IfNotModified}


def _needs_write(c: _RowCheck) -> bool:
    """Only changes of verdict are written (plus deep-verify stamps), so a steady archive costs no writes.

    A row never judged counts as ``ok``: the first pass over a healthy library writes nothing (the run's
    report records that it was verified), instead of one write per row — 1,000 transactions per 100,000
    rows, most of the cost of a first verification."""
    r = c.row
    return (
        c.deep
        or (plain(r.get(P_VERIFY_STATUS)) or Verdict.OK) != c.verdict
        or (plain(r.get(P_VERIFY_DETAIL)) or "") != c.detail
    )


def _write_verdicts(
    container: ContainerClient, table: TableClient, checks: list[_RowCheck], res: PartitionResult, now: datetime
) -> None:
    by_pk: dict[str, list[_RowCheck]] = {}
    for c in checks:
        if _needs_write(c):
            by_pk.setdefault(c.row["PartitionKey"], []).append(c)
    for todo in by_pk.values():  # an entity-group transaction stays inside one partition
        for i in range(0, len(todo), TRANSACTION_SIZE):
            chunk = todo[i : i + TRANSACTION_SIZE]
            ops: list[table_batch.Operation] = [
                (
                    "update",
                    {"PartitionKey": c.row["PartitionKey"], "RowKey": c.row["RowKey"], **_verdict_props(c, now)},
                    _row_etag(c.row),
                )
                for c in chunk
            ]  # fmt: skip
            res.writes += 1
            try:
                table_batch.submit(table, ops)  # the mirror's lean transactions (docs/benchmarks.md)
                continue
            except table_batch.TransactionError:
                pass  # some row changed under us (or vanished): settle them one by one
            for c in chunk:
                _write_one(container, table, c, res, now)


def _write_one(
    container: ContainerClient, table: TableClient, c: _RowCheck, res: PartitionResult, now: datetime
) -> None:
    for attempt in range(2):
        entity = {"PartitionKey": c.row["PartitionKey"], "RowKey": c.row["RowKey"], **_verdict_props(c, now)}
        res.writes += 1
        try:
            table.update_entity(entity, **_if_match(c.row))
            return
        except ResourceNotFoundError:
            c.verdict, c.detail = Verdict.OK, ""  # row removed meanwhile: nothing to record (or to count as damage)
            res.skipped_changed += 1
            return
        except (ResourceModifiedError, HttpResponseError) as exc:
            if getattr(exc, "status_code", 412) != 412:
                raise
            if attempt:
                break
            _recheck(container, table, c)
    res.skipped_changed += 1


def _recheck(container: ContainerClient, table: TableClient, c: _RowCheck) -> None:
    """The agent wrote the row after our query: judge the fresh row against the blob as it is now."""
    fresh = table.get_entity(c.row["PartitionKey"], c.row["RowKey"])
    c.row = fresh
    try:
        blob: BlobView | None = BlobView.of(container.get_blob_client(c.name).get_blob_properties())
    except ResourceNotFoundError:
        blob = None
    deep_still_valid = c.deep and blob is not None and c.blob is not None and blob.etag == c.blob.etag
    verdict, detail = quick_verdict(fresh, blob, c.sha)
    if not (deep_still_valid and verdict == Verdict.OK and c.verdict != Verdict.OK):
        c.verdict, c.detail = verdict, detail
    c.deep = deep_still_valid
    c.blob = blob


def _handle_orphan(table: TableClient, prefix: str, view: BlobView, res: PartitionResult, now: datetime) -> None:
    verdict, detail = orphan_verdict(prefix, view)
    if verdict == Verdict.ORPHAN_REPAIRED:
        meta = parse_metadata(dict(view.metadata))
        assert meta is not None
        entity = entity_from_blob(view.name, meta, view.etag, view.created)
        entity.update({P_VERIFY_STATUS: Verdict.ORPHAN_REPAIRED, P_VERIFY_DETAIL: detail, P_LAST_VERIFIED: now})
        res.writes += 1
        try:
            table.create_entity(entity)
        except ResourceExistsError:  # the agent's mirror wrote it meanwhile: verified next run
            res.skipped_changed += 1
            return
    res.counts[verdict] += 1
    res.problems.append(Problem(view.name, verdict, detail))
