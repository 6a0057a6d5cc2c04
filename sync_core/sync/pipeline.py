"""The sync pipeline: scan -> plan -> hash -> transfer -> record.

The main thread scans and plans (cheap: one stat per file, compared with the index loaded in one query),
then feeds new and changed files to a bounded pool of workers. Each worker hashes a file and stores it
(upload, server-side copy or adopt); the main thread alone writes the results to SQLite, in batches, and
only for blobs the service confirmed. Memory stays bounded: at most ``2 * max_workers`` files are queued
and the bytes held for uploads are capped by a :class:`~sync_core.sync.transfer.BufferBudget`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from azure.core.exceptions import AzureError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta
from sync_core.contracts.blobname import blob_name, listing_prefix
from sync_core.contracts.mediatypes import content_type
from sync_core.errors import ConfigError, UnstorableNameError, first_line
from sync_core.index import table_mirror
from sync_core.local.capture import NOTHING, Capture, read_capture
from sync_core.local.exclude import ExcludeRules
from sync_core.local.hasher import (
    FileChangedError,
    Hashed,
    NotScannedFileError,
    file_unchanged,
    hash_file,
    md5_of,
)
from sync_core.local.scanner import ScanEntry, ScanProblem, ScanResult, scan
from sync_core.local.state import FileRow, StateDB, StatRow
from sync_core.storage.bandwidth import limiter
from sync_core.storage.clients import SINGLE_PUT_MAX
from sync_core.storage.concurrency import THROTTLE, WAKE_SECONDS, AdaptiveLimiter, OutageWatch, abandoning_pool
from sync_core.sync import repair
from sync_core.sync.progress import FileOutcome, Kind, NullProgress, ProgressSink, RunSummary
from sync_core.sync.transfer import BLOCK_SIZE, BLOCKS_IN_FLIGHT, BlobConflictError, BufferBudget, StoreResult, Transfer
from sync_core.timestamps import index_int

MiB = 1024 * 1024


def _nothing(_: object) -> None:
    pass


@dataclass
class SyncOptions:
    source: Path
    dry_run: bool = False
    max_workers: int = 8
    rules: ExcludeRules = field(default_factory=ExcludeRules)
    small_file_max: int = SINGLE_PUT_MAX  # read once, hashed and sent from memory in a single Put Blob
    block_size: int = BLOCK_SIZE  # larger files: staged in blocks of this size...
    blocks_in_flight: int = BLOCKS_IN_FLIGHT  # ...this many at a time per file
    memory_budget: int = 64 * MiB  # bytes held for uploads across all workers
    allow_empty_source: bool = False
    bwlimit: int | None = None  # bytes per second for uploads (None: unlimited)


@dataclass(slots=True)
class _Done:
    """A worker's result: the public outcome plus what the recorder needs."""

    outcome: FileOutcome
    entry: ScanEntry
    sha256: str | None = None
    etag: str | None = None
    record: bool = False  # the blob is confirmed and is now the current version of the path
    history_only: bool = False  # the blob is confirmed, but the file changed: keep it as history
    capture: Capture = NOTHING  # when the photo/video was taken, camera model


class SyncEngine:
    """One sync run of ``opts.source`` into the container described by ``cfg``."""

    def __init__(
        self,
        cfg: StorageConfig | None,
        state: StateDB,
        container: ContainerClient | None,
        opts: SyncOptions,
        progress: ProgressSink | None = None,
        *,
        table: TableClient | None = None,
        table_unavailable: str = "",
    ):
        """``table``: the Table index; when given, the run repairs flagged blobs first and mirrors last.
        ``table_unavailable``: why there is none (missing, forbidden, unreachable): the backup goes on, its
        rows wait in SQLite, and the run says so once."""
        if not opts.dry_run and (cfg is None or container is None):
            raise ValueError("a real run needs a storage configuration and a container")
        self.cfg = cfg
        self.state = state
        self.container = container
        self.table = table
        self.table_unavailable = table_unavailable
        self.opts = opts
        self.progress: ProgressSink = progress or NullProgress()
        self.summary = RunSummary(dry_run=opts.dry_run)
        self.mirrored_rows = table_mirror.MirroredRows()  # what the gallery's catalog learns from this run
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Event] = {}
        self._stored: dict[str, str] = {}  # sha -> blob name stored this run, until committed
        self._probe_first = False
        self._transfer: Transfer | None = None
        self._limiter = AdaptiveLimiter(max(1, opts.max_workers))
        self._bucket = limiter(opts.bwlimit)  # one --bwlimit for the repairs and the uploads of the run
        self._outage = OutageWatch()

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        t0 = time.monotonic()
        source = self.opts.source
        if not source.exists():
            raise ConfigError(f"source {str(source)!r} does not exist; check the path (is the disk mounted?)")
        if not source.is_dir():
            raise ConfigError(f"source {str(source)!r} is not a folder; point --source at your library's root")
        repairer, flags = self._start_flag_query()
        index = self.state.load_stats()
        scan_result = ScanResult()
        work = list(self._plan(index, scan_result))
        self._check_not_unmounted(index)
        self._report_scan_problems(scan_result.problems)
        self.summary.add_left_out(scan_result.left_out)
        if not self.opts.dry_run:
            self._probe_first = not index and self._container_has_blobs()
            self._repair_flagged(repairer, flags)
            self._transfer_all(work, self.state.file_rows(e.relpath for e in work if e.relpath in index))
            self._record_deletions(index, scan_result)
            self.state.commit()
            if not self._outage.tripped:  # the Table lives with the blobs: its rows wait for the next run
                self._mirror()
        else:
            for e in work:
                self._finish(_Done(FileOutcome(e.relpath, Kind.WOULD_UPLOAD, e.size), e))
        self.summary.seconds = time.monotonic() - t0
        return self.summary

    # -- Table index: closed-loop repair first, mirror last ---------------------------------------------
    def _start_flag_query(self) -> tuple[repair.Repairer | None, repair.FlagQuery | None]:
        """Send the Table query for flagged rows now, on a thread, so its round trip overlaps the index load
        and the scan. Only the query runs early: repairs still wait until the scan proved the source mounted."""
        if self.opts.dry_run or self.table is None or self.cfg is None or self.container is None:
            return None, None
        repairer = repair.Repairer(
            self.cfg, self.state, self.container, self.table, self.opts.source,
            block_size=self.opts.block_size, single_put_max=self.opts.small_file_max, read_hook=self._bucket,
        )  # fmt: skip
        answer: Future[list[dict[str, object]]] = Future()

        def query() -> None:
            if answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(repairer.query_flags())
                except BaseException as exc:  # handed to the main thread by answer.result()
                    answer.set_exception(exc)

        threading.Thread(target=query, name="flags", daemon=True).start()
        return repairer, answer.result

    def _repair_flagged(self, repairer: repair.Repairer | None, flags: repair.FlagQuery | None) -> None:
        """Re-upload what the cloud flagged, from local copies (after the scan proved the source mounted)."""
        if repairer is None:
            return
        res = repairer.run(flags)
        if res.unavailable:  # said once, with the rows that wait, at the end of the run
            self.table_unavailable = res.unavailable
        repair.add_to_summary(res, self.summary)
        for item in res.items:
            self.progress.note(f"repair {item.outcome}: {item.blob_name}: {item.detail}", verbose=False)
        if res.error:
            self.progress.note(f"warning: {res.error}", verbose=False)

    def _mirror(self) -> None:
        """Tell the Table about new, edited and deleted blobs; a failure leaves rows pending, fails no file."""
        if self.table is None:
            if self.table_unavailable:
                self._note_table_unavailable()
            return
        t0 = time.monotonic()
        res = table_mirror.TableMirror(
            self.table, self.state, fresh_since=self._fresh_since, accepted=self.mirrored_rows
        ).run()
        if self._live_result is not None:  # what went out during the uploads; what it could not send or
            res.mirrored += self._live_result.mirrored  # had refused was pending for the pass above
            res.transactions += self._live_result.transactions
        if res.unavailable:  # forbidden or gone: as if the run had started without the table
            self.summary.mirrored += res.mirrored
            self.table_unavailable = res.unavailable
            self._note_table_unavailable()
            self.summary.mirror_seconds = round(time.monotonic() - t0 + self._live_wait, 3)
            return
        table_mirror.add_to_summary(res, self.summary)
        self.summary.mirror_seconds = round(time.monotonic() - t0 + self._live_wait, 3)
        if self.summary.mirror_error:
            self.progress.note(
                f"warning: index table not fully updated ({self.summary.mirror_error}); "
                f"{res.pending} row(s) retried next run",
                verbose=False,
            )

    def _note_table_unavailable(self) -> None:
        """The one line a run without its index table prints: not a failure (exit 0), since every file is
        backed up and recorded; only the cloud's view waits."""
        waiting = self.state.count_mirror_pending()
        self.summary.mirror_pending = waiting
        self.summary.index_unavailable = self.table_unavailable
        if waiting:
            self.progress.note(
                f"note: files backed up, but {waiting} row(s) wait for the index table: {self.table_unavailable}"
                "; then run `azphotosync index mirror` (or the next sync does it)",
                verbose=False,
            )

    # -- scan + plan -------------------------------------------------------------------------------
    def _plan(self, index: dict[str, StatRow], scan_result: ScanResult) -> Iterator[ScanEntry]:
        """Yield entries whose stat differs from the index; count the unchanged ones (once per file of the
        library on every run: locals, not attribute look-ups)."""
        seen: set[str] = set()
        self._seen = seen
        # Only an index row can be missed (a deletion): a first sync does not hold every path twice.
        remember, lookup = (seen.add if index else _nothing), index.get
        scanned = unchanged = 0
        try:
            for e in scan(str(self.opts.source), self.opts.rules, scan_result):
                scanned += 1
                rel = e.relpath
                remember(rel)
                row = lookup(rel)
                if row is not None and row[1] == e.size and row[2] == e.mtime_ns and row[3] == e.inode:
                    unchanged += 1
                    continue
                if row is not None and row[1:] == (e.size, index_int(e.mtime_ns), index_int(e.inode)):
                    unchanged += 1  # an mtime or inode past what the index holds, stored clamped
                    continue
                yield e
        finally:
            self.summary.scanned += scanned
            self.summary.unchanged += unchanged

    def _check_not_unmounted(self, index: dict[str, StatRow]) -> None:
        if index and self.summary.scanned == 0 and not self.opts.allow_empty_source:
            raise ConfigError(
                f"source {str(self.opts.source)!r} has no files but the index lists {len(index)}: is the disk "
                "mounted? Nothing was changed (pass --allow-empty-source if the library really is empty)"
            )

    def _report_scan_problems(self, problems: list[ScanProblem]) -> None:
        for p in problems:
            kind = Kind.FAILED if p.is_error else Kind.SKIPPED
            o = FileOutcome(p.relpath, kind, detail=p.reason)
            self.summary.add(o)
            self.progress.file_done(o)

    def _container_has_blobs(self) -> bool:
        """A fresh index over a non-empty prefix means a lost state dir: check before each upload."""
        assert self.container is not None and self.cfg is not None
        under = listing_prefix(self.cfg.prefix)
        pages = self.container.list_blobs(name_starts_with=under, results_per_page=1).by_page()
        first = next(iter(pages), None)
        return bool(first and next(iter(first), None))

    # -- transfer ----------------------------------------------------------------------------------
    _fresh_since: float | None = None  # rows recorded from then on are new to the Table (inserted, not merged)
    _live: table_mirror.LiveMirror | None = None  # mirrors rows while the uploads run
    _live_result: table_mirror.MirrorResult | None = None
    _live_wait = 0.0  # seconds the end of the uploads waited for its last transactions

    def _transfer_all(self, work: list[ScanEntry], index: dict[str, FileRow]) -> None:
        opts = self.opts
        self.progress.planned(len(work), sum(e.size for e in work))
        workers = max(1, opts.max_workers)
        self._fresh_since = time.time()
        if self.table is not None:
            self._live = table_mirror.LiveMirror(
                table_mirror.TableMirror(
                    self.table, self.state, fresh_since=self._fresh_since, accepted=self.mirrored_rows
                )
            )
        interrupted = False
        with (
            abandoning_pool(workers, "file") as pool,  # Ctrl-C does not wait for workers blocked in I/O
            abandoning_pool(workers, "block") as block_pool,
            THROTTLE.listening(self._limiter),  # throttling answers shrink the files in flight (AIMD)
            THROTTLE.listening(self._outage),  # no answers at all stop the run
        ):
            assert self.container is not None
            # A slot holds one block or one in-memory file, so it is sized for the larger of the two.
            slot = max(opts.block_size, opts.small_file_max)
            self._budget = BufferBudget(max(1, opts.memory_budget // slot))
            self._transfer = Transfer(
                self.container,
                block_size=opts.block_size,
                blocks_in_flight=opts.blocks_in_flight,
                block_pool=block_pool,
                budget=self._budget,
                read_hook=self._bucket,
            )
            # Finished futures arrive on a queue (a done-callback per file) instead of ``wait(FIRST_COMPLETED)``,
            # which installs and removes a waiter on every pending future each time (docs/benchmarks.md).
            done: queue.SimpleQueue[Future[_Done]] = queue.SimpleQueue()
            pending: set[Future[_Done]] = set()
            untried = len(work)
            try:
                for entry in work:
                    while len(pending) >= 2 * workers and not self._outage.tripped:
                        self._collect(pending, done)
                    if self._outage.tripped:
                        break
                    fut = pool.submit(self._process, entry, index.get(entry.relpath))
                    untried -= 1
                    pending.add(fut)
                    fut.add_done_callback(done.put)
                while pending:
                    if self._outage.tripped:  # files not started yet are not tried
                        untried += sum(fut.cancel() for fut in pending if not fut.cancelled())
                    self._collect(pending, done)
            except BaseException as exc:
                # Ctrl-C or a fatal state-dir error: start nothing new and wait for nothing; files already in
                # flight end on their own, and what they stored unrecorded is adopted by the next run
                # without sending bytes again.
                interrupted = isinstance(exc, KeyboardInterrupt)
                for fut in pending:
                    fut.cancel()
                raise
            finally:
                if self._live is not None and not interrupted:  # rows it did not send stay pending
                    t0 = time.monotonic()
                    self._live_result = self._live.close()
                    self._live_wait = time.monotonic() - t0
        if self._outage.tripped:
            note = f"{self._outage.describe()}: stopped the run; {untried} file(s) not tried, retried next run"
            self.progress.note(note, verbose=False)

    def _collect(self, pending: set[Future[_Done]], done: queue.SimpleQueue[Future[_Done]]) -> None:
        """Record every file that has finished (at least one; blocks until then)."""
        fut: Future[_Done] | None = None
        while fut is None:  # wakes every WAKE_SECONDS, so a Ctrl-C the kernel gave a worker thread is handled at once
            with contextlib.suppress(queue.Empty):
                fut = done.get(timeout=WAKE_SECONDS)
        while True:
            pending.discard(fut)
            if not fut.cancelled():  # cancelled: never started (a known outage stopped the run)
                self._finish(fut.result())
            try:
                fut = done.get_nowait()
            except queue.Empty:
                break
        if self._live is not None:
            self._live.poll()
        for line in self._limiter.drain_changes():
            self.progress.note(line, verbose=True)
        if self.state.maybe_commit():
            with self._lock:
                self._stored.clear()  # committed rows are visible to the workers' DB readers now

    def _process(self, entry: ScanEntry, row: FileRow | None) -> _Done:
        """Worker: hash and store one file. Never raises: every problem becomes an outcome."""
        try:
            with self._limiter:
                return self._hash_and_store(entry, row)
        except FileChangedError as exc:
            return _Done(FileOutcome(entry.relpath, Kind.SKIPPED, entry.size, detail=f"{exc}; retried next run"), entry)
        except FileNotFoundError:
            return _Done(FileOutcome(entry.relpath, Kind.SKIPPED, entry.size, detail="vanished during the run"), entry)
        except NotScannedFileError as exc:
            return _Done(FileOutcome(entry.relpath, Kind.FAILED, entry.size, detail=f"{exc}; retried next run"), entry)
        except OSError as exc:
            detail = f"cannot read: {exc.strerror or exc}"
            return _Done(FileOutcome(entry.relpath, Kind.FAILED, entry.size, detail=detail), entry)
        except UnstorableNameError as exc:
            detail = f"name cannot be stored: {exc}"
            return _Done(FileOutcome(entry.relpath, Kind.FAILED, entry.size, detail=detail), entry)
        except BlobConflictError as exc:
            return _Done(FileOutcome(entry.relpath, Kind.FAILED, entry.size, detail=str(exc)), entry)
        except AzureError as exc:
            detail = f"storage error: {first_line(exc)}"
            return _Done(FileOutcome(entry.relpath, Kind.FAILED, entry.size, detail=detail), entry)

    def _hash_and_store(self, entry: ScanEntry, row: FileRow | None) -> _Done:
        assert self.cfg is not None and self._transfer is not None
        keep = self.opts.small_file_max
        # Small reads under 1 MiB are not worth a budget slot; larger in-memory files take one.
        slot = self._budget if MiB < entry.size <= keep else contextlib.nullcontext()
        with slot:
            h = hash_file(
                entry.path, entry.size, entry.mtime_ns, keep_up_to=keep, block_size=self.opts.block_size,
                inode=entry.inode, dev=entry.dev,
            )  # fmt: skip
            if row is not None and row.sha256 == h.sha256:
                return _Done(FileOutcome(entry.relpath, Kind.TOUCHED, h.size), entry, h.sha256)
            name = blob_name(self.cfg.prefix, h.sha256, entry.relpath)
            meta = BlobMeta(h.sha256, entry.relpath, h.size, h.mtime_ns, self.cfg.source_id)
            result = self._store_dedup(name, entry, meta, h)
        kind = {"uploaded": Kind.UPLOADED, "copied": Kind.COPIED, "present": Kind.PRESENT}[result.action]
        if not file_unchanged(entry.path, entry.size, entry.mtime_ns):
            detail = "changed while being uploaded; the new content is picked up next run"
            o = FileOutcome(entry.relpath, Kind.SKIPPED, h.size, result.bytes_sent, name, detail)
            return _Done(o, entry, h.sha256, result.etag, history_only=True)
        o = FileOutcome(entry.relpath, kind, h.size, result.bytes_sent, name)
        return _Done(o, entry, h.sha256, result.etag, record=True, capture=read_capture(entry.path, h.data))

    def _store_dedup(self, name: str, entry: ScanEntry, meta: BlobMeta, h: Hashed) -> StoreResult:
        """Store once per content per run: a second file with the same SHA-256 waits for the first, then
        copies it server-side instead of sending the bytes again."""
        sha = meta.sha256
        with self._lock:
            event = self._claims.get(sha)
            owner = event is None
            if owner:
                event = self._claims[sha] = threading.Event()
        assert event is not None
        if not owner:
            event.wait()
        try:
            result = self._store(name, entry, meta, h)
            if owner:
                with self._lock:
                    self._stored[sha] = name
            return result
        finally:
            if owner:
                event.set()
                with self._lock:
                    del self._claims[sha]

    def _store(self, name: str, entry: ScanEntry, meta: BlobMeta, h: Hashed) -> StoreResult:
        assert self._transfer is not None
        t, data = self._transfer, h.data
        ctype = content_type(entry.relpath, entry.path)
        with self._lock:
            source = self._stored.get(meta.sha256)
        source = source or self.state.blob_for_sha(meta.sha256)
        if source == name or self._probe_first or data is None:
            adopted = t.adopt_existing(name, meta)
            if adopted is not None:
                return adopted
        if source and source != name:
            copied = t.copy_from(source, name, meta, ctype, partial(md5_of, entry.path, h))
            if copied is not None:
                return copied
        return t.upload(name, entry.path, meta, ctype, data, h)

    # -- record ------------------------------------------------------------------------------------
    def _finish(self, d: _Done) -> None:
        """Main thread: write the confirmed result to SQLite and report it."""
        o, e = d.outcome, d.entry
        assert self.cfg is not None or self.opts.dry_run
        if o.kind == Kind.TOUCHED:
            self.state.update_stat(e.relpath, e.size, e.mtime_ns, e.inode)
        elif (d.record or d.history_only) and d.sha256 and d.etag and o.blob_name and self.cfg:
            if d.record:
                row = self.state.record_blob(
                    relpath=e.relpath,
                    size=e.size,
                    mtime_ns=e.mtime_ns,
                    inode=e.inode,
                    sha256=d.sha256,
                    blob_name=o.blob_name,
                    etag=d.etag,
                    source_id=self.cfg.source_id,
                    capture_time=d.capture.time,
                    camera_model=d.capture.camera_model,
                )
                if self._live is not None:
                    self._live.add(row, e.size)
                if row.mtime_ns != e.mtime_ns:
                    self.progress.note(
                        f"{e.relpath}: modification time outside 1677-2262; the index keeps the nearest it can "
                        "hold, the blob's metadata the true one",
                        verbose=False,
                    )
            else:
                self.state.record_history_blob(
                    relpath=e.relpath,
                    size=e.size,
                    mtime_ns=e.mtime_ns,
                    sha256=d.sha256,
                    blob_name=o.blob_name,
                    etag=d.etag,
                    source_id=self.cfg.source_id,
                )
        if d.sha256 is not None:
            self.summary.hashed += 1
            self.summary.bytes_hashed += e.size
        self.summary.add(o)
        self.progress.advance(e.size)
        self.progress.file_done(o)

    def _record_deletions(self, index: dict[str, StatRow], scan_result: ScanResult) -> None:
        """Only files positively absent are marked deleted; the unreadable ones stay current (and failed)."""
        unseen = [rel for rel in index if rel not in self._seen]
        gone = [rel for rel in unseen if scan_result.covers(rel)]
        if len(gone) < len(unseen):
            self.progress.note(
                f"{len(unseen) - len(gone)} backed-up file(s) could not be read: kept as backed up", verbose=False
            )
        if gone:
            self.summary.deleted = self.state.mark_deleted(gone)
            self.progress.note(f"{len(gone)} file(s) no longer in the source: their blobs are kept", verbose=False)
