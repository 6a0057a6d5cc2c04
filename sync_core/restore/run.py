"""Restore the current version of every file under a prefix into a folder: catalog -> select -> fetch.

* **catalog** — the Azure Table index (current rows under the prefix), or, when the index is unavailable
  or empty, one paged blob listing with metadata: without the index the newest blob of each path counts
  as current (so files deleted at the source come back too).
* **select** — filter by source id and ``--path`` globs; every name is checked before anything touches the
  disk: ``..``, absolute paths, backslashes, NUL and control characters, drive letters, or a row that
  disagrees with its own blob name are *rejected* (reported, never written).
* **fetch** — parallel workers stream each blob into a temporary file next to its target, SHA-256 and size
  checked against the name before an atomic move into place; mtime restored. A file already there with the
  same hash is left alone (an interrupted restore resumes where it stopped); a different one is kept unless
  ``overwrite``.

Every file operation goes through :class:`DestDir`, which walks from an open descriptor of the target
folder with ``O_NOFOLLOW``: no symbolic link — planted before or during the restore — can carry a write
outside it.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from azure.core.exceptions import AzureError, HttpResponseError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from sync_core.contracts.blobmeta import parse_metadata
from sync_core.contracts.blobname import (
    blob_name,
    decode_path,
    is_name_of,
    listing_prefix,
    normalize_prefix,
    parse_blob_name,
)
from sync_core.errors import ConfigError, first_line
from sync_core.index.entity import sort_epoch
from sync_core.index.table_index import P_BLOB_NAME, P_MTIME_NS, P_RELPATH, P_SHA256, P_SIZE, P_SOURCE_ID, P_UPLOADED_AT
from sync_core.local.durability import GroupSync
from sync_core.restore.rehydrate import Priority, rehydrate
from sync_core.restore.target import (
    DestDir,
    UnsafePathError,
    hash_at,
    hash_prefix,
    open_partial,
    temp_name,
    unlink_quietly,
    unsafe_reason,
)
from sync_core.storage.bandwidth import limiter
from sync_core.storage.concurrency import WAKE_SECONDS, abandoning_pool
from sync_core.storage.download import Downloads
from sync_core.storage.tiering import is_archived_error
from sync_core.sync.progress import NullProgress, Progress
from sync_core.timestamps import row_mtime_ns, row_size

IndexSource = Literal["auto", "table", "listing"]
STOP_GRACE_SECONDS = 2.0  # after Ctrl-C, how long downloads in flight get to stop at their next piece


class RestoreKind(StrEnum):
    RESTORED = "restored"
    PRESENT = "present"  # already there with the same content: untouched
    KEPT = "kept"  # a different local file is in the way: kept (pass overwrite to replace it)
    REJECTED = "rejected"  # a name that could land outside the folder, or a row that contradicts its blob
    CORRUPT = "corrupt"  # the blob's bytes do not hash to its name: not written
    FAILED = "failed"  # storage or local I/O error
    PENDING = "pending"  # archived: rehydration asked for (or under way); the same restore run later finishes it


PROBLEM_KINDS = frozenset({RestoreKind.KEPT, RestoreKind.REJECTED, RestoreKind.CORRUPT, RestoreKind.FAILED})


@dataclass(frozen=True, slots=True)
class RestoreEntry:
    """One file to restore, from a Table row or a blob's metadata."""

    prefix: str  # shared by every entry; the blob name is derived, not stored (a million entries fit)
    relpath: str
    sha256: str
    size: int
    mtime_ns: int
    source_id: str
    uploaded: float = 0.0  # orders several candidates for the same path: newest wins

    @property
    def blob_name(self) -> str:
        return blob_name(self.prefix, self.sha256, self.relpath)


@dataclass(frozen=True, slots=True)
class Rejected:
    name: str  # printable form of the offending name
    reason: str
    relpath: str | None = None  # the path it claims, when it names one: --path selects rejected entries too


@dataclass(frozen=True, slots=True)
class RestoreOutcome:
    relpath: str
    kind: RestoreKind
    size: int = 0
    bytes_received: int = 0
    detail: str = ""


@dataclass
class RestoreOptions:
    dest: Path
    patterns: tuple[str, ...] = ()  # --path globs; a pattern without wildcards also selects a folder
    only: frozenset[str] | None = None  # just these paths (an album's files), when given
    source_id: str | None = None  # only rows/blobs written by this source
    overwrite: bool = False
    max_workers: int = 8
    bwlimit: int | None = None  # bytes per second for downloads
    index: IndexSource = "auto"
    rehydrate: Priority = "standard"  # priority of the rehydration asked for archived blobs


@dataclass
class RestoreSummary:
    index: str = ""  # "table" or "listing": where the catalog came from
    index_note: str = ""  # why the listing was used instead of the table
    candidates: int = 0  # current files under the prefix (after --source-id and --path)
    restored: int = 0
    present: int = 0
    kept: int = 0
    rejected: int = 0
    corrupt: int = 0
    failed: int = 0
    pending: int = 0  # archived blobs not restored yet (see ``problems``, kind "pending")
    superseded: int = 0  # older candidates for a path that several rows/blobs claim as current
    bytes_received: int = 0
    seconds: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)

    def add(self, o: RestoreOutcome) -> None:
        setattr(self, o.kind.value, getattr(self, o.kind.value) + 1)
        self.bytes_received += o.bytes_received
        if (o.kind in PROBLEM_KINDS or o.kind == RestoreKind.PENDING) and len(self.problems) < 1000:
            self.problems.append({"path": o.relpath, "kind": o.kind.value, "detail": o.detail})

    @property
    def exit_code(self) -> int:
        """0 when every selected file is in place, 1 when any was kept, rejected, corrupt, failed or is
        pending rehydration."""
        return 1 if (self.kept or self.rejected or self.corrupt or self.failed or self.pending) else 0

    def to_dict(self) -> dict[str, object]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["seconds"] = round(self.seconds, 3)
        d["exit_code"] = self.exit_code
        return d


RestoreProgress = Progress[RestoreOutcome]  # a restore's


# -- names ---------------------------------------------------------------------------------------------
def path_selected(relpath: str, patterns: Sequence[str]) -> bool:
    """True when no pattern is given or one matches: a glob over the whole path (``*`` crosses folders),
    or, for a pattern without wildcards, the path itself or anything under it as a folder."""
    if not patterns:
        return True
    for pat in patterns:
        if any(c in pat for c in "*?["):
            if fnmatch.fnmatchcase(relpath, pat):
                return True
        else:
            folder = pat.strip("/")
            if relpath == folder or relpath.startswith(folder + "/"):
                return True
    return False


# -- catalogs ------------------------------------------------------------------------------------------
def _check(prefix: str, relpath: str, sha: str, blob: str, size: Any, mtime: Any) -> str | None:
    """Consistency of an entry with its own blob name (the contract: the name holds sha and path)."""
    try:
        name_sha = parse_blob_name(prefix, blob)[0]
    except ValueError:
        return f"blob name {blob!r} is not a contract name under prefix {prefix!r}"
    if name_sha != sha:
        return f"SHA-256 {sha!r} disagrees with blob name {blob!r}"
    if not is_name_of(prefix, blob, sha, relpath):
        return f"path disagrees with blob name {blob!r}"
    try:
        int(size), int(mtime)
    except (TypeError, ValueError, OverflowError):
        return "size or mtime is not a number"
    try:  # a negative mtime is a date before 1970: valid
        row_size(size)
        row_mtime_ns(mtime)
    except ValueError as exc:
        return str(exc)
    return None


def table_catalog(table: TableClient, prefix: str, source_id: str | None) -> Iterator[RestoreEntry | Rejected]:
    """Current rows under ``prefix`` (of ``source_id`` when given), read with the Table contract."""
    from sync_core.index.table_mirror import prefix_rows

    for row in prefix_rows(table, prefix, source_id, extra="IsCurrent eq true"):
        rel, sha, blob = row.get(P_RELPATH), row.get(P_SHA256), row.get(P_BLOB_NAME)
        if not isinstance(rel, str) or not isinstance(sha, str) or not isinstance(blob, str):
            yield Rejected(
                repr(rel if isinstance(rel, str) else row.get("RowKey")), "row lacks RelPath/Sha256/BlobName",
                rel if isinstance(rel, str) else None,
            )
            continue
        bad = unsafe_reason(rel) or _check(prefix, rel, sha, blob, row.get(P_SIZE), row.get(P_MTIME_NS))
        if bad:
            yield Rejected(repr(rel), bad, rel)
            continue
        sid = row.get(P_SOURCE_ID)
        yield RestoreEntry(
            prefix, rel, sha, int(row[P_SIZE]), int(row[P_MTIME_NS]), sid if isinstance(sid, str) else "",
            sort_epoch(row.get(P_UPLOADED_AT)),
        )  # fmt: skip


def listing_catalog(
    container: ContainerClient, prefix: str, source_id: str | None
) -> Iterator[RestoreEntry | Rejected]:
    """Every blob under ``prefix`` with its metadata (one paged listing, no per-blob request)."""
    for b in container.list_blobs(name_starts_with=listing_prefix(prefix), include=["metadata"]):
        try:
            sha, stored = parse_blob_name(prefix, b.name)
        except ValueError:
            yield Rejected(repr(b.name), "not a contract blob name <prefix>/<xx>/<sha256>/<path>")
            continue
        meta = parse_metadata(b.metadata)
        if source_id is not None and (meta is None or meta.source_id != source_id):
            continue
        uploaded = b.last_modified.timestamp() if b.last_modified else 0.0
        if meta is None:  # name alone: content is still proven by the SHA-256 check on download
            decoded = decode_path(stored)
            if decoded is None:
                yield Rejected(repr(b.name), "shortened name without metadata: the true name is lost")
                continue
            rel, size, mtime_ns, sid = decoded, int(b.size or 0), int(uploaded * 1e9), ""
        else:
            rel = meta.relpath
            if meta.sha256 != sha or not is_name_of(prefix, b.name, sha, rel):
                yield Rejected(repr(meta.relpath), f"metadata disagrees with blob name {b.name!r}", rel)
                continue
            if meta.size != b.size:
                yield Rejected(repr(rel), f"metadata size {meta.size} but the blob holds {b.size} bytes", rel)
                continue
            size, mtime_ns, sid = meta.size, meta.mtime_ns, meta.source_id
            try:
                row_mtime_ns(mtime_ns)
            except ValueError as exc:
                yield Rejected(repr(rel), f"metadata {exc}")
                continue
        bad = unsafe_reason(rel)
        if bad:
            yield Rejected(repr(rel), bad, rel)
            continue
        yield RestoreEntry(prefix, rel, sha, size, mtime_ns, sid, uploaded)


@dataclass
class Selection:
    entries: list[RestoreEntry]  # one per path, sorted by path
    rejected: list[Rejected]
    superseded: int  # older candidates dropped for a path several entries claim
    seen: int  # entries in the catalog before --path filtering


def select_current(
    catalog: Iterable[RestoreEntry | Rejected], patterns: Sequence[str], only: frozenset[str] | None = None
) -> Selection:
    """One entry per path: the newest upload when several claim it (of the paths in ``only`` when given).
    With ``patterns``, an entry that cannot be restored is reported only when the path it claims is
    selected: one that names no path, or another path, has nothing to do with what was asked for."""
    best: dict[str, RestoreEntry] = {}
    sel = Selection([], [], 0, 0)
    for item in catalog:
        if isinstance(item, Rejected):
            if (not patterns and only is None) or (
                item.relpath is not None
                and path_selected(item.relpath, patterns)
                and (only is None or item.relpath in only)
            ):
                sel.rejected.append(item)
            continue
        sel.seen += 1
        if not path_selected(item.relpath, patterns) or (only is not None and item.relpath not in only):
            continue
        old = best.get(item.relpath)
        if old is not None:
            sel.superseded += 1
            if (old.uploaded, old.mtime_ns, old.sha256) >= (item.uploaded, item.mtime_ns, item.sha256):
                continue
        best[item.relpath] = item
    sel.entries = sorted(best.values(), key=lambda e: e.relpath)
    return sel


# -- errors ----------------------------------------------------------------------------------------------
class CorruptBlobError(Exception):
    """The bytes downloaded do not hash to the SHA-256 in the blob's name (or have the wrong size)."""


class RestoreStopped(Exception):
    """The run is being interrupted: a worker stops at the next chunk and keeps its partial file."""


# -- the engine ----------------------------------------------------------------------------------------
class RestoreEngine:
    """One restore of ``prefix`` into ``opts.dest``."""

    def __init__(
        self,
        container: ContainerClient,
        prefix: str,
        opts: RestoreOptions,
        *,
        table: TableClient | None = None,
        table_error: str = "",
        progress: RestoreProgress | None = None,
    ):
        self.container = container
        self.prefix = normalize_prefix(prefix)
        self.opts = opts
        self.table = table
        self.table_error = table_error  # why the table could not be opened (auto mode falls back)
        self.progress: RestoreProgress = progress or NullProgress()
        self.summary = RestoreSummary()
        self._bucket: Callable[[int], float] | None = limiter(opts.bwlimit)
        self._stop = threading.Event()
        self._flushes = GroupSync()  # each file on disk before it takes its name, a flush per group
        self._downloads = Downloads(container)

    def catalog(self) -> Selection:
        """Read the catalog (table first in auto mode, listing as the fallback) and select from it."""
        mode, opts = self.opts.index, self.opts
        if mode in ("auto", "table"):
            if self.table is None:
                if mode == "table":
                    raise ConfigError(self.table_error or "the index table is not available")
                self._use_listing(self.table_error or "the index table is unavailable")
            else:
                try:
                    chosen = select_current(
                        table_catalog(self.table, self.prefix, opts.source_id), opts.patterns, opts.only
                    )
                except AzureError as exc:
                    if mode == "table":
                        raise ConfigError(f"cannot read the index table: {first_line(exc)}") from exc
                    self._use_listing(f"index table unreadable ({first_line(exc)})")
                else:
                    if chosen.seen or chosen.rejected or mode == "table":
                        self.summary.index = "table"
                        return chosen
                    self._use_listing("the index table has no current rows under this prefix")
        else:
            self.summary.index = "listing"
        return select_current(listing_catalog(self.container, self.prefix, opts.source_id), opts.patterns, opts.only)

    def _use_listing(self, why: str) -> None:
        self.summary.index, self.summary.index_note = "listing", why
        self.progress.note(f"{why}: reading blob metadata instead (paths deleted at the source come back too)")

    def run(self) -> RestoreSummary:
        t0 = time.monotonic()
        sel = self.catalog()
        entries, s = sel.entries, self.summary
        s.candidates, s.superseded = len(entries), sel.superseded
        for r in sel.rejected:
            self._done(RestoreOutcome(r.name, RestoreKind.REJECTED, detail=r.reason))
        if not entries and not sel.rejected:
            raise ConfigError(self._nothing_message())
        dest = DestDir(self.opts.dest)
        try:
            self.progress.planned(len(entries), sum(e.size for e in entries))
            self._fetch_all(dest, entries)
        finally:
            s.seconds = time.monotonic() - t0
        # Not closed when the fetch ends in an exception (Ctrl-C): workers it abandoned may still reach the
        # folder through this descriptor, and a closed number could name another folder to them by then.
        dest.close()
        return s

    def _nothing_message(self) -> str:
        where = f"under prefix {self.prefix!r}"
        if self.opts.source_id:
            where += f" from source id {self.opts.source_id!r}"
        if self.opts.only is not None:
            return f"none of the album's files is {where}"
        if self.opts.patterns:
            return f"nothing {where} matches --path {' '.join(self.opts.patterns)}"
        return (
            f"nothing to restore {where}: pass the --source-id (or --prefix) the files were backed up with; "
            "`azphotosync status` on that device shows both"
        )

    def _fetch_all(self, dest: DestDir, entries: list[RestoreEntry]) -> None:
        """Restore ``entries`` on the workers. Interrupted, it returns (raises) once the downloads in flight have
        stopped, or after :data:`STOP_GRACE_SECONDS` when one has not: that one is abandoned, as the sync's are."""
        workers = max(1, self.opts.max_workers)
        pending: set[Future[RestoreOutcome]] = set()
        # Ctrl-C waits for no download: one blocked in a stalled GET would hold the run up to the read timeout.
        with abandoning_pool(workers, "restore") as pool:
            try:
                for e in entries:
                    while len(pending) >= 2 * workers:
                        pending = self._collect(pending)
                    pending.add(pool.submit(self._restore_one, dest, e))
                while pending:
                    pending = self._collect(pending)
            except BaseException:
                self._stop.set()  # downloads still in flight stop at their next piece and keep their partial file
                started = {fut for fut in pending if not fut.cancel()}  # queued ones never start
                wait(started, timeout=STOP_GRACE_SECONDS)  # they have that long: one stalled in a GET is left
                raise

    def _collect(self, pending: set[Future[RestoreOutcome]]) -> set[Future[RestoreOutcome]]:
        done: set[Future[RestoreOutcome]] = set()
        while not done:  # wakes every WAKE_SECONDS, so a Ctrl-C the kernel gave a worker is handled at once
            done, rest = wait(pending, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
        for fut in done:
            self._done(fut.result())
        return rest

    def _done(self, o: RestoreOutcome) -> None:
        self.summary.add(o)
        self.progress.file_done(o)

    # -- one file (worker thread) ------------------------------------------------------------------
    def _restore_one(self, dest: DestDir, e: RestoreEntry) -> RestoreOutcome:
        """Never raises: every problem becomes an outcome."""
        try:
            return self._place(dest, e)
        except UnsafePathError as exc:
            return RestoreOutcome(e.relpath, RestoreKind.REJECTED, e.size, detail=str(exc))
        except CorruptBlobError as exc:
            return RestoreOutcome(e.relpath, RestoreKind.CORRUPT, e.size, detail=str(exc))
        except RestoreStopped:
            return RestoreOutcome(e.relpath, RestoreKind.FAILED, e.size, detail="interrupted; resumed by the next run")
        except AzureError as exc:
            if is_archived_error(exc):
                return self._pending(e)
            return RestoreOutcome(e.relpath, RestoreKind.FAILED, e.size, detail=f"storage error: {first_line(exc)}")
        except OSError as exc:
            return RestoreOutcome(e.relpath, RestoreKind.FAILED, e.size, detail=f"cannot write: {exc.strerror or exc}")
        finally:
            self.progress.advance(e.size)

    def _pending(self, e: RestoreEntry) -> RestoreOutcome:
        """An archived blob: ask for its rehydration (once) and report it as pending."""
        try:
            r = rehydrate(self.container.get_blob_client(e.blob_name), e.size, self.opts.rehydrate)
        except AzureError as exc:
            detail = f"archived; cannot ask for rehydration: {first_line(exc)}"
            return RestoreOutcome(e.relpath, RestoreKind.FAILED, e.size, detail=detail)
        detail = r.detail or "archived, online again now; restored by the next run"
        return RestoreOutcome(e.relpath, RestoreKind.PENDING, e.size, detail=detail)

    def _place(self, dest: DestDir, e: RestoreEntry) -> RestoreOutcome:
        *folders, name = e.relpath.split("/")
        dir_fd = dest.open_parent(folders)
        try:
            existing = self._existing(e, name, dir_fd)
            if existing is not None:
                return existing
            tmp = temp_name(name, e.sha256)
            received = self._download(e, tmp, dir_fd)
            try:
                kept = self._move_into_place(e, tmp, name, dir_fd)
            finally:
                unlink_quietly(tmp, dir_fd)
            if kept is not None:
                return kept
            return RestoreOutcome(e.relpath, RestoreKind.RESTORED, e.size, received)
        finally:
            os.close(dir_fd)

    def _existing(self, e: RestoreEntry, name: str, dir_fd: int) -> RestoreOutcome | None:
        """``None`` when the target is free (or may be overwritten); otherwise the outcome."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return RestoreOutcome(
                e.relpath, RestoreKind.REJECTED, e.size, detail="is a symbolic link here; not followed"
            )
        if not stat.S_ISREG(st.st_mode):
            return RestoreOutcome(e.relpath, RestoreKind.KEPT, e.size, detail="a folder or special file is in the way")
        if st.st_size == e.size and hash_at(name, dir_fd) == e.sha256:
            return RestoreOutcome(e.relpath, RestoreKind.PRESENT, e.size)
        if self.opts.overwrite:
            return None
        return RestoreOutcome(
            e.relpath,
            RestoreKind.KEPT,
            e.size,
            detail="a different local file is there; kept (--overwrite replaces it)",
        )

    def _download(self, e: RestoreEntry, tmp: str, dir_fd: int) -> int:
        """Stream the blob into ``tmp``, continuing a partial download an interrupted run left there.
        Raises :class:`CorruptBlobError` (temp removed) when the bytes do not hash to the name; a storage
        error or an interruption keeps the partial file for the next run. Returns the bytes received."""
        fd, have = open_partial(tmp, dir_fd)
        placed = keep = False
        try:
            h = hashlib.sha256()
            if 0 < have < e.size:
                hash_prefix(fd, h, have)
            else:
                have = 0
            received = self._stream(e, fd, h, have)
            if have and (h.hexdigest() != e.sha256 or os.fstat(fd).st_size != e.size):
                # The partial was not the start of this blob (a torn write, a bad disk): once more, whole.
                h = hashlib.sha256()
                received += self._stream(e, fd, h, 0)
            size = os.fstat(fd).st_size
            if size != e.size or h.hexdigest() != e.sha256:
                got = f"{size} bytes" if size != e.size else f"SHA-256 {h.hexdigest()}"
                raise CorruptBlobError(
                    f"corrupted blob {e.blob_name!r}: got {got}, expected {e.size} bytes with SHA-256 {e.sha256};"
                    " not written — run `azphotosync verify`"
                )
            self._flushes.durable(fd)
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
            placed = True
            return received
        except (AzureError, RestoreStopped) as exc:
            keep = not is_archived_error(exc)  # an archived blob sent nothing: no partial worth keeping
            raise
        finally:
            os.close(fd)
            if not placed and not keep:
                unlink_quietly(tmp, dir_fd)

    def _stream(self, e: RestoreEntry, fd: int, h: Any, offset: int) -> int:
        """Write the blob from ``offset`` on into ``fd`` (truncated there), hashing as it goes; stops
        early once more than the expected size arrived. Returns the bytes received."""
        os.ftruncate(fd, offset)
        try:
            pieces = self._downloads.open(e.blob_name, offset=offset)
        except HttpResponseError as exc:
            if offset and exc.status_code == 416:  # the blob is shorter than our partial: let the caller restart
                return 0
            raise
        received = 0
        with contextlib.closing(pieces):
            for piece in pieces:
                if self._stop.is_set():
                    raise RestoreStopped
                if self._bucket is not None:
                    self._bucket(len(piece))
                h.update(piece)
                _write_at(fd, piece, offset + received)
                received += len(piece)
                if offset + received > e.size:
                    break
        return received

    def _move_into_place(self, e: RestoreEntry, tmp: str, name: str, dir_fd: int) -> RestoreOutcome | None:
        """Atomic rename; without ``overwrite`` a hard link (which refuses an existing target) so a file
        that appeared meanwhile is never replaced. ``None`` when placed."""
        if self.opts.overwrite:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return None
        try:
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            return None
        except FileExistsError:
            return self._existing(e, name, dir_fd) or RestoreOutcome(e.relpath, RestoreKind.KEPT, e.size)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
                raise
        # No hard links here (FAT, some network shares): check, then rename.
        existing = self._existing(e, name, dir_fd)
        if existing is not None:
            return existing
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return None


def _write_at(fd: int, data: bytes | memoryview, pos: int) -> None:
    """All of ``data`` at ``pos`` (``pwrite`` may write less, e.g. on a disk filling up: the rest then
    raises)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n
