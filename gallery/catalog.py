"""The compact catalog: everything the gallery lists, as one gzip-compressed JSON blob per prefix.

Why: a page view must not read the index table. The table is keyed for verification (partition = SHA-256
shard), so "the newest 200 items" or "the items of one folder" would be a scan of every row of the prefix —
100k rows are ~100 query pages and seconds of JSON per view. The catalog is that scan done once, after each
sync and each thumbnail run: the current rows with only the fields a view shows, sorted newest first, plus
the user albums. At 100k items it is a few MB compressed, read once per process and re-read only when its
etag changes (checked at most every :data:`RECHECK_S` seconds), so every view is a slice of a list in memory.

Items are addressed by an opaque id (a hash of the blob name): no request ever carries a blob name or a path.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient, ContentSettings

from sync_core.contracts.blobname import normalize_prefix
from sync_core.contracts.mediatypes import content_type
from sync_core.index.table_index import (
    P_BLOB_NAME,
    P_CAMERA_MODEL,
    P_CAPTURE_TIME,
    P_IS_CURRENT,
    P_LAST_DEEP_VERIFIED,
    P_LAST_VERIFIED,
    P_MTIME_NS,
    P_RELPATH,
    P_SHA256,
    P_SIZE,
    P_VERIFY_STATUS,
)
from sync_core.index.table_mirror import prefix_rows

from . import derived

SCHEMA = 1
RECHECK_S = 10.0
ITEM_ID = re.compile(r"^[0-9a-f]{24}$")


def item_id(blob_name: str) -> str:
    """The opaque, stable id of an item: 96 bits of the SHA-256 of its blob name."""
    return hashlib.sha256(blob_name.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def catalog_blob_name(prefix: str) -> str:
    return f"catalog/{normalize_prefix(prefix)}.json.gz"


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else None


def item_from_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """The catalog entry of one current index row; ``None`` for what the gallery does not show (sidecars)."""
    name = str(row.get(P_BLOB_NAME) or "")
    rel = str(row.get(P_RELPATH) or "")
    ctype = content_type(rel)
    if not name or not rel or not ctype.startswith(("image/", "video/")):
        return None
    taken, from_mtime = row.get(P_CAPTURE_TIME), False
    if not taken and row.get(P_MTIME_NS) is not None:
        taken = datetime.fromtimestamp(int(row[P_MTIME_NS]) / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        from_mtime = True
    return {
        "id": item_id(name),
        "n": rel,
        "b": name,
        "s": str(row.get(P_SHA256) or ""),
        "z": int(row.get(P_SIZE) or 0),
        "t": _iso(taken) or "",
        "tm": from_mtime,
        "c": row.get(P_CAMERA_MODEL) or None,
        "k": "v" if ctype.startswith("video/") else "p",
        "ct": ctype,
        "v": row.get(P_VERIFY_STATUS) or None,
        "vt": _iso(row.get(P_LAST_VERIFIED)),
        "vd": _iso(row.get(P_LAST_DEEP_VERIFIED)),
        **derived.facts(row),
    }


def album_ids(items: list[dict[str, Any]], albums: dict[str, list[tuple[str, str]]]) -> dict[str, list[str]]:
    """Albums as item ids: a member is the current file with its content and path, else the current file with
    its content (moved or renamed at the source); members with neither are left out (deleted at the source)."""
    by_key = {(it["s"], it["n"]): it["id"] for it in items}
    by_sha: dict[str, str] = {}
    for it in items:
        by_sha.setdefault(it["s"], it["id"])
    out: dict[str, list[str]] = {}
    for name, members in albums.items():
        ids = [by_key.get(m) or by_sha.get(m[0]) for m in members]
        out[name] = list(dict.fromkeys(i for i in ids if i))
    return out


def build_catalog(table: TableClient, prefix: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Read the prefix's current rows and the user albums once and return the catalog document."""
    items = [
        it
        for row in prefix_rows(table, prefix, extra=f"{P_IS_CURRENT} eq true")
        if (it := item_from_row(row)) is not None
    ]
    items.sort(key=lambda it: (it["t"][:19], it["n"]), reverse=True)
    albums = album_ids(items, derived.read_albums(table, prefix))
    built = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"schema": SCHEMA, "prefix": normalize_prefix(prefix), "built_at": built, "items": items, "albums": albums}


def write_catalog(thumbnails: ContainerClient, doc: dict[str, Any]) -> str:
    """Store the document (replacing the previous catalog); returns its blob name."""
    name = catalog_blob_name(doc["prefix"])
    data = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=6, mtime=0)
    thumbnails.upload_blob(
        name, data, overwrite=True,
        content_settings=ContentSettings(content_type="application/json", content_encoding="gzip"),
    )  # fmt: skip
    return name


def refresh_catalog(table: TableClient, thumbnails: ContainerClient, prefix: str) -> int:
    """Build and store the catalog of ``prefix``; returns the number of items. Called after each sync and
    each thumbnail run (and by ``azphotosync gallery`` when the catalog is missing)."""
    doc = build_catalog(table, prefix)
    write_catalog(thumbnails, doc)
    return len(doc["items"])


@dataclass
class Catalog:
    """A loaded catalog with the lookups the views need."""

    items: list[dict[str, Any]]
    albums: dict[str, list[str]]
    built_at: str = ""
    by_id: dict[str, dict[str, Any]] = field(init=False)
    pos: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {it["id"]: it for it in self.items}
        self.pos = {it["id"]: i for i, it in enumerate(self.items)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Catalog:
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"catalog schema {doc.get('schema')!r} is not {SCHEMA}")
        return cls(list(doc["items"]), dict(doc.get("albums") or {}), str(doc.get("built_at") or ""))

    def get(self, ident: str) -> dict[str, Any] | None:
        return self.by_id.get(ident) if ITEM_ID.match(ident) else None

    @functools.cached_property
    def _years(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, it in enumerate(self.items):
            y = it["t"][:4] or "undated"
            if not out or out[-1]["year"] != y:
                out.append({"year": y, "offset": i})
        return out

    def years(self) -> list[dict[str, Any]]:
        """Each year present with the offset of its first (newest) item (computed once per catalog)."""
        return self._years

    @functools.cached_property
    def _folders(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for it in self.items:
            folder = it["n"].rpartition("/")[0]
            counts[folder] = counts.get(folder, 0) + 1
        return [{"folder": f, "count": counts[f]} for f in sorted(counts)]

    def folders(self) -> list[dict[str, Any]]:
        return self._folders

    def in_folder(self, folder: str) -> list[dict[str, Any]]:
        return [it for it in self.items if it["n"].rpartition("/")[0] == folder]

    def in_album(self, name: str) -> list[dict[str, Any]]:
        ids = set(self.albums.get(name, ()))
        return [it for it in self.items if it["id"] in ids]

    def matching(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        wanted = set(ids)
        return [it for it in self.items if it["id"] in wanted]


class CatalogStore:
    """The current catalog of one prefix, loaded on first use and reloaded when its blob changes."""

    def __init__(self, thumbnails: ContainerClient, prefix: str, *, recheck_s: float = RECHECK_S) -> None:
        self._container, self._prefix = thumbnails, normalize_prefix(prefix)
        self._blob = thumbnails.get_blob_client(catalog_blob_name(prefix))
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._etag: str | None = None
        self._checked = 0.0

    def get(self) -> Catalog:
        with self._lock:
            now = time.monotonic()
            if self._catalog is not None and now - self._checked < self._recheck_s:
                return self._catalog
            self._checked = now
            try:
                etag = self._blob.get_blob_properties().etag
                if self._catalog is None or etag != self._etag:
                    raw = self._blob.download_blob(decompress=False).readall()
                    self._catalog = Catalog.from_doc(json.loads(gzip.decompress(raw)))
                    self._etag = etag
            except ResourceNotFoundError:
                self._catalog, self._etag = Catalog([], {}), None
            return self._catalog

    def replace_albums(self, albums: dict[str, list[str]]) -> None:
        """Store the catalog again with new albums (ids): an album edit needs no scan of the index."""
        cat = self.get()
        doc = {"schema": SCHEMA, "prefix": self._prefix, "built_at": cat.built_at, "items": cat.items,
               "albums": albums}  # fmt: skip
        write_catalog(self._container, doc)
        with self._lock:
            self._catalog, self._etag, self._checked = Catalog.from_doc(doc), None, 0.0

    def invalidate(self) -> None:
        with self._lock:
            self._checked = 0.0
