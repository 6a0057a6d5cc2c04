"""The Table contract's one mapping: an index row (:class:`~sync_core.local.state.BlobRow`) ↔ a Table entity.

The agent's mirror writes :func:`entity_for`; the verifier re-creates the same agent-written half for a
blob that has no row from the blob's own metadata (:func:`entity_from_blob`); a rebuild and a repair read a
row back with :func:`row_from_entity`. Times travel as ``Edm.DateTime`` (:func:`time_of`,
:func:`epoch_of`); rows another tool wrote are ordered by :func:`sort_epoch`, which accepts what it can.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.data.tables import EdmType, EntityProperty

from sync_core.contracts.blobmeta import BlobMeta, normalize_etag
from sync_core.contracts.blobname import prefix_of
from sync_core.index.table_index import (
    P_BLOB_ETAG,
    P_BLOB_NAME,
    P_CAMERA_MODEL,
    P_CAPTURE_TIME,
    P_DELETED_AT,
    P_IS_CURRENT,
    P_MTIME_NS,
    P_RELPATH,
    P_SHA256,
    P_SIZE,
    P_SOURCE_ID,
    P_UPLOADED_AT,
    keys_for_blob,
)
from sync_core.local.state import BlobRow
from sync_core.timestamps import row_mtime_ns, row_size


# -- times ---------------------------------------------------------------------------------------------
def time_of(epoch: float) -> datetime:
    """The ``Edm.DateTime`` written for ``epoch`` seconds (UTC)."""
    return datetime.fromtimestamp(epoch, UTC)


def epoch_of(value: Any) -> float | None:
    """Seconds since 1970 of an ``Edm.DateTime`` read back; ``None`` for anything else (absent, or not a time)."""
    return value.timestamp() if isinstance(value, datetime) else None


def sort_epoch(value: Any) -> float:
    """A time as an ordering key, whoever wrote it: a datetime (naive = UTC), a number of seconds, an ISO
    8601 string; 0.0 (oldest) for anything else, so an odd value sorts first instead of failing."""
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return sort_epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return 0.0
    return 0.0


# -- row -> entity -------------------------------------------------------------------------------------
def entity_for(row: BlobRow) -> dict[str, Any]:
    """The agent-written half of a row. ``Size``/``MtimeNs`` are Edm.Int64 (they pass 2^31)."""
    pk, rk = keys_for_blob(prefix_of(row.blob_name, row.sha256), row.blob_name)
    e: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        P_BLOB_NAME: row.blob_name,
        P_RELPATH: row.relpath,
        P_SIZE: EntityProperty(row.size, EdmType.INT64),
        P_MTIME_NS: EntityProperty(row.mtime_ns, EdmType.INT64),
        P_SHA256: row.sha256,
        P_BLOB_ETAG: row.etag,
        P_SOURCE_ID: row.source_id,
        P_IS_CURRENT: row.is_current,
        P_UPLOADED_AT: time_of(row.uploaded_at),
    }
    # A merge cannot remove a property: DeletedAt stays from the last local deletion and only means
    # something while IsCurrent is false.
    if row.deleted_at is not None:
        e[P_DELETED_AT] = time_of(row.deleted_at)
    if row.capture_time:
        e[P_CAPTURE_TIME] = row.capture_time
    if row.camera_model:
        e[P_CAMERA_MODEL] = row.camera_model
    return e


def entity_from_blob(name: str, meta: BlobMeta, etag: str, created: datetime | None) -> dict[str, Any]:
    """The agent-written half of the row of blob ``name``, from the blob's own metadata (a blob with no row).

    Whether it is the path's current version is unknown from the blob alone; "current" keeps the file
    visible to a restore, and the agent's mirror corrects it if this is in fact an older version.
    ``UploadedAt`` is the blob's creation time, left out when unknown."""
    row = BlobRow(name, meta.relpath, meta.sha256, meta.size, meta.mtime_ns, etag, meta.source_id, 0.0, True, None)
    e = entity_for(row)
    if created is None:
        del e[P_UPLOADED_AT]
    else:
        e[P_UPLOADED_AT] = created
    return e


# -- entity -> row -------------------------------------------------------------------------------------
def row_from_entity(e: dict[str, Any]) -> BlobRow:
    """The index row of a (plain) entity; ``KeyError``/``ValueError``/``TypeError`` for a row that lacks a
    property or holds one the index cannot (another tool wrote it), so each caller rejects that row alone."""
    current = bool(e.get(P_IS_CURRENT, True))
    return BlobRow(
        blob_name=str(e[P_BLOB_NAME]),
        relpath=str(e[P_RELPATH]),
        sha256=str(e[P_SHA256]),
        size=row_size(e[P_SIZE]),
        mtime_ns=row_mtime_ns(e.get(P_MTIME_NS) or 0),
        etag=normalize_etag(str(e.get(P_BLOB_ETAG) or "")),
        source_id=str(e[P_SOURCE_ID]),
        uploaded_at=epoch_of(e.get(P_UPLOADED_AT)) or 0.0,
        is_current=current,
        deleted_at=None if current else epoch_of(e.get(P_DELETED_AT)),
        capture_time=e.get(P_CAPTURE_TIME),
        camera_model=e.get(P_CAMERA_MODEL),
    )
