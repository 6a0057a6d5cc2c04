"""Mirror the SQLite ``blobs`` history into the Azure Table index, so the cloud can verify without us.

Writes are merge-upserts (replayable: a retry or a second run writes the same entity again) in
entity-group transactions of at most 100 operations, one partition each: mirroring N rows costs about
N/100 requests per partition touched. Merge mode never sends the ``Verify*`` properties, so the verdicts the
cloud wrote stay. SQLite's ``blobs.mirror_pending`` says what the Table still has to learn; it is cleared
only after the service accepted the transaction, so a crash or a failed mirror leaves the rows pending for
the next run — and never marks a file as failed to upload.

Rows first recorded in this run are inserted instead (``create``, answered without the entity echoed back):
an insert costs the service less than a merge (docs/benchmarks.md), and if such a row exists after all (a
lost state dir, a re-uploaded lost blob) the service refuses the insert and the batch is sent again as
merges. Transactions are written by :mod:`~sync_core.index.table_batch` (far cheaper than the SDK's:
docs/benchmarks.md), so even a partition with one pending row
goes as a transaction: it costs what a single-entity write costs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EntityProperty, TableClient, TableServiceClient, UpdateMode

from sync_core.config import ENV_TABLE, StorageConfig
from sync_core.errors import ConfigError, first_line
from sync_core.index import flags, table_batch
from sync_core.index.entity import entity_for
from sync_core.index.table_index import (
    BINDING_PARTITION,
    BINDING_ROW,
    P_BOUND_ACCOUNT,
    P_BOUND_CONTAINER,
    P_MTIME_NS,
    P_SIZE,
    P_VERIFY_STATUS,
    all_shards,
    partition_key,
)
from sync_core.index.table_query import odata_string, query_pages
from sync_core.local.state import BlobRow, StateDB
from sync_core.storage.clients import access_checked
from sync_core.sync.progress import RunSummary
from sync_core.verify.verdicts import DAMAGE_VERDICTS

MAX_BATCH = table_batch.MAX_OPERATIONS  # the service's limit for one entity-group transaction
_INT64_PROPS = (P_SIZE, P_MTIME_NS)


# -- reading entities ------------------------------------------------------------------------------------------
def plain(entity: Any) -> dict[str, Any]:
    """An entity read from the service as a plain dict: Int64 properties as ``int``, keys included.

    A Size or MtimeNs that is not a number (a row another tool wrote) is left as it is, so that the
    reader rejects that one row (restore, rebuild, repair each say why) instead of stopping the whole read."""
    d = dict(entity)
    for k, v in d.items():
        if isinstance(v, EntityProperty):
            d[k] = v.value
    for k in _INT64_PROPS:
        if k in d and d[k] is not None:
            with contextlib.suppress(TypeError, ValueError):
                d[k] = int(d[k])
    meta = getattr(entity, "metadata", None) or {}
    if "etag" in meta:
        d["odata.etag"] = meta["etag"]
    return d


# -- reads -------------------------------------------------------------------------------------------------
def _prefix_filter(prefix: str) -> tuple[str, dict[str, str], set[str]]:
    """A PartitionKey range covering the 256 partitions of ``prefix`` (exact keys checked client-side:
    the range could also hold a longer prefix's partitions)."""
    pks = {partition_key(prefix, s) for s in all_shards()}
    return "PartitionKey ge @lo and PartitionKey le @hi", {"lo": min(pks), "hi": max(pks)}, pks


def _substitute(query_filter: str, parameters: dict[str, str]) -> str:
    """``@name`` words replaced by string literals, as the SDK's ``query_entities(parameters=)`` does."""
    words = query_filter.split(" ")
    return " ".join(odata_string(parameters[w[1:]]) if w[:1] == "@" and w[1:] in parameters else w for w in words)


def prefix_rows(
    table_client: TableClient, prefix: str, source_id: str | None = None, *, extra: str = "", **params: str
) -> Iterator[dict[str, Any]]:
    """Every row under ``prefix`` (of ``source_id`` when given), as plain dicts
    (:func:`~sync_core.index.table_query.query_pages`: a restore or rebuild reads the whole index)."""
    flt, parameters, pks = _prefix_filter(prefix)
    if source_id is not None:
        flt += " and SourceId eq @sid"
        parameters["sid"] = source_id
    if extra:
        flt += f" and ( {extra} )"  # @names are substituted between spaces
        parameters.update(params)
    for page in query_pages(table_client, _substitute(flt, parameters)):
        for row in page:
            if row["PartitionKey"] in pks:
                yield plain(row)


def flagged_rows(
    table_client: TableClient, prefix: str, source_id: str, *, tidy: bool = False
) -> list[dict[str, Any]]:
    """Rows of ``source_id`` under ``prefix`` that the cloud flagged as damaged (``VerifyStatus`` in
    :data:`~sync_core.verify.verdicts.DAMAGE_VERDICTS`): through the source's flags (:mod:`~sync_core.index.flags`,
    a cost independent of the library's size) when they are complete, else :func:`scan_flagged_rows`.
    ``tidy``: drop the stale flags met (a sync; ``status`` only reads)."""
    found = flags.flagged_rows(table_client, prefix, source_id, tidy=tidy)
    if found is not None:
        return [plain(row) for row in found]
    return scan_flagged_rows(table_client, prefix, source_id)


def scan_flagged_rows(table_client: TableClient, prefix: str, source_id: str) -> list[dict[str, Any]]:
    """The same rows by one filtered range query over the prefix's partitions: the service reads every row
    under the prefix."""
    verdicts = sorted(DAMAGE_VERDICTS)
    extra = " or ".join(f"{P_VERIFY_STATUS} eq @v{i}" for i in range(len(verdicts)))
    params = {f"v{i}": v for i, v in enumerate(verdicts)}
    return list(prefix_rows(table_client, prefix, source_id, extra=extra, **params))


# -- opening the table ---------------------------------------------------------------------------------------
def open_table(
    service: TableServiceClient, cfg: StorageConfig, *, create: bool = False, claim: bool = False
) -> TableClient:
    """The index table's client after checking it exists (creating it only when allowed) and that it
    indexes ``cfg``'s container (:func:`check_binding`; ``claim``: bind an unbound table to it)."""
    table = service.get_table_client(cfg.table)
    with access_checked(
        service.url,
        credential=cfg.credential_kind,
        what=f"table {cfg.table!r}",
        missing=f"index table {cfg.table!r} does not exist: create it (az storage table create --name "
        f"{cfg.table} --auth-mode login --account-name ACCOUNT), deploy infra/, or pass --create-container",
        denied=f"access to table {cfg.table!r} denied: grant this identity 'Storage Table Data Contributor' "
        "on the index table",
    ):
        if create:
            service.create_table_if_not_exists(cfg.table)
        else:
            # One small query: works with 'Storage Table Data Contributor' scoped to the table alone.
            next(iter(table.query_entities("PartitionKey eq '~'", results_per_page=1).by_page()), None)
        check_binding(table, cfg, claim=claim)
    return table


def blob_account(cfg: StorageConfig) -> str:
    """The storage account of ``cfg``'s container, as the SDK reads it from the connection string or URL."""
    from azure.storage.blob import BlobServiceClient

    if cfg.connection_string:
        return BlobServiceClient.from_connection_string(cfg.connection_string).account_name or ""
    return BlobServiceClient(cfg.account_url or "").account_name or ""


class TableBoundElsewhere(ConfigError):
    """The index table indexes another container: a configuration error that no fallback may hide."""


def check_binding(table: TableClient, cfg: StorageConfig, *, claim: bool = False) -> None:
    """Refuse a table that indexes another container: both would share rows under equal prefixes, and
    verifying one would flag the other's blobs as missing. An unbound table (from before the binding) is
    bound by the first command that ``claim``s it (sync, index rebuild/mirror); readers only check."""
    ours = {P_BOUND_ACCOUNT: blob_account(cfg), P_BOUND_CONTAINER: cfg.container}
    try:
        bound = table.get_entity(BINDING_PARTITION, BINDING_ROW)
    except ResourceNotFoundError:
        if not claim:
            return
        try:
            table.create_entity({"PartitionKey": BINDING_PARTITION, "RowKey": BINDING_ROW, **ours})
            return
        except ResourceExistsError:  # another run bound it meanwhile
            bound = table.get_entity(BINDING_PARTITION, BINDING_ROW)
    theirs = {k: str(bound.get(k) or "") for k in ours}
    if theirs != ours:
        where = f"container {theirs[P_BOUND_CONTAINER]!r} of account {theirs[P_BOUND_ACCOUNT]!r}"
        raise TableBoundElsewhere(
            f"index table {cfg.table!r} already indexes {where}, not container {cfg.container!r} of account "
            f"{ours[P_BOUND_ACCOUNT]!r} (give each container its own index table with --table or {ENV_TABLE})"
        )


def open_table_if_usable(
    service: TableServiceClient, cfg: StorageConfig, *, create: bool = False, claim: bool = False
) -> tuple[TableClient | None, str]:
    """:func:`open_table` for a backup, which never waits for the table: the client and ``""``, or ``None``
    and the one-line reason (missing, forbidden, unreachable) that the run reports while its rows wait in
    SQLite (``mirror_pending``) for the next run or ``azphotosync index mirror``."""
    try:
        return open_table(service, cfg, create=create, claim=claim), ""
    except TableBoundElsewhere:
        raise
    except ConfigError as exc:
        return None, str(exc)


def unavailable_reason(table: str, exc: AzureError) -> str:
    """For a mirror that the table refused as a whole (forbidden, or the table is gone), the one line that
    says what to do; empty for other errors (throttling, network), which the next run simply retries."""
    status = getattr(exc, "status_code", None)
    if status == 403:
        return (
            f"the index table {table!r} refused the writes ({first_line(exc)}): grant this identity "
            "'Storage Table Data Contributor' on it"
        )
    if status == 404:
        return f"index table {table!r} does not exist: create it (az storage table create --name {table})"
    return ""


# -- the mirror ----------------------------------------------------------------------------------------------
@dataclass
class MirrorResult:
    mirrored: int = 0  # rows the Table accepted
    transactions: int = 0  # write requests accepted: entity-group transactions, or single-entity writes
    partitions: int = 0  # partitions touched
    pending: int = 0  # rows still pending afterwards
    error: str = ""  # why mirroring stopped early (rows stay pending for the next run)
    unavailable: str = ""  # the table refused the writes (forbidden) or is gone: what to do about it
    rejected: list[dict[str, str]] = field(default_factory=list)  # single rows the service refused


@dataclass
class _Sent:
    accepted: list[BlobRow]
    rejected: list[dict[str, str]]
    transactions: int


_ENTITY_ERRORS = (400, 409, 413)  # about one entity (bad property, too large): isolate it, go on


class MirroredRows:
    """The rows one run's mirror wrote, kept for a delta update of derived data, up to ``limit``: beyond it
    (a first sync) only the fact that there were more is kept, and the derived data is rebuilt whole."""

    def __init__(self, limit: int = 20_000):
        self.limit = limit
        self.rows: list[BlobRow] = []
        self.overflowed = False

    def add(self, rows: Iterable[BlobRow]) -> None:
        if self.overflowed:
            return
        self.rows.extend(rows)
        if len(self.rows) > self.limit:
            self.rows.clear()
            self.overflowed = True


class TableMirror:
    """Writes pending ``blobs`` rows of ``state`` into ``table``. One instance per run, main thread only."""

    def __init__(
        self,
        table: TableClient,
        state: StateDB,
        *,
        batch_size: int = MAX_BATCH,
        workers: int = 8,
        on_transaction: Callable[[str, int], None] | None = None,
        fresh_since: float | None = None,
        accepted: MirroredRows | None = None,
    ):
        """``fresh_since``: rows first recorded at or after this time (``uploaded_at``) were never mirrored
        from this state dir, so they are inserted rather than merged (a conflict falls back to a merge).
        ``accepted``: told every row the service accepted (what derived data, the gallery's catalog, must
        learn from this run)."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.table = table
        self.state = state
        self.batch_size = batch_size
        self.workers = max(1, workers)
        self.on_transaction = on_transaction  # (partition key, operations) after each accepted transaction
        self.fresh_since = fresh_since
        self.accepted = accepted

    def run(self) -> MirrorResult:
        """Mirror every pending row; stops at the first service error that is not about one entity.

        Partitions are independent, so up to ``workers`` transactions are in flight; the main thread alone
        writes SQLite, after each transaction the service accepted."""
        res = MirrorResult()
        self.state.commit()  # pending rows are read through a separate connection
        touched: set[str] = set()
        inflight: dict[Future[_Sent], str] = {}
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="mirror") as pool:
                try:
                    for pk, batch in self._batches(self.state.iter_mirror_pending()):
                        touched.add(pk)
                        while len(inflight) >= 2 * self.workers:
                            self._collect(inflight, res, FIRST_COMPLETED)
                        inflight[pool.submit(self._send, batch)] = pk
                finally:
                    while inflight:  # let what was sent finish, and record it
                        self._collect(inflight, res, ALL_COMPLETED)
        except AzureError as exc:
            res.error = first_line(exc)
            res.unavailable = unavailable_reason(self.table.table_name, exc)
        finally:
            self.state.commit()
        res.partitions = len(touched)
        res.pending = self.state.count_mirror_pending()
        return res

    def _collect(self, inflight: dict[Future[_Sent], str], res: MirrorResult, when: str) -> None:
        done, _ = wait(inflight, return_when=when)
        error: AzureError | None = None
        for fut in done:
            pk = inflight.pop(fut)
            try:
                sent = fut.result()
            except AzureError as exc:
                error = error or exc
                continue
            res.transactions += sent.transactions
            res.mirrored += len(sent.accepted)
            res.rejected += sent.rejected
            self.state.mark_mirrored(sent.accepted)
            if self.accepted is not None:
                self.accepted.add(sent.accepted)
            if sent.transactions and self.on_transaction is not None:
                self.on_transaction(pk, len(sent.accepted))
        self.state.maybe_commit(every=1000)
        if error is not None:
            raise error

    def _batches(self, rows: Iterable[BlobRow]) -> Iterator[tuple[str, list[tuple[BlobRow, dict[str, Any]]]]]:
        """Group rows (arriving in SHA-256 order) into full per-partition batches; a partition's
        remainder is flushed when the shard changes, so memory stays small."""
        buffers: dict[str, list[tuple[BlobRow, dict[str, Any]]]] = {}
        shard = None
        for row in rows:
            if row.sha256[:2] != shard:
                yield from self._flush(buffers)
                shard = row.sha256[:2]
            ent = entity_for(row)
            buf = buffers.setdefault(ent["PartitionKey"], [])
            if any(e["RowKey"] == ent["RowKey"] for _, e in buf):  # one entity per transaction
                yield from self._flush({ent["PartitionKey"]: buffers.pop(ent["PartitionKey"])})
                buf = buffers.setdefault(ent["PartitionKey"], [])
            buf.append((row, ent))
            if len(buf) >= self.batch_size:
                yield ent["PartitionKey"], buffers.pop(ent["PartitionKey"])
        yield from self._flush(buffers)

    @staticmethod
    def _flush(buffers: dict[str, list[tuple[BlobRow, dict[str, Any]]]]) -> Iterator[tuple[str, list[Any]]]:
        for pk in list(buffers):
            batch = buffers.pop(pk)
            if batch:
                yield pk, batch

    def _op(self, row: BlobRow, ent: dict[str, Any]) -> tuple[table_batch.Op, dict[str, Any]]:
        if self.fresh_since is not None and row.uploaded_at >= self.fresh_since:
            return ("create", ent)
        return ("merge", ent)

    def _send(self, batch: list[tuple[BlobRow, dict[str, Any]]]) -> _Sent:
        """Worker: one transaction; when the service refuses it for an entity's sake, row by row."""
        ops = [self._op(row, ent) for row, ent in batch]
        try:
            try:
                table_batch.submit(self.table, ops)
            except HttpResponseError as exc:
                if exc.status_code != 409 or all(op != "create" for op, _ in ops):
                    raise
                # An inserted row exists already: send the batch again as merges (which keep its verdicts).
                table_batch.submit(self.table, [("merge", ent) for _, ent in batch])
            return _Sent([row for row, _ in batch], [], 1)
        except HttpResponseError as exc:
            if exc.status_code not in _ENTITY_ERRORS:
                raise
        return self._send_singly(batch)  # isolate the entity the service refuses

    def _send_singly(self, batch: list[tuple[BlobRow, dict[str, Any]]]) -> _Sent:
        """One merge-upsert per entity (keeps the cloud's verdicts on rows that exist); a refused entity is
        reported, the others go through."""
        sent = _Sent([], [], 0)
        for row, ent in batch:
            try:
                self.table.upsert_entity(ent, mode=UpdateMode.MERGE)
                sent.accepted.append(row)
            except HttpResponseError as exc:
                if exc.status_code not in _ENTITY_ERRORS:
                    raise
                sent.rejected.append({"blob_name": row.blob_name, "error": first_line(exc)})
        return sent


class LiveMirror:
    """Mirrors rows while the uploads still run, so the Table's writes overlap the blob uploads instead of
    following them (on a byte-heavy run the storage service has room for them between the uploads).

    The main thread hands each row it recorded to :meth:`add`; rows go out as transactions (on
    :meth:`TableMirror._send`'s terms) when a partition holds a full one, and all buffered rows each time
    ``flush_bytes`` more content or ``flush_rows`` more rows have been stored: at most one extra transaction
    per partition per flush, so the emulator's or service's per-request cost stays bounded while most rows
    are written before the uploads end. Nothing is final
    here: rows not sent (or refused) stay ``mirror_pending`` in SQLite for the end-of-run pass, and the
    first service error stops live mirroring altogether. Main thread only, like :class:`TableMirror`."""

    FLUSH_BYTES = 64 * 1024 * 1024
    FLUSH_ROWS = 5000  # a small-file run: ~20 rows per partition per transaction, a quarter of it at the end

    def __init__(self, mirror: TableMirror, *, flush_bytes: int | None = None, flush_rows: int | None = None):
        self.mirror = mirror
        self.flush_bytes = flush_bytes or self.FLUSH_BYTES
        self.flush_rows = flush_rows or self.FLUSH_ROWS
        self.result = MirrorResult()
        self._pool = ThreadPoolExecutor(mirror.workers, thread_name_prefix="live-mirror")
        self._inflight: dict[Future[_Sent], str] = {}
        self._buffers: dict[str, list[tuple[BlobRow, dict[str, Any]]]] = {}
        self._keys: dict[str, set[str]] = {}  # RowKeys per buffer
        self._bytes = self._rows = 0  # stored since every buffer was last sent
        self._stopped = False

    def add(self, row: BlobRow, nbytes: int) -> None:
        """A row just recorded in SQLite for ``nbytes`` of content stored."""
        if self._stopped:
            return
        ent = entity_for(row)
        pk = ent["PartitionKey"]
        buf = self._buffers.setdefault(pk, [])
        keys = self._keys.setdefault(pk, set())
        if ent["RowKey"] in keys:
            return  # one entity per transaction: the end-of-run pass sends this row
        keys.add(ent["RowKey"])
        buf.append((row, ent))
        if len(buf) >= self.mirror.batch_size:
            self._submit(pk)
        self._bytes += nbytes
        self._rows += 1
        if self._bytes >= self.flush_bytes or self._rows >= self.flush_rows:
            self._bytes = self._rows = 0
            for key in list(self._buffers):
                self._submit(key)

    def _submit(self, pk: str) -> None:
        self._keys.pop(pk, None)
        batch = self._buffers.pop(pk, None)
        if batch and not self._stopped:
            self._inflight[self._pool.submit(self.mirror._send, batch)] = pk

    def poll(self) -> None:
        """Record the transactions that finished (never blocks)."""
        done = [f for f in self._inflight if f.done()]
        if done:
            self._record(done)

    def _record(self, done: Iterable[Future[_Sent]]) -> None:
        try:
            self.mirror._collect({f: self._inflight.pop(f) for f in done}, self.result, ALL_COMPLETED)
        except AzureError as exc:  # the end-of-run pass retries what is pending, and reports
            self._stopped = True
            self.result.error = first_line(exc)

    def close(self) -> MirrorResult:
        """Wait for the transactions in flight and record them; unsent rows stay pending."""
        self._stopped = True
        self._buffers.clear()
        try:
            if self._inflight:
                wait(self._inflight)
                self._record(list(self._inflight))
        finally:
            self._pool.shutdown(wait=True)
        return self.result


def add_to_summary(res: MirrorResult, summary: RunSummary) -> None:
    """Fold a mirror pass into the run summary. A failed mirror fails no file: its rows stay pending and
    the run exits 1 so the gap in the cloud's view is noticed."""
    summary.mirrored += res.mirrored
    summary.mirror_pending = res.pending
    problems = [res.error] if res.error else []
    problems += [f"{r['blob_name']}: {r['error']}" for r in res.rejected[:5]]
    if problems:
        summary.mirror_error = "; ".join(problems)
        summary.problems += 1
