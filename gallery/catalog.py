"""The compact catalog, read: the loaded document with the lookups the views need, reloaded when its blob
changes (checked at most every :data:`RECHECK_S` seconds), so every view is a slice of a list in memory. The
catalog is built by :mod:`sync_core.derived.catalog` (after each sync and each thumbnails run); the gallery
only rewrites it with new albums after an album edit, which needs no scan of the index.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from sync_core.contracts.blobname import normalize_prefix
from sync_core.derived.catalog import SCHEMA, catalog_blob_name, write_catalog

RECHECK_S = 10.0
ITEM_ID = re.compile(r"^[0-9a-f]{24}$")


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
