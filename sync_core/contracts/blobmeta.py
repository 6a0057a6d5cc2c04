"""The blob-metadata contract: enough to rebuild an index row from the blob alone.

Azure metadata is ASCII-only and keys must be C# identifiers, so the relative path is percent-encoded
UTF-8. Every value is a plain string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

SCHEMA = "1"

K_SHA256 = "sha256"
K_RELPATH = "relpath"
K_SIZE = "size"
K_MTIME_NS = "mtimens"
K_SOURCE_ID = "sourceid"
K_SCHEMA = "azpsschema"
K_RCLONE_MTIME = "mtime"  # rclone's key: `rclone copy` from the archive restores the original times

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def normalize_etag(etag: str) -> str:
    """ETags as blob listings report them (unquoted); write responses quote them. One form everywhere: in
    SQLite, in the index rows (``BlobEtag``) and in every comparison."""
    return etag.strip('"')


@dataclass(frozen=True, slots=True)
class BlobMeta:
    sha256: str
    relpath: str
    size: int
    mtime_ns: int
    source_id: str


def encode_relpath(relpath: str) -> str:
    """Percent-encode a path as UTF-8, keeping ``/`` readable."""
    return quote(relpath, safe="/")


def rfc3339_ns(mtime_ns: int) -> str | None:
    """``mtime_ns`` as rclone writes its ``mtime`` key: RFC 3339 with nanoseconds (UTC, ``Z``); ``None``
    for a time outside years 1-9999, which RFC 3339 cannot write."""
    secs, ns = divmod(mtime_ns, 1_000_000_000)
    try:
        t = _EPOCH + timedelta(seconds=secs)
    except OverflowError:
        return None
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}.{ns:09d}Z"


def build_metadata(meta: BlobMeta) -> dict[str, str]:
    """Metadata dict to send with a blob (ours, plus rclone's ``mtime`` when the time can be written)."""
    md = {
        K_SHA256: meta.sha256,
        K_RELPATH: encode_relpath(meta.relpath),
        K_SIZE: str(meta.size),
        K_MTIME_NS: str(meta.mtime_ns),
        K_SOURCE_ID: quote(meta.source_id, safe=""),
        K_SCHEMA: SCHEMA,
    }
    rclone_mtime = rfc3339_ns(meta.mtime_ns)
    if rclone_mtime is not None:
        md[K_RCLONE_MTIME] = rclone_mtime
    return md


def parse_metadata(md: dict[str, str] | None) -> BlobMeta | None:
    """Read our metadata back (keys are case-insensitive on the wire); ``None`` if incomplete or invalid."""
    if not md:
        return None
    low = {k.lower(): v for k, v in md.items()}
    try:
        return BlobMeta(
            sha256=low[K_SHA256],
            relpath=unquote(low[K_RELPATH], errors="strict"),
            size=int(low[K_SIZE]),
            mtime_ns=int(low[K_MTIME_NS]),
            source_id=unquote(low[K_SOURCE_ID], errors="strict"),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
