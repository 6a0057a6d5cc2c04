"""The local SQLite index (``index.db`` in the state dir): what is safely in the container.

Two tables:

* ``files`` — the current local view, one row per relative path: the stat fields that let the next run
  skip a file without reading it, its SHA-256 and the name of the blob that holds it.
* ``blobs`` — one row per blob this source ever wrote or adopted (the history the Azure Table mirrors):
  whether it is the current version of its path, when it was deleted locally, and whether the Table
  mirror still has to be told (``mirror_pending``).

Rows are written only after the service confirmed the blob. The database holds no secret. WAL mode lets
worker threads read (duplicate lookups) while the pipeline's single writer records results.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sync_core.errors import ConfigError, redact
from sync_core.timestamps import index_int

DB_NAME = "index.db"
META_SOURCE_PATH = "source_path"  # the library this state dir indexes (see StateDB.bind_source)

# Forward-only migrations: MIGRATIONS[n] takes a database from user_version n to n+1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE files (
        relpath   TEXT PRIMARY KEY,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        inode     INTEGER NOT NULL,
        sha256    TEXT NOT NULL,
        blob_name TEXT NOT NULL,
        synced_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE blobs (
        blob_name      TEXT PRIMARY KEY,
        relpath        TEXT NOT NULL,
        sha256         TEXT NOT NULL,
        size           INTEGER NOT NULL,
        mtime_ns       INTEGER NOT NULL,
        etag           TEXT NOT NULL,
        source_id      TEXT NOT NULL,
        uploaded_at    REAL NOT NULL,
        is_current     INTEGER NOT NULL DEFAULT 1,
        deleted_at     REAL,
        capture_time   TEXT,
        camera_model   TEXT,
        mirror_pending INTEGER NOT NULL DEFAULT 1
    ) WITHOUT ROWID;
    CREATE INDEX blobs_by_sha ON blobs(sha256);
    CREATE INDEX blobs_by_path ON blobs(relpath, is_current);
    CREATE INDEX blobs_mirror_pending ON blobs(mirror_pending) WHERE mirror_pending = 1;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        started_at  REAL NOT NULL,
        finished_at REAL,
        exit_code   INTEGER,
        summary     TEXT
    );
    """,
    # Table mirror and closed-loop repair: find local copies by content; log repair outcomes.
    """
    CREATE INDEX IF NOT EXISTS files_by_sha ON files(sha256);
    CREATE TABLE IF NOT EXISTS repair_log (
        id        INTEGER PRIMARY KEY,
        blob_name TEXT NOT NULL,
        verdict   TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        detail    TEXT NOT NULL,
        at        REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS repair_log_by_blob ON repair_log(blob_name, outcome);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


StatRow = tuple[str, int, int, int]  # relpath, size, mtime_ns, inode: what the planner compares


@dataclass(frozen=True, slots=True)
class FileRow:
    relpath: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str
    blob_name: str


@dataclass(frozen=True, slots=True)
class BlobRow:
    blob_name: str
    relpath: str
    sha256: str
    size: int
    mtime_ns: int
    etag: str
    source_id: str
    uploaded_at: float
    is_current: bool
    deleted_at: float | None
    capture_time: str | None = None
    camera_model: str | None = None


class DamagedIndexError(ConfigError):
    """``index.db`` is not a readable SQLite database (overwritten, truncated, a bad disk): a sync refuses
    to run on it; ``index rebuild`` sets it aside (:func:`set_aside_damaged`) and rebuilds from the cloud."""

    what = ""  # the finding alone, without the advice


_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_damage(exc: sqlite3.Error) -> bool:
    """True when SQLite says the file itself is damaged (not locked, full, or unwritable)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def damaged_error(path: Path, exc: BaseException) -> DamagedIndexError:
    what = f"the local index {str(path)!r} is damaged ({exc})"
    err = DamagedIndexError(
        f"{what}: run `azphotosync index rebuild` (it moves the damaged file aside and rebuilds the index "
        "from the cloud, sending no file)"
    )
    err.what = what
    return err


def newer_schema_error(path: Path, version: int) -> ConfigError:
    return ConfigError(
        f"the local index {str(path)!r} was written by a newer azphotosync (schema {version} > "
        f"{SCHEMA_VERSION}): upgrade azphotosync"
    )


def set_aside_damaged(state_dir: Path | str) -> Path:
    """Move a damaged ``index.db`` (with its ``-wal`` and ``-shm``) to ``index.db.damaged-<UTC time>`` so
    that nothing is lost and a new index can be built; returns the new name of the main file."""
    path = Path(state_dir).expanduser().absolute() / DB_NAME
    aside = path.with_name(f"{DB_NAME}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    return aside


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class StateDB:
    """The state database. One writer connection (guarded by a lock) plus one reader per thread."""

    def __init__(self, state_dir: Path | str, *, readonly: bool = False, check: bool = False):
        """Open (creating and migrating) ``<state_dir>/index.db``. ``readonly`` never creates or changes
        anything on disk: a missing database reads as empty (for dry runs). A file that is not a database
        raises :class:`DamagedIndexError`; ``check`` also reads every page first (``PRAGMA quick_check``,
        which reads the whole file: for the recovery commands, not for every sync)."""
        self.state_dir = Path(state_dir).expanduser().absolute()
        self.path = self.state_dir / DB_NAME
        self.readonly = readonly
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[tuple[threading.Thread, sqlite3.Connection]] = []  # each thread's reader
        self._in_tx = False
        self._pending_writes = 0
        self._tx_started = 0.0
        try:
            if readonly:
                self._w = self._open_readonly()
            else:
                self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._w = _connect(self.path)
                self._migrate()
            self._w.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the schema must parse
            if check and self._w.execute("PRAGMA quick_check(1)").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check found damaged pages")  # no error code: damage
        except BaseException as exc:
            if getattr(self, "_w", None) is not None:
                self._w.close()
            if isinstance(exc, sqlite3.DatabaseError) and is_damage(exc):
                raise damaged_error(self.path, exc) from exc
            if isinstance(exc, OSError | sqlite3.DatabaseError):
                raise ConfigError(
                    f"state dir {str(self.state_dir)!r} is not usable ({exc}); fix its permissions or choose "
                    "another with --state-dir"
                ) from exc
            raise

    def _open_readonly(self) -> sqlite3.Connection:
        if not self.path.exists():
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            for script in MIGRATIONS:
                conn.executescript(script)
            return conn
        conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
        self._w = conn  # closed by __init__ if what follows fails
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise newer_schema_error(self.path, version)
        if version != SCHEMA_VERSION:
            raise ConfigError(f"{self.path} has schema {version}, expected {SCHEMA_VERSION}: run a real sync first")
        return conn

    # -- lifecycle -------------------------------------------------------------------------------
    def _migrate(self) -> None:
        version = self._w.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise newer_schema_error(self.path, version)
        for v in range(version, SCHEMA_VERSION):
            self._w.executescript(f"BEGIN; {MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;")

    def close(self) -> None:
        with self._lock:
            self.commit()
            self._w.close()
            # Every finished worker thread's reader, not only this thread's: a reader left to the garbage
            # collector would close (and checkpoint the WAL) at an arbitrary later moment. A thread still
            # running (a pool abandoned on Ctrl-C or a fatal error) keeps its reader: closing a connection
            # another thread is using is undefined behaviour in SQLite's C API (it crashed the process).
            me = threading.current_thread()
            for owner, conn in self._readers:
                if owner is me or not owner.is_alive():
                    conn.close()
            self._readers.clear()

    def _reader(self) -> sqlite3.Connection:
        if self.readonly:
            return self._w
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._readers.append((threading.current_thread(), conn))
        return conn

    # -- write batching --------------------------------------------------------------------------
    def _write(self, sql: str, params: Iterable[object] = ()) -> sqlite3.Cursor:
        if self.readonly:
            raise RuntimeError("state database opened read-only")
        with self._lock:
            try:
                if not self._in_tx:
                    self._w.execute("BEGIN")
                    self._in_tx = True
                    self._tx_started = time.monotonic()
                self._pending_writes += 1
                return self._w.execute(sql, tuple(params))
            except sqlite3.OperationalError as exc:
                raise self._write_failed(exc) from exc

    def commit(self) -> None:
        """Make recorded rows durable. Called in batches by the pipeline and at the end of a run."""
        with self._lock:
            if self._in_tx:
                try:
                    self._w.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    raise self._write_failed(exc) from exc
                self._in_tx = False
                self._pending_writes = 0

    def _write_failed(self, exc: sqlite3.OperationalError) -> ConfigError:
        """The index cannot be written (disk full, read-only, I/O error). Drop the open batch — SQLite keeps
        every earlier commit intact — and say what to fix; blobs sent in the lost batch are adopted next run."""
        if self._w.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._w.execute("ROLLBACK")
        self._in_tx = False
        self._pending_writes = 0
        return ConfigError(
            f"cannot write the index in state dir {str(self.state_dir)!r} ({exc}): is the disk full or "
            "read-only? Everything recorded before is kept; files sent since are picked up by the next run"
        )

    def maybe_commit(self, every: int = 500, max_age: float = 5.0) -> bool:
        """Commit when enough writes are pending, or the oldest has waited ``max_age`` seconds (so a crash
        loses at most a few seconds of records; their blobs are adopted next run); True when it committed."""
        with self._lock:
            if self._pending_writes >= every or (
                self._pending_writes and time.monotonic() - self._tx_started >= max_age
            ):
                self.commit()
                return True
            return False

    # -- reads -----------------------------------------------------------------------------------
    def load_files(self) -> dict[str, FileRow]:
        """All rows of ``files``, for the planner's stat comparison (one query, no per-file lookups)."""
        cur = self._w.execute("SELECT relpath, size, mtime_ns, inode, sha256, blob_name FROM files")
        return {r[0]: FileRow(*r) for r in cur}

    def load_stats(self) -> dict[str, StatRow]:
        """``relpath -> (relpath, size, mtime_ns, inode)`` for every row of ``files``: just what the planner
        compares, as the tuples SQLite returns. Read for every file on every run, so no object per row and no
        hash or blob-name strings (half the cost of :meth:`load_files`); :meth:`file_rows` gets the rest."""
        return {r[0]: r for r in self._w.execute("SELECT relpath, size, mtime_ns, inode FROM files")}

    def file_rows(self, relpaths: Iterable[str]) -> dict[str, FileRow]:
        """The full rows of ``relpaths`` that are in ``files`` (the files the planner found changed)."""
        out: dict[str, FileRow] = {}
        batch = list(relpaths)
        for i in range(0, len(batch), 500):
            part = batch[i : i + 500]
            cur = self._w.execute(
                "SELECT relpath, size, mtime_ns, inode, sha256, blob_name FROM files "
                f"WHERE relpath IN ({','.join('?' * len(part))})",
                part,
            )
            out.update((r[0], FileRow(*r)) for r in cur)
        return out

    def totals(self) -> tuple[int, int, int]:
        """``(files, bytes, blobs)``: files backed up now, their bytes, and blobs ever written (history)."""
        files, size = self._w.execute("SELECT count(*), coalesce(sum(size), 0) FROM files").fetchone()
        blobs = self._w.execute("SELECT count(*) FROM blobs").fetchone()[0]
        return int(files), int(size), int(blobs)

    def blob_for_sha(self, sha256: str) -> str | None:
        """Any blob we know holds this content (for a server-side copy instead of an upload)."""
        row = (
            self._reader()
            .execute("SELECT blob_name FROM blobs WHERE sha256 = ? ORDER BY is_current DESC LIMIT 1", (sha256,))
            .fetchone()
        )
        return row[0] if row else None

    def get_blob(self, blob_name: str) -> BlobRow | None:
        row = (
            self._reader()
            .execute(
                "SELECT blob_name, relpath, sha256, size, mtime_ns, etag, source_id, uploaded_at, is_current,"
                " deleted_at, capture_time, camera_model FROM blobs WHERE blob_name = ?",
                (blob_name,),
            )
            .fetchone()
        )
        if not row:
            return None
        return BlobRow(*row[:8], bool(row[8]), *row[9:])

    def iter_blobs(self, *, current_only: bool = False) -> Iterator[BlobRow]:
        sql = (
            "SELECT blob_name, relpath, sha256, size, mtime_ns, etag, source_id, uploaded_at, is_current,"
            " deleted_at, capture_time, camera_model FROM blobs"
        )
        if current_only:
            sql += " WHERE is_current = 1"
        for row in self._reader().execute(sql):
            yield BlobRow(*row[:8], bool(row[8]), *row[9:])

    # -- writes ----------------------------------------------------------------------------------
    def record_blob(
        self,
        *,
        relpath: str,
        size: int,
        mtime_ns: int,
        inode: int,
        sha256: str,
        blob_name: str,
        etag: str,
        source_id: str,
        capture_time: str | None = None,
        camera_model: str | None = None,
        now: float | None = None,
    ) -> BlobRow:
        """Record a blob the service confirmed, make it the current version of ``relpath``; the blob's row
        as recorded (what the Table mirror sends)."""
        now = time.time() if now is None else now
        self._write(
            "UPDATE blobs SET is_current = 0, mirror_pending = 1"
            " WHERE relpath = ? AND is_current = 1 AND blob_name != ?",
            (relpath, blob_name),
        )
        row = self._write(
            "INSERT INTO blobs (blob_name, relpath, sha256, size, mtime_ns, etag, source_id, uploaded_at,"
            " is_current, deleted_at, capture_time, camera_model, mirror_pending)"
            " VALUES (?,?,?,?,?,?,?,?,1,NULL,?,?,1)"
            " ON CONFLICT(blob_name) DO UPDATE SET etag = excluded.etag, is_current = 1, deleted_at = NULL,"
            " size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " capture_time = coalesce(excluded.capture_time, capture_time),"
            " camera_model = coalesce(excluded.camera_model, camera_model), mirror_pending = 1"
            f" RETURNING {self._BLOB_COLS}",
            (
                blob_name,
                relpath,
                sha256,
                index_int(size),
                index_int(mtime_ns),
                etag,
                source_id,
                now,
                capture_time,
                camera_model,
            ),
        ).fetchall()[0]  # fetchall: the statement runs to its end
        self._write(
            "INSERT INTO files (relpath, size, mtime_ns, inode, sha256, blob_name, synced_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(relpath) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, inode = excluded.inode, sha256 = excluded.sha256,"
            " blob_name = excluded.blob_name, synced_at = excluded.synced_at",
            (relpath, index_int(size), index_int(mtime_ns), index_int(inode), sha256, blob_name, now),
        )
        return BlobRow(*row[:8], bool(row[8]), *row[9:])

    def record_history_blob(
        self, *, relpath: str, size: int, mtime_ns: int, sha256: str, blob_name: str, etag: str, source_id: str
    ) -> None:
        """Record a confirmed blob as a past version only (the file changed while it was being sent)."""
        self._write(
            "INSERT INTO blobs (blob_name, relpath, sha256, size, mtime_ns, etag, source_id, uploaded_at,"
            " is_current, mirror_pending) VALUES (?,?,?,?,?,?,?,?,0,1) ON CONFLICT(blob_name) DO NOTHING",
            (blob_name, relpath, sha256, index_int(size), index_int(mtime_ns), etag, source_id, time.time()),
        )

    def update_stat(self, relpath: str, size: int, mtime_ns: int, inode: int) -> None:
        """A touched file (same content, new stat): remember the new stat so it is not read again."""
        self._write(
            "UPDATE files SET size = ?, mtime_ns = ?, inode = ? WHERE relpath = ?",
            (index_int(size), index_int(mtime_ns), index_int(inode), relpath),
        )

    def mark_deleted(self, relpaths: Iterable[str], now: float | None = None) -> int:
        """Files gone from the source: drop them from ``files``; their blobs stay, marked not current."""
        now = time.time() if now is None else now
        n = 0
        for rel in relpaths:
            self._write(
                "UPDATE blobs SET is_current = 0, deleted_at = ?, mirror_pending = 1"
                " WHERE relpath = ? AND is_current = 1",
                (now, rel),
            )
            self._write("DELETE FROM files WHERE relpath = ?", (rel,))
            n += 1
        return n

    # -- Table mirror, closed-loop repair, rebuild ------------------------------------------
    _BLOB_COLS = (
        "blob_name, relpath, sha256, size, mtime_ns, etag, source_id, uploaded_at, is_current,"
        " deleted_at, capture_time, camera_model"
    )

    def count_mirror_pending(self) -> int:
        """Blobs whose Table row has not been written (or updated) yet."""
        return self._w.execute("SELECT count(*) FROM blobs WHERE mirror_pending = 1").fetchone()[0]

    def iter_mirror_pending(self) -> Iterator[BlobRow]:
        """Pending blobs ordered by SHA-256, so each Table partition's rows arrive together."""
        sql = f"SELECT {self._BLOB_COLS} FROM blobs WHERE mirror_pending = 1 ORDER BY sha256, blob_name"
        for row in self._reader().execute(sql):
            yield BlobRow(*row[:8], bool(row[8]), *row[9:])

    def mark_mirrored(self, rows: Iterable[BlobRow]) -> None:
        """Clear ``mirror_pending`` for rows the Table now holds, unless they changed since they were read."""
        for r in rows:
            self._write(
                "UPDATE blobs SET mirror_pending = 0 WHERE blob_name = ? AND etag = ? AND is_current = ?"
                " AND deleted_at IS ?",
                (r.blob_name, r.etag, int(r.is_current), r.deleted_at),
            )

    def set_mirror_pending(self, blob_names: Iterable[str]) -> None:
        for name in blob_names:
            self._write("UPDATE blobs SET mirror_pending = 1 WHERE blob_name = ?", (name,))

    def files_with_sha(self, sha256: str) -> list[FileRow]:
        """Local files last seen with this content (candidates for re-uploading a damaged blob)."""
        cur = self._w.execute(
            "SELECT relpath, size, mtime_ns, inode, sha256, blob_name FROM files WHERE sha256 = ?", (sha256,)
        )
        return [FileRow(*r) for r in cur]

    def set_blob_etag(self, blob_name: str, etag: str) -> None:
        """A repaired blob has a new etag; the Table row must be told again."""
        self._write("UPDATE blobs SET etag = ?, mirror_pending = 1 WHERE blob_name = ?", (etag, blob_name))

    def log_repair(self, blob_name: str, verdict: str, outcome: str, detail: str) -> None:
        self._write(
            "INSERT INTO repair_log (blob_name, verdict, outcome, detail, at) VALUES (?,?,?,?,?)",
            (blob_name, verdict, outcome, redact(detail), time.time()),
        )

    def repair_logged(self, blob_name: str, outcome: str) -> bool:
        return (
            self._w.execute(
                "SELECT 1 FROM repair_log WHERE blob_name = ? AND outcome = ? LIMIT 1", (blob_name, outcome)
            ).fetchone()
            is not None
        )

    def insert_blob_if_absent(self, row: BlobRow, *, mirror_pending: bool) -> bool:
        """Rebuild: add a blob row we learned from the Table or the container; never replaces one."""
        cur = self._write(
            f"INSERT INTO blobs ({self._BLOB_COLS}, mirror_pending) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(blob_name) DO NOTHING",
            (
                row.blob_name, row.relpath, row.sha256, index_int(row.size), index_int(row.mtime_ns), row.etag,
                row.source_id,
                row.uploaded_at, int(row.is_current), row.deleted_at, row.capture_time, row.camera_model,
                int(mirror_pending),
            ),
        )  # fmt: skip
        return cur.rowcount > 0

    def insert_file_if_absent(self, row: FileRow) -> bool:
        """Rebuild: add a ``files`` row (the next sync re-checks it by stat) unless the path is known."""
        cur = self._write(
            "INSERT INTO files (relpath, size, mtime_ns, inode, sha256, blob_name, synced_at)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(relpath) DO NOTHING",
            (
                row.relpath,
                index_int(row.size),
                index_int(row.mtime_ns),
                index_int(row.inode),
                row.sha256,
                row.blob_name,
                time.time(),
            ),
        )
        return cur.rowcount > 0

    # -- meta ---------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._w.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        self.commit()

    def bind_source(self, source: Path, *, moved: bool = False) -> None:
        """Tie this state dir to one library: its rows describe that folder only, so a sync of another
        folder would take every file of the first for deleted. The first sync remembers the folder;
        ``moved`` (the library itself moved) rebinds. Read-only: only checks."""
        path = str(Path(source).expanduser().resolve())
        bound = self.get_meta(META_SOURCE_PATH)
        if bound is not None and bound != path and not moved:
            raise ConfigError(
                f"state dir {str(self.state_dir)!r} holds the index of {bound!r}, not {path!r}: give each "
                "library its own --state-dir (or pass --source-moved if this is the same library, moved)"
            )
        if bound != path and not self.readonly:
            self.set_meta(META_SOURCE_PATH, path)

    # -- runs ------------------------------------------------------------------------------------
    def start_run(self, kind: str) -> int:
        cur = self._write("INSERT INTO runs (kind, started_at) VALUES (?, ?)", (kind, time.time()))
        self.commit()
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, exit_code: int, summary_json: str) -> None:
        self._write(
            "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
            (time.time(), exit_code, redact(summary_json), run_id),
        )
        self.commit()

    def recent_summaries(self, kind: str, limit: int) -> list[str | None]:
        """The summaries of the newest ``limit`` runs of ``kind``, newest first (None: it did not finish)."""
        rows = self._w.execute(
            "SELECT summary FROM runs WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, limit)
        ).fetchall()
        return [r[0] for r in rows]

    def last_run(self, kind: str = "sync") -> tuple[float, float | None, int | None, str | None] | None:
        return self._w.execute(
            "SELECT started_at, finished_at, exit_code, summary FROM runs WHERE kind = ? ORDER BY id DESC LIMIT 1",
            (kind,),
        ).fetchone()


def read_meta(state_dir: Path | str, key: str) -> str | None:
    """One remembered value, read without creating, migrating or locking anything: None when the index,
    or the value, is absent or cannot be read (a caller that must know opens :class:`StateDB`)."""
    path = Path(state_dir).expanduser().absolute() / DB_NAME
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None
