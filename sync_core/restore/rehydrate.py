"""Archived blobs in a restore: ask once for rehydration, and say what is pending and for how long.

A blob in the Archive tier cannot be read; the service answers 409 ``BlobArchived``. Rehydration is asked
for by **Set Blob Tier to Hot** on the blob itself, not by copying it to a new online blob: the name stays
the one the index, the verifier and the next restore know (a copy would need a second name and a clean-up,
and would bill the archived bytes twice while both exist), and a restore reads the bytes right after, when
Hot reads are free; the lifecycle policy moves the blob down the tiers again later. The request is made
once: a blob whose archive status already says ``rehydrate-pending-to-*`` is reported as pending and not
asked for again (a second request would fail or, worse, change a pending priority).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from azure.storage.blob import BlobClient, RehydratePriority, StandardBlobTier

from sync_core.storage.tiering import GB, is_online, is_rehydrating

Priority = Literal["standard", "high"]
PRIORITIES: tuple[Priority, ...] = ("standard", "high")
REHYDRATE_TO = StandardBlobTier.HOT


def expected_wait(priority: str, size: int) -> str:
    """What the service promises: standard priority up to 15 hours; high about an hour below 10 GB."""
    if priority == "high":
        return "about 1 hour" if size < 10 * GB else "a few hours (high priority, 10 GB or more)"
    return "up to 15 hours"


@dataclass(frozen=True)
class Rehydration:
    """What became of one archived blob: online again (``online``), or pending with a detail line."""

    online: bool
    requested: bool = False  # asked for by this run (else already under way, or online)
    detail: str = ""


def rehydrate(blob: BlobClient, size: int, priority: Priority) -> Rehydration:
    """Ask for ``blob`` to come back online, unless it already is or is on its way."""
    props = blob.get_blob_properties()
    tier = str(getattr(props.blob_tier, "value", props.blob_tier) or "")
    status = str(props.archive_status or "")
    if is_rehydrating(status):
        wanted = str(getattr(props, "rehydrate_priority", "") or priority).lower()
        wait = expected_wait(wanted, size)
        return Rehydration(False, detail=f"archived; rehydration under way ({status}), expected {wait}")
    if tier and is_online(tier):
        return Rehydration(True)  # came back between the refused read and now: the next run reads it
    wanted_priority = RehydratePriority.HIGH if priority == "high" else RehydratePriority.STANDARD
    blob.set_standard_blob_tier(REHYDRATE_TO, rehydrate_priority=wanted_priority)
    wait = expected_wait(priority, size)
    return Rehydration(
        False, requested=True, detail=f"archived; rehydration requested ({priority} priority), expected {wait}"
    )
