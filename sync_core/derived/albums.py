"""User albums, kept in the index table so that every device of the same archive shares them.

* **Where**: the definitions in one partition (``ALBUMS_PARTITION``, RowKey = the encoded name), each
  album's members in a partition of its own (``album_partition(id)``); see :mod:`sync_core.index.table_index` for
  why no blob prefix can produce those keys. Blobs and index rows are never touched: deleting an album, or
  every album, loses no photo.
* **Names** are user text: NFC-normalised, surrounding blanks dropped, control characters refused, up to
  ``MAX_NAME`` characters; every other character (``/ \\ # ? % '`` included) is allowed and key-encoded.
  Names are exact: ``Trip`` and ``trip`` are two albums (as two files would be); a lookup that misses says
  which names differ only in case.
* **Members** reference an index row by its prefix, SHA-256 and path (the member's RowKey is the index
  RowKey with its prefix). Read back, a member resolves to the current file with that content and path;
  else to the current file with the same content (moved or renamed at the source); else to the current
  version of the same path (edited); else it is reported ``gone`` (deleted at the source, still archived).
* **Concurrency**: create is an insert (a second device creating the same name gets the existing album);
  members are written as merge-upserts of rows that depend only on the album and the file, so two devices
  adding the same files write the same rows; removes ignore rows already gone. An album gets a fresh id
  when created, so a delete on one device racing an add on another leaves at worst unreachable member rows,
  never members in a re-created album of the same name.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError

from sync_core.contracts.blobname import normalize_prefix
from sync_core.derived.timeline import Item
from sync_core.errors import ConfigError
from sync_core.index import table_batch
from sync_core.index.table_index import ALBUMS_PARTITION, album_key, album_partition, member_key
from sync_core.index.table_query import odata_string, query_pages

MAX_NAME = 200  # characters; far below the key limit even when every character is encoded
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Properties of a definition row
P_NAME = "Name"
P_ALBUM_ID = "AlbumId"
P_CREATED_AT = "CreatedAt"
P_CREATED_BY = "CreatedBy"
# Properties of a member row
P_PREFIX = "Prefix"
P_SHA256 = "Sha256"
P_RELPATH = "RelPath"
P_ADDED_AT = "AddedAt"
P_ADDED_BY = "AddedBy"

MemberState = Literal["current", "moved", "edited", "gone"]


class AlbumNotFoundError(ConfigError):
    """No album has that name (a usage error: exit code 2)."""


def album_name(text: str) -> str:
    """The album name ``text`` stands for, or :class:`ConfigError` saying what is wrong with it."""
    name = unicodedata.normalize("NFC", text.strip())
    if not name:
        raise ConfigError("an album name cannot be empty")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError("an album name must be valid UTF-8 text") from exc
    if _CONTROL.search(name):
        raise ConfigError("an album name cannot contain control characters (tabs, newlines…)")
    if len(name) > MAX_NAME:
        raise ConfigError(f"an album name is limited to {MAX_NAME} characters")
    return name


@dataclass(frozen=True, slots=True)
class Album:
    name: str
    album_id: str
    created_at: datetime | None
    created_by: str
    members: int | None = None  # counted when asked

    @property
    def partition(self) -> str:
        return album_partition(self.album_id)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created_at": self.created_at.isoformat() if self.created_at else None,
                "created_by": self.created_by, "members": self.members}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Member:
    prefix: str
    sha256: str
    relpath: str
    added_at: datetime | None = None
    added_by: str = ""

    @property
    def key(self) -> str:
        return member_key(self.prefix, self.sha256, self.relpath)


@dataclass(frozen=True, slots=True)
class Resolved:
    member: Member
    item: Item | None  # the current file it stands for; None when gone
    state: MemberState


def _album(row: dict[str, Any]) -> Album:
    created = row.get(P_CREATED_AT)
    return Album(str(row.get(P_NAME, "")), str(row[P_ALBUM_ID]),
                 created if isinstance(created, datetime) else None, str(row.get(P_CREATED_BY, "")))  # fmt: skip


def _partition_filter(pk: str, extra: str = "") -> str:
    return f"PartitionKey eq {odata_string(pk)}" + (f" and {extra}" if extra else "")


class AlbumStore:
    """The albums of one archive (its index table). ``source_id`` is recorded as who created or added."""

    def __init__(self, table: TableClient, source_id: str):
        self.table = table
        self.source_id = source_id

    # -- albums --------------------------------------------------------------------------------------------
    def albums(self, *, counts: bool = False) -> list[Album]:
        """Every album, by name (case-insensitively, then exactly); ``counts``: with their member counts
        (one keys-only query per album)."""
        rows = [r for page in query_pages(self.table, _partition_filter(ALBUMS_PARTITION)) for r in page]
        found = sorted((_album(r) for r in rows if isinstance(r.get(P_ALBUM_ID), str)),
                       key=lambda a: (a.name.casefold(), a.name))  # fmt: skip
        if counts:
            found = [Album(a.name, a.album_id, a.created_at, a.created_by, self._count(a)) for a in found]
        return found

    def find(self, name: str) -> Album | None:
        name = album_name(name)
        flt = _partition_filter(ALBUMS_PARTITION, f"RowKey eq {odata_string(album_key(name))}")
        rows = [r for page in query_pages(self.table, flt) for r in page]
        return _album(rows[0]) if rows else None

    def get(self, name: str) -> Album:
        """The album called ``name``, or :class:`AlbumNotFoundError` with a one-line hint."""
        album = self.find(name)
        if album is not None:
            return album
        name = album_name(name)
        near = [a.name for a in self.albums() if a.name.casefold() == name.casefold()]
        hint = f" (names are exact: did you mean {', '.join(repr(n) for n in near)}?)" if near else ""
        raise AlbumNotFoundError(f"no album named {name!r}{hint}; `azphotosync album list` shows them")

    def create(self, name: str) -> tuple[Album, bool]:
        """The album called ``name``, and whether this call created it (an existing one is returned)."""
        name = album_name(name)
        now = datetime.now(UTC)
        entity = {"PartitionKey": ALBUMS_PARTITION, "RowKey": album_key(name), P_NAME: name,
                  P_ALBUM_ID: uuid.uuid4().hex, P_CREATED_AT: now, P_CREATED_BY: self.source_id}  # fmt: skip
        try:
            self.table.create_entity(entity)
        except ResourceExistsError:
            return self.get(name), False
        return Album(name, entity[P_ALBUM_ID], now, self.source_id, 0), True

    def delete(self, name: str) -> tuple[Album, int]:
        """Delete the album (its definition, then its member rows); never a file. Returns the album and
        how many member rows were removed."""
        album = self.get(name)
        with contextlib.suppress(ResourceNotFoundError):  # another device deleted it meanwhile
            self.table.delete_entity(ALBUMS_PARTITION, album_key(album.name))
        members = self.members(album)
        self._delete(album, members)
        return album, len(members)

    # -- members -------------------------------------------------------------------------------------------
    def members(self, album: Album) -> list[Member]:
        out: list[Member] = []
        for page in query_pages(self.table, _partition_filter(album.partition)):
            for r in page:
                prefix, sha, rel = r.get(P_PREFIX), r.get(P_SHA256), r.get(P_RELPATH)
                if isinstance(prefix, str) and isinstance(sha, str) and isinstance(rel, str):
                    added = r.get(P_ADDED_AT)
                    out.append(Member(prefix, sha, rel, added if isinstance(added, datetime) else None,
                                      str(r.get(P_ADDED_BY, ""))))  # fmt: skip
        return sorted(out, key=lambda m: (m.prefix, m.relpath, m.sha256))

    def _count(self, album: Album) -> int:
        return sum(len(p) for p in query_pages(self.table, _partition_filter(album.partition), select=["RowKey"]))

    def add(self, album: Album, items: Iterable[Item]) -> tuple[int, int]:
        """Add ``items`` to ``album``: ``(added, already members)``. Idempotent (merge-upserts)."""
        have = {m.key for m in self.members(album)}
        now, new, already = datetime.now(UTC), {}, 0
        for item in items:
            key = member_key(item.prefix, item.sha256, item.relpath)
            if key in have:
                already += 1
                continue
            new[key] = {"PartitionKey": album.partition, "RowKey": key, P_PREFIX: normalize_prefix(item.prefix),
                        P_SHA256: item.sha256, P_RELPATH: item.relpath, P_ADDED_AT: now,
                        P_ADDED_BY: self.source_id}  # fmt: skip
        rows = list(new.values())
        for i in range(0, len(rows), table_batch.MAX_OPERATIONS):
            table_batch.submit(self.table, [("merge", e) for e in rows[i : i + table_batch.MAX_OPERATIONS]])
        found = self.find(album.name) if rows else album
        if found is None or found.album_id != album.album_id:
            raise ConfigError(f"album {album.name!r} was deleted while files were being added; create it again")
        return len(rows), already

    def remove(self, album: Album, members: Sequence[Member]) -> int:
        """Remove ``members`` from ``album`` (files are untouched); rows already gone are ignored."""
        self._delete(album, members)
        return len(members)

    def _delete(self, album: Album, members: Sequence[Member]) -> None:
        keys = sorted({m.key for m in members})
        for i in range(0, len(keys), table_batch.MAX_OPERATIONS):
            chunk = keys[i : i + table_batch.MAX_OPERATIONS]
            try:
                self.table.submit_transaction(
                    [("delete", {"PartitionKey": album.partition, "RowKey": k}) for k in chunk]
                )
            except TableTransactionError:  # one was removed meanwhile (another device): one by one
                for k in chunk:
                    with contextlib.suppress(ResourceNotFoundError):
                        self.table.delete_entity(album.partition, k)


def resolve(members: Iterable[Member], items: Iterable[Item]) -> list[Resolved]:
    """What each member stands for among the current ``items`` (see the module's docstring). A moved
    member prefers a copy of its content that no other member already stands for."""
    members = list(members)
    exact: dict[tuple[str, str, str], Item] = {}
    by_sha: dict[tuple[str, str], list[Item]] = {}
    by_path: dict[tuple[str, str], Item] = {}
    for i in sorted(items, key=lambda i: i.relpath):
        p = normalize_prefix(i.prefix)
        exact[(p, i.sha256, i.relpath)] = i
        by_sha.setdefault((p, i.sha256), []).append(i)
        by_path[(p, i.relpath)] = i
    keys = [(normalize_prefix(m.prefix), m.sha256, m.relpath) for m in members]
    claimed = {exact[k].relpath for k in keys if k in exact}
    out: list[Resolved] = []
    for m, (p, sha, rel) in zip(members, keys, strict=True):
        copies = by_sha.get((p, sha), [])
        if (item := exact.get((p, sha, rel))) is not None:
            out.append(Resolved(m, item, "current"))
        elif copies:
            item = next((c for c in copies if c.relpath not in claimed), copies[0])
            claimed.add(item.relpath)
            out.append(Resolved(m, item, "moved"))
        elif (item := by_path.get((p, rel))) is not None:
            out.append(Resolved(m, item, "edited"))
        else:
            out.append(Resolved(m, None, "gone"))
    return out


@dataclass(frozen=True, slots=True)
class AlbumPaths:
    """An album seen from one prefix: the current paths it stands for there (what a restore selects)."""

    album: Album
    paths: frozenset[str]
    elsewhere: int  # members under other prefixes (other devices)
    gone: int  # members whose file is no longer current anywhere in this prefix


def album_paths(store: AlbumStore, name: str, prefix: str, source_id: str | None = None) -> AlbumPaths:
    """The current paths under ``prefix`` that album ``name`` stands for."""
    from sync_core.derived.timeline import current_items

    album = store.get(name)
    prefix = normalize_prefix(prefix)
    members = store.members(album)
    mine = [m for m in members if normalize_prefix(m.prefix) == prefix]
    resolved = resolve(mine, current_items(store.table, prefix, source_id)) if mine else []
    paths = frozenset(r.item.relpath for r in resolved if r.item is not None)
    return AlbumPaths(album, paths, len(members) - len(mine), sum(r.item is None for r in resolved))
