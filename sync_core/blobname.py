"""The blob-name contract: ``<prefix>/<sha[0:2]>/<sha256>/<relative/path/from/source>``.

The relative path is kept exactly as on disk (``/`` separators, no case folding, no Unicode
normalisation) so that a restore recreates the same name. A path the service cannot store exactly is
rejected with :class:`UnstorableNameError` rather than altered.
"""

from __future__ import annotations

import functools
import re

from .errors import UnstorableNameError

MAX_BLOB_NAME = 1024  # characters, the service limit
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# C0/C1 controls and U+FFFE/U+FFFF cannot travel in the service's XML listings.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")


@functools.lru_cache(maxsize=256)
def normalize_prefix(prefix: str) -> str:
    """Strip surrounding slashes; the prefix may contain inner ``/`` but no empty or dot segments."""
    p = prefix.strip("/")
    if not p:
        raise UnstorableNameError("the blob prefix must not be empty")
    for seg in p.split("/"):
        if seg in ("", ".", "..") or _CONTROL_RE.search(seg):
            raise UnstorableNameError(f"invalid blob prefix {prefix!r}: use plain segments separated by '/'")
    return p


def check_relpath(relpath: str) -> None:
    """Raise :class:`UnstorableNameError` when ``relpath`` cannot become part of a blob name unchanged."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableNameError("name is not valid UTF-8; rename the file to back it up") from None
    if _CONTROL_RE.search(relpath):
        raise UnstorableNameError("name contains control characters; rename the file to back it up")
    if "\\" in relpath:
        # The service treats '\' as '/'; the name would not round-trip.
        raise UnstorableNameError("name contains a backslash, which Azure turns into '/'; rename the file")
    for seg in relpath.split("/"):
        if seg in ("", ".", ".."):
            raise UnstorableNameError("path has an empty, '.' or '..' segment")
        if seg.endswith("."):
            # Azure drops trailing dots of path segments, so the name would change.
            raise UnstorableNameError("a path segment ends with '.', which Azure drops; rename it")


def blob_name(prefix: str, sha256: str, relpath: str) -> str:
    """The contract name of the blob holding ``relpath`` whose content hashes to ``sha256``."""
    if not _SHA_RE.match(sha256):
        raise ValueError(f"not a lower-case hex SHA-256: {sha256!r}")
    check_relpath(relpath)
    name = f"{normalize_prefix(prefix)}/{sha256[:2]}/{sha256}/{relpath}"
    if len(name) > MAX_BLOB_NAME:
        raise UnstorableNameError(
            f"blob name would be {len(name)} characters (limit {MAX_BLOB_NAME}); shorten the path"
        )
    return name


def shard_prefix(prefix: str, sha256_or_shard: str) -> str:
    """The listing prefix ``<prefix>/<xx>/`` that holds every blob whose SHA-256 starts with ``xx``."""
    return f"{normalize_prefix(prefix)}/{sha256_or_shard[:2]}/"


def parse_blob_name(prefix: str, name: str) -> tuple[str, str]:
    """Split a contract blob name into ``(sha256, relpath)``; ``ValueError`` when it does not fit."""
    head = normalize_prefix(prefix) + "/"
    if not name.startswith(head):
        raise ValueError(f"{name!r} is not under prefix {head!r}")
    parts = name[len(head) :].split("/", 2)
    if len(parts) != 3 or not _SHA_RE.match(parts[1]) or parts[0] != parts[1][:2] or not parts[2]:
        raise ValueError(f"{name!r} does not follow <prefix>/<xx>/<sha256>/<path>")
    return parts[1], parts[2]
