"""Rebuild: recreate a lost SQLite index from the Table, and missing Table rows from blob metadata.

Both directions only fill gaps — an existing SQLite or Table row is never replaced — and no file bytes
move: the inputs are one range query over the prefix's partitions and one blob listing with metadata.

* Table -> SQLite: every row of this source id under the prefix becomes a ``blobs`` row, and every current
  one a ``files`` row. With ``source`` given, a file whose size and mtime still match gets its inode
  recorded, so the next sync skips it without reading it; otherwise the next sync re-hashes it (locally)
  and finds it unchanged.
* Blobs -> SQLite -> Table: a blob of this source id with self-consistent metadata (SHA-256, path and size
  agree with its name) but no Table row is added to SQLite and mirrored. When several such blobs hold
  versions of one path and no row says which is current, the newest (by mtime, then creation) is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import normalize_etag, parse_metadata
from sync_core.contracts.blobname import is_name_of, listing_prefix, parse_blob_name, prefix_of
from sync_core.index.entity import row_from_entity
from sync_core.index.table_index import (
    P_BLOB_NAME,
)
from sync_core.index.table_mirror import MirrorResult, TableMirror, prefix_rows
from sync_core.local.state import BlobRow, FileRow, StateDB
from sync_core.timestamps import row_mtime_ns


@dataclass
class RebuildResult:
    table_rows: int = 0  # rows of this source id under the prefix
    blobs_listed: int = 0  # blobs under the prefix
    from_table: int = 0  # SQLite blob rows re-created from Table rows
    from_blobs: int = 0  # SQLite blob rows re-created from blob metadata (the Table had no row)
    files_restored: int = 0  # ``files`` rows re-created (current versions)
    files_confirmed: int = 0  # of those, local files whose size and mtime still match
    other_sources: int = 0  # blobs of other source ids under the prefix (theirs to index)
    unusable: list[dict[str, str]] = field(default_factory=list)  # unreadable rows; blobs whose metadata disagrees
    mirror: MirrorResult = field(default_factory=MirrorResult)

    @property
    def exit_code(self) -> int:
        return 1 if self.unusable or self.mirror.error or self.mirror.rejected else 0

    def to_dict(self) -> dict[str, Any]:
        m = self.mirror
        return {
            "table_rows": self.table_rows,
            "blobs_listed": self.blobs_listed,
            "from_table": self.from_table,
            "from_blobs": self.from_blobs,
            "files_restored": self.files_restored,
            "files_confirmed": self.files_confirmed,
            "other_sources": self.other_sources,
            "unusable": self.unusable,
            "mirrored": m.mirrored,
            "mirror_transactions": m.transactions,
            "mirror_pending": m.pending,
            "mirror_error": m.error,
            "exit_code": self.exit_code,
        }


def _one_current_per_path(rows: Iterable[BlobRow]) -> tuple[list[BlobRow], set[str]]:
    """At most one current row per path: the newest claimant wins, the others become history.
    Returns the rows and the names of those demoted (their Table rows must be told)."""
    rows = list(rows)
    newest: dict[str, BlobRow] = {}
    for r in rows:
        best = newest.get(r.relpath)
        if r.is_current and (best is None or (r.mtime_ns, r.uploaded_at) > (best.mtime_ns, best.uploaded_at)):
            newest[r.relpath] = r
    demoted = {r.blob_name for r in rows if r.is_current and newest[r.relpath] is not r}
    return [replace(r, is_current=False) if r.blob_name in demoted else r for r in rows], demoted


def rebuild_index(
    cfg: StorageConfig,
    state: StateDB,
    container: ContainerClient,
    table: TableClient,
    *,
    source: Path | None = None,
) -> RebuildResult:
    """Fill the gaps between SQLite, the Table and the container for ``cfg.source_id`` under ``cfg.prefix``."""
    res = RebuildResult()
    # 1. Table -> SQLite
    indexed: set[str] = set()  # blob names with a readable row
    read: list[BlobRow] = []
    for e in prefix_rows(table, cfg.prefix, cfg.source_id):
        if not e.get(P_BLOB_NAME):
            continue
        res.table_rows += 1
        try:
            read.append(row_from_entity(e))
        except (KeyError, TypeError, ValueError) as exc:  # one unreadable row (another tool's) stops nothing;
            # its blob is re-indexed from its own metadata in step 2, which also rewrites the row
            res.unusable.append({"blob_name": str(e[P_BLOB_NAME]), "error": f"index row is not usable ({exc!r})"})
            continue
        indexed.add(str(e[P_BLOB_NAME]))
    table_current = {r.relpath for r in read if r.is_current}
    rows, demoted = _one_current_per_path(read)
    for row in rows:
        if state.insert_blob_if_absent(row, mirror_pending=row.blob_name in demoted):
            res.from_table += 1

    # 2. Blobs -> SQLite (and the Table, through the mirror)
    state.commit()
    known_current = table_current | {r.relpath for r in state.iter_blobs(current_only=True)}
    found: list[BlobRow] = []
    for b in container.list_blobs(name_starts_with=listing_prefix(cfg.prefix), include=["metadata"]):
        res.blobs_listed += 1
        if b.name in indexed:
            continue
        meta = parse_metadata(b.metadata)
        try:
            sha = parse_blob_name(cfg.prefix, b.name)[0]
        except ValueError:
            sha = ""
        rel = meta.relpath if meta is not None else ""
        if meta is None or (meta.sha256, meta.size) != (sha, b.size) or not is_name_of(cfg.prefix, b.name, sha, rel):
            res.unusable.append({"blob_name": b.name, "error": "metadata does not match the blob name and size"})
            continue
        if meta.source_id != cfg.source_id:
            res.other_sources += 1
            continue
        try:
            row_mtime_ns(meta.mtime_ns)
        except ValueError as exc:
            res.unusable.append({"blob_name": b.name, "error": f"metadata {exc}"})
            continue
        created = b.creation_time.timestamp() if b.creation_time else 0.0
        etag = normalize_etag(str(b.etag))
        current = rel not in known_current
        found.append(BlobRow(b.name, rel, sha, b.size, meta.mtime_ns, etag, meta.source_id, created, current, None))
    for row in _one_current_per_path(found)[0]:
        if state.insert_blob_if_absent(row, mirror_pending=True):
            res.from_blobs += 1

    # 3. SQLite rows the Table lacks (also rows that existed locally before the rebuild)
    missing = [
        r.blob_name
        for r in state.iter_blobs()
        if r.blob_name not in indexed and _under(r, cfg.prefix) and r.source_id == cfg.source_id
    ]
    state.set_mirror_pending(missing)

    # 4. files rows for current versions
    state.commit()
    for r in list(state.iter_blobs(current_only=True)):
        inode = 0
        if source is not None:
            try:
                st = os.stat(source / r.relpath)
                if st.st_size == r.size and st.st_mtime_ns == r.mtime_ns:
                    inode = st.st_ino
            except OSError:
                pass
        if state.insert_file_if_absent(FileRow(r.relpath, r.size, r.mtime_ns, inode, r.sha256, r.blob_name)):
            res.files_restored += 1
            res.files_confirmed += inode != 0
    state.commit()

    # 5. Tell the Table what it lacks
    res.mirror = TableMirror(table, state).run()
    return res


def _under(row: BlobRow, prefix: str) -> bool:
    try:
        return prefix_of(row.blob_name, row.sha256) == prefix
    except ValueError:
        return False
