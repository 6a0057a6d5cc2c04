"""Synthetic index rows, so the rerun's cost can be shown as a function of the library's size.

Rows are what the agent's mirror writes (``table_mirror.entity_for``), under the library's own prefix and
source id, spread over the same 256 partitions, each a current, unflagged file that exists nowhere on disk:
a 1M-file library without uploading a million blobs. Seeded with the mirror's own transactions
(``table_batch.submit``, 100 rows each, 8 in flight).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.data.tables import TableClient

from sync_core.index.table_batch import MAX_OPERATIONS, submit
from sync_core.index.table_mirror import entity_for
from sync_core.local.state import BlobRow

from .corpora import FIXED_MTIME_NS

CHUNK = 256 * MAX_OPERATIONS  # rows built at a time: about one full transaction per partition


def synthetic_row(prefix: str, source_id: str, i: int) -> dict[str, Any]:
    """Row ``i`` of a synthetic library: deterministic, unique, and keyed like a real file's."""
    sha = hashlib.sha256(f"synthetic-{i}".encode()).hexdigest()
    rel = f"synthetic/d{i // 1000:04d}/IMG_{i:07d}.jpg"
    row = BlobRow(
        blob_name=f"{prefix}/{sha[:2]}/{sha}/{rel}", relpath=rel, sha256=sha, size=1024,
        mtime_ns=FIXED_MTIME_NS, etag='"0x8DC0000000000000"', source_id=source_id,
        uploaded_at=FIXED_MTIME_NS / 1e9, is_current=True, deleted_at=None,
    )  # fmt: skip
    return entity_for(row)


def transactions(prefix: str, source_id: str, start: int, stop: int) -> Iterator[list[list[dict[str, Any]]]]:
    """Rows ``start``..``stop`` as batches of single-partition transactions of at most 100 rows each,
    one batch per ``CHUNK`` rows (so a million rows are never in memory at once)."""
    for lo in range(start, stop, CHUNK):
        by_pk: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for i in range(lo, min(stop, lo + CHUNK)):
            e = synthetic_row(prefix, source_id, i)
            by_pk[e["PartitionKey"]].append(e)
        yield [rows[k : k + MAX_OPERATIONS] for rows in by_pk.values() for k in range(0, len(rows), MAX_OPERATIONS)]


def seed_rows(table: TableClient, prefix: str, source_id: str, *, start: int, stop: int, workers: int = 8) -> int:
    """Insert synthetic rows ``start``..``stop`` (none when ``stop <= start``); returns how many."""
    if stop <= start:
        return 0
    with ThreadPoolExecutor(workers) as pool:
        for batch in transactions(prefix, source_id, start, stop):
            list(pool.map(lambda rows: submit(table, [("create", e) for e in rows]), batch))
    return stop - start
