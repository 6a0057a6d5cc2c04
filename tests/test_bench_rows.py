"""bench.rows: synthetic index rows are keyed like real ones and read by the agent's own queries."""

from __future__ import annotations

import uuid

from azure.data.tables import TableServiceClient

from agent.emulator import Azurite
from bench.rows import seed_rows, synthetic_row, transactions
from sync_core.index.table_index import keys_for_blob
from sync_core.index.table_mirror import flagged_rows, prefix_rows


def test_rows_are_keyed_like_the_mirrors_and_batched_by_partition() -> None:
    e = synthetic_row("photos/bench", "bench", 7)
    assert (e["PartitionKey"], e["RowKey"]) == keys_for_blob("photos/bench", e["BlobName"])
    batches = list(transactions("photos/bench", "bench", 10, 30_000))
    rows = [row for batch in batches for tx in batch for row in tx]
    assert len(rows) == len({(r["PartitionKey"], r["RowKey"]) for r in rows}) == 29_990
    for batch in batches:
        for tx in batch:
            assert 1 <= len(tx) <= 100 and len({r["PartitionKey"] for r in tx}) == 1


def test_seeded_rows_are_current_unflagged_rows_of_the_library(azurite: Azurite) -> None:
    name = f"t{uuid.uuid4().hex[:20]}"
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table(name)
    try:
        assert seed_rows(table, "photos/bench", "bench", start=0, stop=450) == 450
        assert seed_rows(table, "photos/bench", "bench", start=450, stop=300) == 0
        rows = list(prefix_rows(table, "photos/bench", "bench"))
        assert len(rows) == 450 and all(r["IsCurrent"] for r in rows)
        assert flagged_rows(table, "photos/bench", "bench") == []
    finally:
        service.delete_table(name)
