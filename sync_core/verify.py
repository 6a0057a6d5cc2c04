"""Verify the container against the Table index, one partition (``<prefix>/<xx>``) at a time.

A partition costs one paged blob listing of ``<prefix>/<xx>/`` (with metadata) plus one partition query:
about N/5000 + N/1000 requests for N rows, never a request per blob. Each row gets a verdict:

* **quick verify** (every row, every run): blob present, size, SHA-256 metadata = the SHA-256 in the name,
  etag = the one the agent recorded. Blobs with no row are orphans; an orphan whose metadata is complete
  and self-consistent gets its row re-created (``orphan_repaired``), any other stays an ``orphan``.
* **deep verify** (a rotating share): the blob is downloaded and re-hashed, which is the only way to catch
  a same-size content swap behind an unchanged etag. Rows are taken oldest ``LastDeepVerified`` first
  (never-verified rows by upload time), within a byte allowance per partition proportional to its share
  of the bytes, so the whole archive is re-hashed at least once every ⌈total/budget⌉ runs.

Verdicts are merged into the rows under the etag the query returned (If-Match), in entity-group
transactions. A row the agent rewrote meanwhile fails that condition; it is re-read and re-checked once,
and otherwise left for the next run, so a concurrent agent write is never lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import EdmType, EntityProperty, TableClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobProperties, ContainerClient

from .blobmeta import K_SHA256, parse_metadata
from .blobname import normalize_prefix, parse_blob_name
from .table_index import (
    DAMAGE_VERDICTS,
    P_BLOB_ETAG,
    P_BLOB_NAME,
    P_IS_CURRENT,
    P_LAST_DEEP_VERIFIED,
    P_LAST_VERIFIED,
    P_MTIME_NS,
    P_RELPATH,
    P_SHA256,
    P_SIZE,
    P_SOURCE_ID,
    P_UPLOADED_AT,
    P_VERIFY_DETAIL,
    P_VERIFY_STATUS,
    V_ETAG_MISMATCH,
    V_MISSING,
    V_OK,
    V_ORPHAN_REPAIRED,
    V_SHA_MISMATCH,
    V_SHA_MISSING,
    V_SIZE_MISMATCH,
    all_shards,
    encode_key,
    keys_for_blob,
    listing_prefix,
)

V_ORPHAN = "orphan"  # a blob with no row that cannot be re-indexed from its metadata (report only)
ALL_VERDICTS = (
    V_OK, V_MISSING, V_SIZE_MISMATCH, V_ETAG_MISMATCH, V_SHA_MISMATCH, V_SHA_MISSING, V_ORPHAN_REPAIRED, V_ORPHAN
)  # fmt: skip
PROBLEM_VERDICTS = DAMAGE_VERDICTS | {V_ORPHAN}
LISTING_PAGE = 5000  # the service maximum
QUERY_PAGE = 1000  # the service maximum
TRANSACTION_SIZE = 100  # entity-group transaction limit
HASH_CHUNK = 4 * 1024 * 1024
_SHARD_RE = re.compile(r"^[0-9a-f]{2}$")
_SELECT = [
    "PartitionKey", "RowKey", P_BLOB_NAME, P_SIZE, P_SHA256, P_BLOB_ETAG, P_UPLOADED_AT,
    P_VERIFY_STATUS, P_VERIFY_DETAIL, P_LAST_VERIFIED, P_LAST_DEEP_VERIFIED,
]  # fmt: skip


# -- partitions -------------------------------------------------------------------------------------------
def partition_id(prefix: str, shard: str) -> str:
    """The id the orchestration passes around: the decoded PartitionKey, ``<prefix>/<xx>``."""
    return f"{normalize_prefix(prefix)}/{shard}"


def split_partition(partition: str) -> tuple[str, str]:
    prefix, _, shard = partition.rpartition("/")
    if not _SHARD_RE.match(shard):
        raise ValueError(f"not a partition id <prefix>/<xx>: {partition!r}")
    return normalize_prefix(prefix), shard


def partitions_for(prefixes: Iterable[str]) -> list[str]:
    """Every partition of every prefix, in a fixed order (deterministic: the orchestrator calls it)."""
    return [partition_id(p, s) for p in sorted({normalize_prefix(p) for p in prefixes}) for s in all_shards()]


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
        prefix, _, shard = unquote(pk, errors="surrogateescape").rpartition("/")
        if prefix and _SHARD_RE.match(shard):
            found.append(prefix)
            after = encode_key(f"{prefix}/ff")
        else:  # not ours (another tool's rows): step over this one key
            after = pk


# -- verdicts -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BlobView:
    """What one listing entry (or a properties call) tells us about a blob."""

    name: str
    size: int
    etag: str
    metadata: Mapping[str, str]
    created: datetime | None = None

    @classmethod
    def of(cls, props: BlobProperties) -> BlobView:
        return cls(props.name, int(props.size), props.etag, props.metadata or {}, props.creation_time)

    @property
    def sha_metadata(self) -> str | None:
        low = {k.lower(): v for k, v in self.metadata.items()}
        return low.get(K_SHA256) or None


def plain(value: Any) -> Any:
    """Table values as plain Python (Int64 comes back wrapped in an ``EntityProperty``)."""
    return value.value if isinstance(value, EntityProperty) else value


def _etag(value: Any) -> str:
    return str(plain(value) or "").strip().strip('"')


def quick_verdict(row: Mapping[str, Any], blob: BlobView | None, name_sha: str) -> tuple[str, str]:
    """``(verdict, detail)`` for one row from the listing entry of its blob (``None`` = not listed)."""
    if blob is None:
        return V_MISSING, "blob not found in the container"
    size = plain(row.get(P_SIZE))
    if size is not None and int(size) != blob.size:
        return V_SIZE_MISMATCH, f"blob has {blob.size} bytes, the index says {int(size)}"
    got = blob.sha_metadata
    if not got:
        return V_SHA_MISSING, "blob metadata has no sha256"
    if got != name_sha:
        return V_SHA_MISMATCH, f"sha256 metadata {got} differs from the name's {name_sha}"
    recorded = _etag(row.get(P_BLOB_ETAG))
    if recorded and recorded != _etag(blob.etag):
        return V_ETAG_MISMATCH, f'blob etag "{_etag(blob.etag)}" differs from the recorded "{recorded}"'
    return V_OK, ""


def orphan_verdict(prefix: str, blob: BlobView) -> tuple[str, str]:
    """Whether a blob without a row can be re-indexed from its own name and metadata."""
    try:
        sha, rel = parse_blob_name(prefix, blob.name)
    except ValueError:
        return V_ORPHAN, "no index row, and the name does not follow <prefix>/<xx>/<sha256>/<path>"
    meta = parse_metadata(dict(blob.metadata))
    if meta is None:
        return V_ORPHAN, "no index row, and the metadata is incomplete (needs sha256, relpath, size, mtimens, sourceid)"
    if meta.sha256 != sha:
        return V_ORPHAN, f"no index row, and the sha256 metadata {meta.sha256} differs from the name's {sha}"
    if meta.relpath != rel:
        return V_ORPHAN, "no index row, and the relpath metadata differs from the name"
    if meta.size != blob.size:
        return V_ORPHAN, f"no index row, and the size metadata {meta.size} differs from the blob's {blob.size} bytes"
    return V_ORPHAN_REPAIRED, "index row re-created from the blob's metadata"


def _epoch(value: Any) -> float:
    value = plain(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def deep_key(row: Mapping[str, Any]) -> float:
    """Rotation order: last deep verification, or upload time for a row never deep-verified (so new
    uploads queue behind rows verified before they arrived, and nobody starves)."""
    last = row.get(P_LAST_DEEP_VERIFIED)
    return _epoch(last) if last is not None else _epoch(row.get(P_UPLOADED_AT))


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
    verdict: str
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
    candidate_bytes: int = 0  # bytes of rows that passed quick verify: the deep-verify pool
    skipped_changed: int = 0  # rows or blobs that changed during the run: checked again next run
    listing_pages: int = 0
    query_pages: int = 0
    writes: int = 0  # write requests (transactions count once)

    def summary(self) -> dict[str, Any]:
        """Ids and counts only: what an activity returns to the orchestrator."""
        return {
            "partition": self.partition,
            "rows": self.rows,
            "blobs": self.blobs,
            "counts": dict(self.counts),
            "problems": len(self.problems),
            "deep_verified": self.deep_verified,
            "deep_bytes": self.deep_bytes,
            "candidate_bytes": self.candidate_bytes,
            "skipped_changed": self.skipped_changed,
            "prefix_bytes": {split_partition(self.partition)[0]: self.candidate_bytes},
            "requests": {"listing_pages": self.listing_pages, "query_pages": self.query_pages, "writes": self.writes},
        }


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Fan-in: add up partition (or batch) summaries. Pure and order-independent (the orchestrator uses it)."""
    out: dict[str, Any] = {
        "partitions": 0, "rows": 0, "blobs": 0, "counts": {}, "problems": 0, "deep_verified": 0, "deep_bytes": 0,
        "candidate_bytes": 0, "skipped_changed": 0, "requests": {}, "errors": [], "prefix_bytes": {},
    }  # fmt: skip
    for s in summaries:
        out["partitions"] += int(s.get("partitions", 1))
        for k in ("rows", "blobs", "problems", "deep_verified", "deep_bytes", "candidate_bytes", "skipped_changed"):
            out[k] += int(s.get(k, 0))
        for k, v in s.get("counts", {}).items():
            out["counts"][k] = out["counts"].get(k, 0) + int(v)
        for k, v in s.get("requests", {}).items():
            out["requests"][k] = out["requests"].get(k, 0) + int(v)
        out["errors"].extend(s.get("errors", []))
        for k, v in s.get("prefix_bytes", {}).items():
            out["prefix_bytes"][k] = out["prefix_bytes"].get(k, 0) + int(v)
    out["counts"] = {k: out["counts"][k] for k in sorted(out["counts"])}
    return out


# -- one partition --------------------------------------------------------------------------------------
@dataclass
class _RowCheck:
    row: dict[str, Any]
    name: str
    sha: str
    blob: BlobView | None
    verdict: str = V_OK
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
    """Quick-verify every row and blob of ``partition``, deep-verify its share, write verdicts back and
    re-create repairable rows. ``now`` stamps ``LastVerified`` (the run's start time)."""
    prefix, shard = split_partition(partition)
    pk = encode_key(partition)
    res = PartitionResult(partition)

    rows: dict[str, dict[str, Any]] = {}
    pages = table.query_entities(
        "PartitionKey eq @pk", parameters={"pk": pk}, select=_SELECT, results_per_page=QUERY_PAGE
    ).by_page()
    for page in pages:
        res.query_pages += 1
        for ent in page:
            rows[ent["RowKey"]] = ent
    res.rows = len(rows)

    blobs: dict[str, BlobView] = {}
    foreign: list[BlobView] = []
    for page in container.list_blobs(
        name_starts_with=listing_prefix(prefix, shard), include=["metadata"], results_per_page=LISTING_PAGE
    ).by_page():
        res.listing_pages += 1
        for props in page:
            view = BlobView.of(props)
            try:
                blobs[keys_for_blob(prefix, view.name)[1]] = view
            except ValueError:
                foreign.append(view)
    res.blobs = len(blobs) + len(foreign)

    checks: list[_RowCheck] = []
    for rk, row in rows.items():
        name = str(plain(row.get(P_BLOB_NAME)) or rk)
        sha = str(plain(row.get(P_SHA256)) or "")
        with contextlib.suppress(ValueError):
            sha = parse_blob_name(prefix, name)[0]
        c = _RowCheck(row, name, sha, blobs.pop(rk, None))
        c.verdict, c.detail = quick_verdict(row, c.blob, sha)
        checks.append(c)

    _deep_verify(container, checks, res, deep_budget, deep_reference, partitions_total)
    _write_verdicts(container, table, checks, res, now)
    for c in checks:
        res.counts[c.verdict] += 1
        if c.verdict != V_OK:
            res.problems.append(Problem(c.name, c.verdict, c.detail))
    for view in [*blobs.values(), *foreign]:
        _handle_orphan(table, prefix, view, res, now)
    return res


def _deep_verify(
    container: ContainerClient,
    checks: list[_RowCheck],
    res: PartitionResult,
    budget: int,
    reference: int | None,
    partitions_total: int,
) -> None:
    pool = [c for c in checks if c.verdict == V_OK and c.blob is not None]
    res.candidate_bytes = sum(c.blob.size for c in pool if c.blob)
    allowance = deep_allowance(res.candidate_bytes, budget, reference, partitions_total)
    spent = 0
    for c in sorted(pool, key=lambda c: (deep_key(c.row), c.row["RowKey"])):
        if spent >= allowance:  # the last blob may cross the line: that is what makes progress certain
            break
        assert c.blob is not None
        spent += c.blob.size
        digest = _rehash(container, c.blob)
        if digest is None:
            res.skipped_changed += 1
            continue
        sha, n = digest
        c.deep = True
        res.deep_verified += 1
        res.deep_bytes += n
        if n != c.blob.size:
            c.verdict, c.detail = V_SIZE_MISMATCH, f"download returned {n} bytes, the listing says {c.blob.size}"
        elif sha != c.sha:
            c.verdict = V_SHA_MISMATCH
            c.detail = f"content re-hash gives {sha}, the name says {c.sha} (content replaced or corrupted)"


def _rehash(container: ContainerClient, blob: BlobView) -> tuple[str, int] | None:
    """SHA-256 and length of the blob version we listed; ``None`` if it changed or vanished since."""
    h = hashlib.sha256()
    n = 0
    try:
        stream = container.get_blob_client(blob.name).download_blob(
            etag=blob.etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1
        )
        for chunk in stream.chunks():
            h.update(chunk)
            n += len(chunk)
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


def _if_match(row: Any) -> dict[str, Any]:
    """Merge only into the row version we read (its etag), never over a newer agent write."""
    return {"mode": UpdateMode.MERGE, "etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


def _needs_write(c: _RowCheck) -> bool:
    """Only changes are written (plus deep-verify stamps), so a steady archive costs no writes."""
    r = c.row
    return (
        c.deep
        or r.get(P_LAST_VERIFIED) is None
        or plain(r.get(P_VERIFY_STATUS)) != c.verdict
        or (plain(r.get(P_VERIFY_DETAIL)) or "") != c.detail
    )


def _write_verdicts(
    container: ContainerClient, table: TableClient, checks: list[_RowCheck], res: PartitionResult, now: datetime
) -> None:
    todo = [c for c in checks if _needs_write(c)]
    for i in range(0, len(todo), TRANSACTION_SIZE):
        chunk = todo[i : i + TRANSACTION_SIZE]
        ops = [
            (
                "update",
                {"PartitionKey": c.row["PartitionKey"], "RowKey": c.row["RowKey"], **_verdict_props(c, now)},
                _if_match(c.row),
            )
            for c in chunk
        ]  # fmt: skip
        res.writes += 1
        try:
            table.submit_transaction(ops)
            continue
        except TableTransactionError:
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
            c.verdict, c.detail = V_OK, ""  # row removed meanwhile: nothing to record (or to count as damage)
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
    if not (deep_still_valid and verdict == V_OK and c.verdict != V_OK):
        c.verdict, c.detail = verdict, detail
    c.deep = deep_still_valid
    c.blob = blob


def _handle_orphan(table: TableClient, prefix: str, view: BlobView, res: PartitionResult, now: datetime) -> None:
    verdict, detail = orphan_verdict(prefix, view)
    if verdict == V_ORPHAN_REPAIRED:
        meta = parse_metadata(dict(view.metadata))
        assert meta is not None
        pk, rk = keys_for_blob(prefix, view.name)
        entity: dict[str, Any] = {
            "PartitionKey": pk,
            "RowKey": rk,
            P_BLOB_NAME: view.name,
            P_RELPATH: meta.relpath,
            P_SIZE: EntityProperty(meta.size, EdmType.INT64),
            P_MTIME_NS: EntityProperty(meta.mtime_ns, EdmType.INT64),
            P_SHA256: meta.sha256,
            P_BLOB_ETAG: view.etag,
            P_SOURCE_ID: meta.source_id,
            # Unknown from the blob alone; "current" keeps the file visible to a restore, and the agent's
            # mirror corrects it if this is in fact an older version.
            P_IS_CURRENT: True,
            P_VERIFY_STATUS: V_ORPHAN_REPAIRED,
            P_VERIFY_DETAIL: detail,
            P_LAST_VERIFIED: now,
        }
        if view.created is not None:
            entity[P_UPLOADED_AT] = view.created
        res.writes += 1
        try:
            table.create_entity(entity)
        except ResourceExistsError:  # the agent's mirror wrote it meanwhile: verified next run
            res.skipped_changed += 1
            return
    res.counts[verdict] += 1
    res.problems.append(Problem(view.name, verdict, detail))


# -- a whole run, in-process (the CLI's runner; the cloud fans out the same calls) ---------------------
def verify_all(
    container: ContainerClient,
    table: TableClient,
    partitions: list[str],
    *,
    now: datetime,
    deep_budget: int = 0,
    deep_reference: int | None = None,
    workers: int = 8,
) -> tuple[dict[str, Any], list[Problem]]:
    """Verify ``partitions`` in a thread pool; returns the merged summary and every problem."""

    def one(p: str) -> PartitionResult:
        return verify_partition(
            container, table, p, now=now, deep_budget=deep_budget, deep_reference=deep_reference,
            partitions_total=len(partitions),
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
        results = list(pool.map(one, partitions))
    return merge_summaries(r.summary() for r in results), [p for r in results for p in r.problems]
