"""The Azure Table index contract: one entity per blob ever written.

* ``PartitionKey`` = the encoded blob-listing prefix ``<prefix>/<xx>`` (``xx`` = first two hex digits of
  the SHA-256). Verifying a partition therefore costs one paged blob listing of ``<prefix>/<xx>/`` plus one
  partition query — never a request per blob.
* ``RowKey`` = the encoded rest of the blob name, ``<sha256>/<relpath>``; when that would exceed the
  service's key size, ``<sha256>/~<sha256 of the relpath>`` (the full name is always in ``BlobName``).

Both keys are deterministic functions of the blob name. Table keys may not contain ``/ \\ # ?`` or control
characters: those (and ``%`` itself) are percent-encoded as UTF-8, which keeps keys readable and unique.

One more entity, in its own partition (:data:`BINDING_PARTITION`), binds the table to the one container
it indexes (rows of two containers would share keys whenever their prefixes are equal).

Properties written by the agent: ``BlobName RelPath Size MtimeNs Sha256 BlobEtag SourceId IsCurrent
UploadedAt DeletedAt CaptureTime CameraModel``. Properties written by the cloud verifier (the agent never
sends them in its mirror, so a merge keeps them): ``VerifyStatus LastVerified LastDeepVerified VerifyDetail``;
the agent's repair step only clears a damage verdict by writing ``VerifyStatus = reuploaded`` plus a detail.
Properties written by the renditions step (cloud or ``azphotosync thumbnails``; merged, never sent by the
mirror): ``PixelWidth PixelHeight DurationSeconds RenditionState RenditionDetail RenditionsAt``.
"""

from __future__ import annotations

import functools
import hashlib
import re

from sync_core.contracts.blobname import normalize_prefix, parse_blob_name

# The binding entity: which account and container this table indexes. Its PartitionKey holds no encoded
# "/" (every row's key ends "%2F<xx>"), so no prefix can produce it, and prefix discovery steps over it.
BINDING_PARTITION = "%~binding"  # a reserved partition (see RESERVED_MARK below)
BINDING_ROW = "binding"
P_BOUND_ACCOUNT = "Account"
P_BOUND_CONTAINER = "Container"

MAX_KEY_BYTES = 1024  # service limit, counted in UTF-16 bytes to be safe
# Also the lone surrogates that stand for undecodable (non-UTF-8) bytes of a POSIX file name.
_FORBIDDEN = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f\udc80-\udcff]")
_OTHER_FORBIDDEN = re.compile(r"[\\#?\x00-\x1f\x7f-\x9f\udc80-\udcff]")  # all but % and /

# Agent-written properties
P_BLOB_NAME = "BlobName"
P_RELPATH = "RelPath"
P_SIZE = "Size"
P_MTIME_NS = "MtimeNs"
P_SHA256 = "Sha256"
P_BLOB_ETAG = "BlobEtag"
P_SOURCE_ID = "SourceId"
P_IS_CURRENT = "IsCurrent"
P_UPLOADED_AT = "UploadedAt"
P_DELETED_AT = "DeletedAt"
P_CAPTURE_TIME = "CaptureTime"
P_CAMERA_MODEL = "CameraModel"
# Cloud-written properties
P_VERIFY_STATUS = "VerifyStatus"
P_LAST_VERIFIED = "LastVerified"
P_LAST_DEEP_VERIFIED = "LastDeepVerified"
P_VERIFY_DETAIL = "VerifyDetail"
# Facts of the renditions step (sync_core.derived): the original's display size (orientation applied), a
# video's duration, and whether its renditions were made or why they could not be.
P_PIXEL_WIDTH = "PixelWidth"
P_PIXEL_HEIGHT = "PixelHeight"
P_DURATION = "DurationSeconds"
P_RENDITION_STATE = "RenditionState"
P_RENDITION_DETAIL = "RenditionDetail"
P_RENDITIONS_AT = "RenditionsAt"
RENDITION_MADE = "made"
RENDITION_FAILED = "failed"

# The values of VerifyStatus: sync_core.verify.verdicts.


def _enc(m: re.Match[str]) -> str:
    return "".join(f"%{b:02X}" for b in m.group(0).encode("utf-8", "surrogateescape"))


def encode_key(text: str) -> str:
    """Percent-encode the characters Table keys forbid (and ``%``), as UTF-8 bytes.

    Same result as one substitution of :data:`_FORBIDDEN`; ``%`` first, ``/`` (in every row key) by a plain
    replace: a key is encoded for every row the mirror writes."""
    text = text.replace("%", "%25")
    if _OTHER_FORBIDDEN.search(text):
        text = _OTHER_FORBIDDEN.sub(_enc, text)
    return text.replace("/", "%2F")


def _fits(key: str) -> bool:
    return len(key.encode("utf-16-le", "surrogatepass")) <= MAX_KEY_BYTES


def partition_key(prefix: str, sha256: str) -> str:
    return _partition_key(prefix, sha256[:2])


@functools.lru_cache(maxsize=4096)
def _partition_key(prefix: str, shard: str) -> str:  # 256 per prefix: computed once each
    return encode_key(f"{normalize_prefix(prefix)}/{shard}")


def all_shards() -> list[str]:
    return [f"{i:02x}" for i in range(256)]


def row_key(sha256: str, relpath: str) -> str:
    key = encode_key(f"{sha256}/{relpath}")
    if _fits(key):
        return key
    return f"{sha256}/~{hashlib.sha256(relpath.encode('utf-8', 'surrogateescape')).hexdigest()}".replace("/", "%2F")


def keys_for_blob(prefix: str, name: str) -> tuple[str, str]:
    """``(PartitionKey, RowKey)`` for a contract blob name under ``prefix``."""
    sha, rel = parse_blob_name(prefix, name)
    return partition_key(prefix, sha), row_key(sha, rel)


# -- reserved partitions: the table's binding, albums, shares ---------------------------------------------
# Everything that is not an index row lives in the same table, in partitions no blob prefix can produce: in
# an encoded key a raw ``%`` is always followed by two upper-case hex digits, so a key that starts with ``%~``
# is never an index partition, never inside one prefix's key range (verification's range queries), and all of
# them sort together, so a skip-scan over index partitions steps over them in one query (``gt RESERVED_END``).
RESERVED_MARK = "%~"
RESERVED_END = "%~~"  # above every reserved partition key: they continue with [0-9a-z-] only
ALBUMS_PARTITION = "%~albums"  # one row per user album, RowKey = album_key(name)
SHARES_PARTITION = "%~shares"  # one row per gallery share link, RowKey = the SHA-256 of its token
_ALBUM_ID = re.compile(r"^[0-9a-f]{32}$")


def is_reserved_partition(pk: str) -> bool:
    return pk.startswith(RESERVED_MARK)


def album_partition(album_id: str) -> str:
    """The partition holding one album's members (``album_id``: 32 hex digits, drawn when it is created, so
    a deleted and re-created album never sees the members of its predecessor)."""
    if not _ALBUM_ID.match(album_id):
        raise ValueError(f"not an album id: {album_id!r}")
    return f"%~album-{album_id}"


def album_key(name: str) -> str:
    """The RowKey of an album's definition: its (already validated) name, key-encoded."""
    key = encode_key(name)
    if not _fits(key):
        raise ValueError("album name too long for a table key")
    return key


def member_key(prefix: str, sha256: str, relpath: str) -> str:
    """The RowKey of an album member: the encoded ``<prefix>/<sha256>/<relpath>`` (the index row's key, with
    its prefix), or a hash of it when that would pass the key size."""
    key = f"{encode_key(normalize_prefix(prefix))}%2F{row_key(sha256, relpath)}"
    if _fits(key):
        return key
    whole = f"{normalize_prefix(prefix)}/{sha256}/{relpath}".encode("utf-8", "surrogateescape")
    return f"~{hashlib.sha256(whole).hexdigest()}"
