"""The facts the renditions step learns, as properties of the blob's Table row, and reading them back.

Written with a merge of only these properties (never a replace), so the agent's and the verifier's
properties stay as they are; the agent's mirror never sends them, so its merges keep them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from sync_core.index.table_index import (
    P_DURATION,
    P_PIXEL_HEIGHT,
    P_PIXEL_WIDTH,
    P_RENDITION_DETAIL,
    P_RENDITION_STATE,
    P_RENDITIONS_AT,
    RENDITION_FAILED,
    RENDITION_MADE,
    keys_for_blob,
)
from sync_core.verify.partition import plain

PROPERTIES = (P_PIXEL_WIDTH, P_PIXEL_HEIGHT, P_DURATION, P_RENDITION_STATE, P_RENDITION_DETAIL, P_RENDITIONS_AT)
MAX_DETAIL = 300  # characters of a failure reason kept in the row


@dataclass(frozen=True)
class MediaFacts:
    state: str  # RENDITION_MADE or RENDITION_FAILED
    detail: str = ""  # the reason, when failed
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    at: datetime | None = None

    @property
    def made(self) -> bool:
        return self.state == RENDITION_MADE

    def to_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {P_RENDITION_STATE: self.state, P_RENDITION_DETAIL: self.detail[:MAX_DETAIL]}
        if self.at is not None:
            props[P_RENDITIONS_AT] = self.at
        if self.width and self.height:
            props[P_PIXEL_WIDTH], props[P_PIXEL_HEIGHT] = int(self.width), int(self.height)
        if self.duration is not None:
            props[P_DURATION] = float(self.duration)
        return props


def read_facts(row: Mapping[str, Any]) -> MediaFacts | None:
    """The facts in an index row (plain or SDK entity); ``None`` while no renditions run has seen it."""
    state = plain(row.get(P_RENDITION_STATE))
    if state not in (RENDITION_MADE, RENDITION_FAILED):
        return None
    width, height, duration = (plain(row.get(p)) for p in (P_PIXEL_WIDTH, P_PIXEL_HEIGHT, P_DURATION))
    return MediaFacts(
        state=state,
        detail=str(plain(row.get(P_RENDITION_DETAIL)) or ""),
        width=int(width) if width is not None else None,
        height=int(height) if height is not None else None,
        duration=float(duration) if duration is not None else None,
        at=plain(row.get(P_RENDITIONS_AT)),
    )


def fetch_facts(table: TableClient, prefix: str, blob_name: str) -> MediaFacts | None:
    """One row's facts (the agent's point read), ``None`` when the row or its facts are absent."""
    pk, rk = keys_for_blob(prefix, blob_name)
    try:
        entity = table.get_entity(pk, rk, select=list(PROPERTIES))
    except ResourceNotFoundError:
        return None
    return read_facts(entity)


def write_facts(table: TableClient, partition_key: str, row_key: str, facts: MediaFacts) -> bool:
    """Merge the facts into an existing row; ``False`` when the row is gone (it is never re-created here)."""
    try:
        table.update_entity(
            {"PartitionKey": partition_key, "RowKey": row_key, **facts.to_properties()}, mode=UpdateMode.MERGE
        )
    except ResourceNotFoundError:
        return False
    return True
