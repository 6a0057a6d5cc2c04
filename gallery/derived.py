"""What the gallery reads of the derived data (renditions, index facts, user albums).

The smallest adapter over the thumbnails-and-albums work until its modules land in ``sync_core``: the
rendition blob names are the design's contract; the fact property names and the album rows follow that
work's table layout (derived partitions start with ``%~``) and are named once here so the integration
swaps this module for the real readers without touching the gallery.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sync_core.contracts.blobname import normalize_prefix
from sync_core.index.table_index import MAX_KEY_BYTES, encode_key, row_key

DEFAULT_THUMBNAILS_CONTAINER = "thumbnails"
ENV_THUMBNAILS_CONTAINER = "AZURE_STORAGE_THUMBNAILS_CONTAINER"
RENDITION_SIZES = (320, 1600)

# Index row facts written by the rendition run.
P_WIDTH = "PixelWidth"
P_HEIGHT = "PixelHeight"
P_DURATION = "DurationSeconds"
P_RENDITION_STATE = "RenditionState"  # "made" | "failed"
P_RENDITION_REASON = "RenditionDetail"
RENDITION_MADE = "made"
RENDITION_FAILED = "failed"

# User albums: one definition row per album, members in the album's own partition.
DERIVED_MARK = "%~"
ALBUMS_PARTITION = "%~albums"
P_ALBUM_NAME = "Name"
P_ALBUM_ID = "AlbumId"
# A member names an index row by prefix, SHA-256 and path; its RowKey is the index RowKey with its prefix.
P_MEMBER_PREFIX = "Prefix"
P_MEMBER_SHA = "Sha256"
P_MEMBER_RELPATH = "RelPath"
Member = tuple[str, str, str]  # (prefix, sha256, relpath)
_ALBUM_ID = re.compile(r"^[0-9a-f]{32}$")


def thumbnails_container_name() -> str:
    return os.environ.get(ENV_THUMBNAILS_CONTAINER) or DEFAULT_THUMBNAILS_CONTAINER


def rendition_name(sha256: str, size: int) -> str:
    """``<sha[0:2]>/<sha256>/<size>.webp`` (the design's contract)."""
    return f"{sha256[:2]}/{sha256}/{size}.webp"


def album_partition(album_id: str) -> str:
    if not _ALBUM_ID.match(album_id):
        raise ValueError(f"not an album id: {album_id!r}")
    return f"%~album-{album_id}"


def read_albums(table: TableClient, prefix: str) -> dict[str, list[tuple[str, str]]]:
    """Every user album as ``name -> [(sha256, relpath)]`` of its members under ``prefix`` (one query for the
    list, one per album)."""
    albums: dict[str, list[tuple[str, str]]] = {}
    want = normalize_prefix(prefix)
    try:
        rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": ALBUMS_PARTITION}))
    except ResourceNotFoundError:
        return albums
    for row in rows:
        name, album_id = str(row.get(P_ALBUM_NAME) or ""), str(row.get(P_ALBUM_ID) or "")
        if not name or not _ALBUM_ID.match(album_id):
            continue
        members = table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": album_partition(album_id)},
            select=[P_MEMBER_PREFIX, P_MEMBER_SHA, P_MEMBER_RELPATH],
        )  # fmt: skip
        albums[name] = sorted(
            (str(m[P_MEMBER_SHA]), str(m[P_MEMBER_RELPATH]))
            for m in members
            if m.get(P_MEMBER_PREFIX) == want and m.get(P_MEMBER_SHA) and m.get(P_MEMBER_RELPATH)
        )
    return albums


def _member_key(prefix: str, sha256: str, relpath: str) -> str:
    key = f"{encode_key(normalize_prefix(prefix))}%2F{row_key(sha256, relpath)}"
    if len(key.encode("utf-16-le", "surrogatepass")) <= MAX_KEY_BYTES:
        return key
    whole = f"{normalize_prefix(prefix)}/{sha256}/{relpath}".encode("utf-8", "surrogateescape")
    return f"~{hashlib.sha256(whole).hexdigest()}"


def _album_id(table: TableClient, name: str, *, create: bool) -> str | None:
    try:
        row = table.get_entity(ALBUMS_PARTITION, encode_key(name))
        return str(row[P_ALBUM_ID])
    except ResourceNotFoundError:
        if not create:
            return None
    album_id = uuid.uuid4().hex
    table.create_entity({"PartitionKey": ALBUMS_PARTITION, "RowKey": encode_key(name), P_ALBUM_NAME: name,
                         P_ALBUM_ID: album_id})  # fmt: skip
    return album_id


def _add_members(table: TableClient, album_id: str, members: list[Member]) -> None:
    pk = album_partition(album_id)
    for prefix, sha, rel in members:
        row = {P_MEMBER_PREFIX: normalize_prefix(prefix), P_MEMBER_SHA: sha, P_MEMBER_RELPATH: rel}
        table.upsert_entity({"PartitionKey": pk, "RowKey": _member_key(prefix, sha, rel), **row})


def write_album(table: TableClient, name: str, album_id: str, members: list[Member]) -> None:
    """Create an album with these members (what ``album create``/``album add`` do; tests and demo use it)."""
    table.upsert_entity({"PartitionKey": ALBUMS_PARTITION, "RowKey": encode_key(name), P_ALBUM_NAME: name,
                         P_ALBUM_ID: album_id})  # fmt: skip
    _add_members(table, album_id, members)


def edit_album(table: TableClient, name: str, *, add: list[Member], remove: list[Member]) -> None:
    """Add and remove members; adding to an album that does not exist creates it."""
    album_id = _album_id(table, name, create=bool(add))
    if album_id is None:
        return
    _add_members(table, album_id, add)
    for prefix, sha, rel in remove:
        table.delete_entity(album_partition(album_id), _member_key(prefix, sha, rel))


def facts(row: dict[str, Any]) -> dict[str, Any]:
    """Width, height, duration and rendition state of one index row (absent facts as ``None``)."""
    return {
        "w": _int(row.get(P_WIDTH)),
        "h": _int(row.get(P_HEIGHT)),
        "dur": _float(row.get(P_DURATION)),
        "rs": row.get(P_RENDITION_STATE) or None,
        "rr": row.get(P_RENDITION_REASON) or None,
    }


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
