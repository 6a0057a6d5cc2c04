"""The gallery's compact catalog, built: everything the gallery lists, as one gzip JSON blob per prefix.

Why: a page view must not read the index table. The table is keyed for verification (partition = SHA-256
shard), so "the newest 200 items" or "the items of one folder" would be a scan of every row of the prefix —
100k rows are ~100 query pages and seconds of JSON per view. The catalog is that scan done once, at the end
of each sync (after the Table mirror), of ``azphotosync thumbnails`` and of the cloud's thumbnails run: the
current rows with only the fields a view shows, sorted newest first, plus the user albums as item ids. It is
built here, beside the data it derives from, because the agent and the Functions app both build it; the
``gallery`` package only reads it.

Items are addressed by an opaque id (a hash of the blob name): no request ever carries a blob name or a path.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient, ContentSettings

from sync_core.contracts.blobname import normalize_prefix
from sync_core.contracts.mediatypes import content_type
from sync_core.derived.albums import AlbumStore, resolve
from sync_core.derived.facts import read_facts
from sync_core.derived.timeline import Item
from sync_core.index.entity import entity_for
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
from sync_core.index.table_mirror import plain, prefix_rows
from sync_core.local.state import BlobRow

SCHEMA = 1


def item_id(blob_name: str) -> str:
    """The opaque, stable id of an item: 96 bits of the SHA-256 of its blob name."""
    return hashlib.sha256(blob_name.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def catalog_blob_name(prefix: str) -> str:
    return f"catalog/{normalize_prefix(prefix)}.json.gz"


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else None


def item_from_row(row: Mapping[str, Any]) -> dict[str, Any] | None:
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
    facts = read_facts(row)
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
        "w": facts.width if facts else None,
        "h": facts.height if facts else None,
        "dur": facts.duration if facts else None,
        "rs": facts.state if facts else None,
        "rr": (facts.detail or None) if facts else None,
    }


def catalog_item(prefix: str, it: Mapping[str, Any]) -> Item:
    """The timeline item a catalog entry stands for (what album members resolve against)."""
    return Item(normalize_prefix(prefix), it["n"], it["s"], it["b"], int(it["z"]), 0)


def album_ids(store: AlbumStore, prefix: str, items: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Every user album as the ids of the catalog items its members under ``prefix`` stand for, resolved as
    everywhere else (:func:`sync_core.derived.albums.resolve`: same file, else moved, else edited); members
    that stand for nothing here (gone, or another prefix's) are left out."""
    prefix = normalize_prefix(prefix)
    albums = list(store.albums())
    if not albums:  # most libraries: no index of the items to build
        return {}
    items = list(items)
    by_name = {it["b"]: it["id"] for it in items}
    current = [catalog_item(prefix, it) for it in items]
    out: dict[str, list[str]] = {}
    for album in albums:
        mine = [m for m in store.members(album) if normalize_prefix(m.prefix) == prefix]
        ids = (by_name.get(r.item.blob_name) for r in resolve(mine, current) if r.item is not None)
        out[album.name] = list(dict.fromkeys(i for i in ids if i))
    return out


def build_catalog(table: TableClient, prefix: str, *, now: datetime | None = None) -> dict[str, Any]:
    """Read the prefix's current rows and the user albums once and return the catalog document (every item
    in memory: :func:`refresh_catalog` stores the same document without holding them)."""
    items = [it for row in _current_rows(table, prefix) if (it := item_from_row(row)) is not None]
    items.sort(key=_newest_first, reverse=True)
    albums = album_ids(AlbumStore(table, "catalog"), prefix, items)
    return _document(prefix, items, albums, now)


def _current_rows(table: TableClient, prefix: str) -> Iterator[dict[str, Any]]:
    return prefix_rows(table, prefix, extra=f"{P_IS_CURRENT} eq true")


def _newest_first(it: Mapping[str, Any]) -> tuple[str, str]:
    """The catalog's order (descending): capture time to the second, then the path."""
    return it["t"][:19], it["n"]


def _document(prefix: str, items: Any, albums: dict[str, list[str]], now: datetime | None = None) -> dict[str, Any]:
    built = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"schema": SCHEMA, "prefix": normalize_prefix(prefix), "built_at": built, "items": items, "albums": albums}


class ItemSpool:
    """Catalog items sorted newest first without holding them: each is encoded once, as it is read, into a
    throwaway SQLite file that sorts them. A 100k-item catalog as dicts is most of a first sync's peak memory
    (docs/benchmarks.md); here memory stays at SQLite's page cache whatever the library's size.

    The order is :func:`_newest_first` descending with ties in the order added, as ``sorted(...,
    reverse=True)`` gives: paths are compared as UTF-8 bytes (``surrogatepass`` for names that were not
    UTF-8 on disk), which is code point order, Python's.

    ``folder``: where the file goes (the agent's state folder: on a NAS the system temp folder is often a
    small RAM disk, and at a million items the file is hundreds of MB); the system's by default."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="azps-catalog-", dir=folder)
        self._db = sqlite3.connect(f"{self._dir.name}/items.db", isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "BEGIN; CREATE TABLE items (t TEXT NOT NULL, n BLOB NOT NULL, j TEXT NOT NULL);"
        )
        self.count = 0

    def __enter__(self) -> ItemSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def add(self, item: Mapping[str, Any]) -> None:
        t, n = _newest_first(item)
        self._db.execute(
            "INSERT INTO items VALUES (?, ?, ?)", (t, n.encode("utf-8", "surrogatepass"), _ENCODER.encode(item))
        )
        self.count += 1

    def encoded(self) -> Iterator[str]:
        """Each item's JSON text, newest first."""
        for (text,) in self._db.execute("SELECT j FROM items ORDER BY t DESC, n DESC, rowid"):
            yield text

    def items(self) -> Iterator[dict[str, Any]]:
        """Each item, newest first (decoded again, one at a time)."""
        return (json.loads(text) for text in self.encoded())


def write_catalog(
    thumbnails: ContainerClient,
    doc: Mapping[str, Any],
    *,
    etag: str | None = None,
    encoded: Iterable[str] | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Store the document (replacing the previous catalog; with ``etag``, only the version read, else
    ``ResourceModifiedError``); returns its blob name. ``encoded``: its items as JSON texts, written in place
    of ``doc["items"]``; ``spool_dir``: where its gzip bytes wait for the upload (:class:`ItemSpool`)."""
    name = catalog_blob_name(doc["prefix"])
    condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
    # A large catalog's gzip bytes are not held beside the upload's copy.
    with tempfile.TemporaryFile(dir=spool_dir) as data:
        write_gzip_json(data, doc, encoded)
        length = data.tell()
        data.seek(0)
        thumbnails.upload_blob(
            name, data, length=length, overwrite=True,
            content_settings=ContentSettings(content_type="application/json", content_encoding="gzip"), **condition,
        )  # fmt: skip
    return name


_ENCODER = json.JSONEncoder(separators=(",", ":"))
_ITEMS_PER_WRITE = 1000


def gzip_json(doc: Mapping[str, Any], encoded: Iterable[str] | None = None) -> bytes:
    """``doc`` as compact JSON, gzipped (:func:`write_gzip_json`)."""
    buf = io.BytesIO()
    write_gzip_json(buf, doc, encoded)
    return buf.getvalue()


def write_gzip_json(out: IO[bytes], doc: Mapping[str, Any], encoded: Iterable[str] | None = None) -> None:
    """Write ``doc`` as compact JSON, gzipped, to ``out``, its ``items`` encoded a thousand at a time: the text
    of a 100k-item catalog (~45 MB, ~7 MB gzipped) never exists whole in memory, twice (as text and as bytes)
    beside the items themselves. ``encoded``: the items' JSON texts, written in place of ``doc["items"]``."""
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(b"{")
        for k, (key, value) in enumerate(doc.items()):
            gz.write(("," if k else "").encode() + _ENCODER.encode(key).encode() + b":")
            if key != "items":
                gz.write(_ENCODER.encode(value).encode())
                continue
            texts = map(_ENCODER.encode, value) if encoded is None else encoded
            gz.write(b"[")
            first = True
            for part in _batched(texts, _ITEMS_PER_WRITE):
                gz.write((("" if first else ",") + ",".join(part)).encode())
                first = False
            gz.write(b"]")
        gz.write(b"}")


def _batched(texts: Iterable[str], n: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _parsed(raw: bytes) -> dict[str, Any] | None:
    """A stored catalog of this schema, or ``None`` for anything else (damaged, foreign, older): rebuilt."""
    try:
        doc = json.loads(gzip.decompress(raw).decode())  # the bytes go before the parse builds the items
    except (OSError, EOFError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("items"), list):
        return None
    return doc


# What a row written by the mirror does not carry but the stored item may: the verifier's and the
# renditions step's facts, kept when a changed row's item replaces the stored one.
_KEPT_FROM_STORED = ("v", "vt", "vd", "w", "h", "dur", "rs", "rr")


def apply_rows(table: TableClient, thumbnails: ContainerClient, prefix: str, rows: Iterable[BlobRow]) -> int | None:
    """Bring the stored catalog up to date with ``rows`` (the rows one sync mirrored) without reading the
    index: their items replace, join or leave the stored ones and the albums are resolved again. ``None``
    when that cannot be done safely — no catalog yet, another schema, or another writer replaced it
    meanwhile (the write is conditional on the version read) — and the caller rebuilds it whole."""
    blob = thumbnails.get_blob_client(catalog_blob_name(prefix))
    try:
        download = blob.download_blob(decompress=False)
        raw, etag = download.readall(), download.properties.etag
    except ResourceNotFoundError:
        return None
    doc = _parsed(raw)
    if doc is None or doc.get("prefix") != normalize_prefix(prefix):
        return None
    items = {it["b"]: it for it in doc["items"]}
    for row in rows:
        stored = items.pop(row.blob_name, None)
        item = item_from_row(plain(entity_for(row))) if row.is_current else None
        if item is None:
            continue
        if stored is not None:
            for key in _KEPT_FROM_STORED:
                if item.get(key) is None:
                    item[key] = stored.get(key)
        items[row.blob_name] = item
    listed = sorted(items.values(), key=_newest_first, reverse=True)
    doc.update(
        items=listed,
        albums=album_ids(AlbumStore(table, "catalog"), prefix, listed),
        built_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    try:
        write_catalog(thumbnails, doc, etag=etag)
    except ResourceModifiedError:
        return None
    return len(listed)


def refresh_catalog(
    table: TableClient, thumbnails: ContainerClient, prefix: str, *, spool_dir: str | os.PathLike[str] | None = None
) -> int:
    """Build and store the catalog of ``prefix`` (the document :func:`build_catalog` returns, its items
    spooled in ``spool_dir``, not held: :class:`ItemSpool`); returns the number of items."""
    with ItemSpool(spool_dir) as spool:
        for row in _current_rows(table, prefix):
            if (it := item_from_row(row)) is not None:
                spool.add(it)
        albums = album_ids(AlbumStore(table, "catalog"), prefix, spool.items())
        write_catalog(thumbnails, _document(prefix, [], albums), encoded=spool.encoded(), spool_dir=spool_dir)
        return spool.count


def refresh_albums(table: TableClient, thumbnails: ContainerClient, prefix: str) -> bool:
    """Store the catalog of ``prefix`` again with the albums as they are now (after an album edit: no scan
    of the index); ``False`` when there is no catalog yet (the next sync or thumbnails run builds it)."""
    try:
        raw = thumbnails.download_blob(catalog_blob_name(prefix), decompress=False).readall()
    except ResourceNotFoundError:
        return False
    doc = _parsed(raw)
    if doc is None:
        return False
    doc["albums"] = album_ids(AlbumStore(table, "catalog"), prefix, doc["items"])
    write_catalog(thumbnails, doc)
    return True


def refresh_if_set_up(
    table: TableClient,
    thumbnails: ContainerClient,
    prefix: str,
    *,
    create: bool = False,
    rows: Iterable[BlobRow] | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
) -> int | None:
    """:func:`refresh_catalog` (or, given the ``rows`` a sync mirrored, :func:`apply_rows` when it can), unless
    the thumbnails container does not exist: then no gallery is set up for this archive and there is nothing
    to keep current (``None``). ``create``: make the container instead (the emulator, ``--create-container``)."""
    try:
        thumbnails.get_container_properties()
    except ResourceNotFoundError:
        if not create:
            return None
        with contextlib.suppress(ResourceExistsError):
            thumbnails.create_container()
    if rows is not None:
        updated = apply_rows(table, thumbnails, prefix, rows)
        if updated is not None:
            return updated
    return refresh_catalog(table, thumbnails, prefix, spool_dir=spool_dir)
