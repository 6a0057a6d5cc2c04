"""The blob-name contract: ``<prefix>/<sha[0:2]>/<sha256>/<name path>``.

The name path is the relative path exactly as on disk (``/`` separators, no case folding, no Unicode
normalisation) whenever the service can store it as it is, which is every name seen in practice. A path
the service would alter or refuse is stored under an invertible encoding instead of being refused (a
refused file is an unprotected photo); its true name lives in the blob metadata and the index.

The encoding (modelled on rclone's ``lib/encoder``, with an escape that keeps every storable name
unchanged): each unstorable character becomes the quote ``‛`` (U+201B) followed by a look-alike —

* ``\\`` → ``‛＼`` (U+FF3C), C0 controls U+0001–U+001F → ``‛`` + U+2401–U+241F, DEL → ``‛␡`` (U+2421),
  C1 controls U+0080–U+009F → ``‛`` + U+2460–U+247F, U+FFFE/U+FFFF → ``‛`` + U+FFFC/U+FFFD;
* a ``.`` ending a segment (which the service drops) → ``‛．`` (U+FF0E); a segment ending with a space is
  stored as it is (the service keeps it);
* a literal ``‛`` is doubled only where it is followed by a look-alike, by ``‛`` or by ``~`` (where a
  decoder would otherwise misread it), so a name holding ``‛`` elsewhere is unchanged too.

A name path longer than the service's 1,024-character limit allows (in UTF-16 code units, as the service
counts) is cut at a character boundary and ends with ``‛~`` and the first 32 hex digits of the SHA-256 of the
true path (UTF-8): unique per path, but not invertible, so its true name comes from the metadata.
"""

from __future__ import annotations

import functools
import hashlib
import re

from sync_core.errors import UnstorableNameError

MAX_BLOB_NAME = 1024  # UTF-16 code units, the service limit
QUOTE = "\u201b"
LONG_MARK = QUOTE + "~"
_LONG_HASH_HEX = 32
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# C0/C1 controls and U+FFFE/U+FFFF cannot travel in the service's XML listings.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_NEEDS_ENCODING_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff\\]|\.(?:/|$)|\u201b")


def _table() -> dict[str, str]:
    t = {"\\": "\uff3c", "\x7f": "\u2421", "\ufffe": "\ufffc", "\uffff": "\ufffd"}
    t.update({chr(c): chr(0x2400 + c) for c in range(0x00, 0x20)})
    t.update({chr(c): chr(0x2460 + c - 0x80) for c in range(0x80, 0xA0)})
    return t


_LOOKALIKE = _table()  # anywhere in a segment
_TRAILING = {".": "\uff0e"}  # only as the last character of a segment
_DECODE = {v: k for k, v in (_LOOKALIKE | _TRAILING).items()} | {QUOTE: QUOTE}
_ESCAPED_AFTER_QUOTE = frozenset(_DECODE) | {"~"}  # what a literal quote may not be followed by unescaped


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
    """Raise :class:`UnstorableNameError` when ``relpath`` is no relative path of a file (the scanner never
    yields one) or its bytes are not UTF-8, which neither the metadata nor the index can carry."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnstorableNameError("name is not valid UTF-8; rename the file to back it up") from exc
    for seg in relpath.split("/"):
        if seg in ("", ".", ".."):
            raise UnstorableNameError("path has an empty, '.' or '..' segment")


def _segment_tokens(seg: str) -> list[str]:
    """The encoded segment as tokens (a character or a quote pair), so that a cut never splits a pair."""
    out: list[str] = []
    last = len(seg) - 1
    for i, ch in enumerate(seg):
        if ch in _LOOKALIKE:
            out.append(QUOTE + _LOOKALIKE[ch])
        elif i == last and ch in _TRAILING:
            out.append(QUOTE + _TRAILING[ch])
        elif ch == QUOTE:
            nxt = seg[i + 1] if i < last else ""
            follows_pair = nxt in _LOOKALIKE or (i + 1 == last and nxt in _TRAILING)
            out.append(QUOTE + QUOTE if follows_pair or nxt in _ESCAPED_AFTER_QUOTE else QUOTE)
        else:
            out.append(ch)
    return out


def _utf16_len(text: str) -> int:
    """Length as the service counts it: a character outside the BMP (an emoji) counts twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def encode_path(relpath: str, room: int = MAX_BLOB_NAME) -> str:
    """The name path stored for ``relpath`` when at most ``room`` UTF-16 units are left for it; the identity
    for every path the service stores as it is and that fits."""
    if not _NEEDS_ENCODING_RE.search(relpath) and _utf16_len(relpath) <= room:
        return relpath
    tokens: list[str] = []
    for seg in relpath.split("/"):
        if tokens:
            tokens.append("/")
        tokens.extend(_segment_tokens(seg))
    encoded = "".join(tokens)
    if _utf16_len(encoded) <= room:
        return encoded
    digest = hashlib.sha256(relpath.encode("utf-8")).hexdigest()[:_LONG_HASH_HEX]
    budget = room - len(LONG_MARK) - _LONG_HASH_HEX
    kept: list[str] = []
    for tok in tokens:
        budget -= _utf16_len(tok)
        if budget < 0:
            break
        kept.append(tok)
    return "".join(kept) + LONG_MARK + digest


def decode_path(name_path: str) -> str | None:
    """The true path behind a stored name path; ``None`` for a shortened one (the metadata has it)."""
    if QUOTE not in name_path:
        return name_path
    out: list[str] = []
    i, n = 0, len(name_path)
    while i < n:
        ch = name_path[i]
        nxt = name_path[i + 1] if i + 1 < n else ""
        if ch == QUOTE and nxt == "~":
            return None
        if ch == QUOTE and nxt in _DECODE:
            out.append(_DECODE[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def blob_name(prefix: str, sha256: str, relpath: str) -> str:
    """The contract name of the blob holding ``relpath`` whose content hashes to ``sha256``."""
    if not _SHA_RE.match(sha256):
        raise ValueError(f"not a lower-case hex SHA-256: {sha256!r}")
    check_relpath(relpath)
    head = f"{normalize_prefix(prefix)}/{sha256[:2]}/{sha256}/"
    return head + encode_path(relpath, MAX_BLOB_NAME - len(head))


def is_name_of(prefix: str, name: str, sha256: str, relpath: str) -> bool:
    """True when ``name`` is the contract name of ``relpath`` with content ``sha256`` (how a row or the
    metadata is checked against its blob: the name is a function of both, not always invertible)."""
    try:
        return blob_name(prefix, sha256, relpath) == name
    except (ValueError, UnstorableNameError):
        return False


def parse_blob_name(prefix: str, name: str) -> tuple[str, str]:
    """Split a contract blob name into ``(sha256, name path)`` — the stored form; :func:`decode_path` gives
    the true path when the name holds it. ``ValueError`` when the name does not fit the contract."""
    head = normalize_prefix(prefix) + "/"
    if not name.startswith(head):
        raise ValueError(f"{name!r} is not under prefix {head!r}")
    parts = name[len(head) :].split("/", 2)
    if len(parts) != 3 or not _SHA_RE.match(parts[1]) or parts[0] != parts[1][:2] or not parts[2]:
        raise ValueError(f"{name!r} does not follow <prefix>/<xx>/<sha256>/<path>")
    return parts[1], parts[2]


def prefix_of(name: str, sha256: str) -> str:
    """The prefix a contract blob name holding ``sha256`` was written under (it may differ from today's
    ``--prefix``). ``ValueError`` when the name does not fit the contract."""
    i = name.find(f"/{sha256[:2]}/{sha256}/")
    if i <= 0 or parse_blob_name(name[:i], name)[0] != sha256:
        raise ValueError(f"{name!r} does not follow <prefix>/<xx>/<sha256>/<path>")
    return name[:i]


def listing_prefix(prefix: str, shard: str = "") -> str:
    """The listing prefix of every blob under ``prefix`` (``<prefix>/``), or of one shard's blobs
    (``<prefix>/<xx>/``, ``shard`` being the first two hex digits of their SHA-256)."""
    head = normalize_prefix(prefix) + "/"
    return f"{head}{shard}/" if shard else head
