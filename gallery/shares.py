"""Share links: an expiring, revocable capability for exactly one selection (an album or a path glob).

The token (``secrets.token_urlsafe(32)``: 256 bits) appears once, in the link given to the user; the table
keeps only its SHA-256, as the RowKey of a row in a reserved partition of the index table, so a copy of the
table grants nothing. The share's id (for ``share list`` / ``share revoke``) is the first 12 hex digits of
that hash. A selection is evaluated against the catalog on each request: items outside it do not exist for
the token, whatever id is asked for.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from sync_core.errors import ConfigError
from sync_core.index.table_index import SHARES_PARTITION

from .catalog import Catalog

KIND_ALBUM = "album"
KIND_PATH = "path"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SHARE_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_EXPIRY = timedelta(days=365)


class ShareNotFound(Exception):
    """No share has this token or id (404)."""


class ShareGone(Exception):
    """The share existed but expired or was revoked (410)."""


def parse_expiry(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` (at most a year): a share link always ends."""
    m = _DURATION_RE.match(text)
    if not m or int(m.group(1)) <= 0:
        raise ConfigError(f"invalid expiry {text!r}: use a number with m, h, d or w, e.g. 7d")
    delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if delta > MAX_EXPIRY:
        raise ConfigError(f"expiry {text!r} is longer than a year")
    return delta


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Share:
    share_id: str
    kind: str
    selector: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def select(self, catalog: Catalog) -> list[dict[str, Any]]:
        """The items of the selection, newest first."""
        if self.kind == KIND_ALBUM:
            return catalog.in_album(self.selector)
        return [it for it in catalog.items if fnmatch.fnmatchcase(it["n"], self.selector)]

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.share_id, "kind": self.kind, "selector": self.selector, "state": self.state(now),
            "created_at": _iso(self.created_at), "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at) if self.revoked_at else None,
        }  # fmt: skip


def _iso(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _aware(d: Any) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def _from_entity(e: dict[str, Any]) -> Share:
    revoked = e.get("RevokedAt")
    return Share(
        share_id=str(e["RowKey"])[:12], kind=str(e["Kind"]), selector=str(e["Selector"]),
        created_at=_aware(e["CreatedAt"]), expires_at=_aware(e["ExpiresAt"]),
        revoked_at=_aware(revoked) if revoked else None,
    )  # fmt: skip


def create_share(
    table: TableClient, kind: str, selector: str, expires_in: timedelta, *, now: datetime | None = None
) -> tuple[Share, str]:
    """Store a new share and return it with its token (shown once, never stored)."""
    if kind not in (KIND_ALBUM, KIND_PATH) or not selector:
        raise ConfigError("a share needs an album name or a path glob")
    now = now or datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    digest = token_hash(token)
    entity = {"PartitionKey": SHARES_PARTITION, "RowKey": digest, "Kind": kind, "Selector": selector,
              "CreatedAt": now, "ExpiresAt": now + expires_in}  # fmt: skip
    table.create_entity(entity)
    return _from_entity(entity), token


def list_shares(table: TableClient) -> list[Share]:
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": SHARES_PARTITION})
    return sorted((_from_entity(e) for e in rows), key=lambda s: s.created_at, reverse=True)


def revoke_share(table: TableClient, share_id: str, *, now: datetime | None = None) -> Share:
    if not SHARE_ID_RE.match(share_id):
        raise ShareNotFound(f"no share {share_id!r}")
    rows = list(table.query_entities(
        "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
        parameters={"pk": SHARES_PARTITION, "lo": share_id, "hi": share_id + "g"},
    ))  # fmt: skip
    if len(rows) != 1:
        raise ShareNotFound(f"no share {share_id!r}")
    table.update_entity({"PartitionKey": SHARES_PARTITION, "RowKey": rows[0]["RowKey"],
                         "RevokedAt": now or datetime.now(UTC)})  # fmt: skip (merge)
    return _from_entity({**rows[0], "RevokedAt": now or datetime.now(UTC)})


def resolve(table: TableClient, token: str, *, now: datetime | None = None) -> Share:
    """The active share of ``token``: :class:`ShareNotFound` for an unknown or malformed token,
    :class:`ShareGone` once it expired or was revoked."""
    if not TOKEN_RE.match(token):
        raise ShareNotFound("no such share")
    try:
        entity = table.get_entity(SHARES_PARTITION, token_hash(token))
    except ResourceNotFoundError as exc:
        raise ShareNotFound("no such share") from exc
    share = _from_entity(entity)
    if share.state(now or datetime.now(UTC)) != "active":
        raise ShareGone("this share link has expired or was revoked")
    return share
