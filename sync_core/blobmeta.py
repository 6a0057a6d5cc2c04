"""The blob-metadata contract: enough to rebuild an index row from the blob alone.

Azure metadata is ASCII-only and keys must be C# identifiers, so the relative path is percent-encoded
UTF-8. Every value is a plain string.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

SCHEMA = "1"

K_SHA256 = "sha256"
K_RELPATH = "relpath"
K_SIZE = "size"
K_MTIME_NS = "mtimens"
K_SOURCE_ID = "sourceid"
K_SCHEMA = "azpsschema"


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


def build_metadata(meta: BlobMeta) -> dict[str, str]:
    """Metadata dict to send with a blob."""
    return {
        K_SHA256: meta.sha256,
        K_RELPATH: encode_relpath(meta.relpath),
        K_SIZE: str(meta.size),
        K_MTIME_NS: str(meta.mtime_ns),
        K_SOURCE_ID: quote(meta.source_id, safe=""),
        K_SCHEMA: SCHEMA,
    }


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
