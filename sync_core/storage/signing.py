"""Shared Key signing of Blob requests at a fraction of the SDK's client CPU, byte for byte the same.

The storage SDK's ``SharedKeyCredentialPolicy`` orders the ``x-ms-*`` headers of the string to sign with a
comparison function run through ``cmp_to_key`` (the service's canonical order: a two-level collation), so
every request pays dozens of Python-level comparisons; it also walks the headers twice, parses the URL twice
and decodes the account key on every request. :class:`HeaderOrder` turns the same collation into one
string per header name, made once and kept, whose plain ``<`` gives the service's order, and
:func:`split_headers` and :func:`split_url` build the rest of the string in one pass each.

Nothing here knows the SDK's private names: :mod:`~sync_core.storage.sdk_internals` hands in the SDK's
weight tables, checks at import that the result matches the SDK's own policy, and installs the policy.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlparse

# The standard headers of the string to sign, in its order (the SDK's list, ``byte_range`` included).
SIGNED_HEADERS: tuple[str, ...] = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "byte_range",
)

_END = 1  # the collation's weight for "past the end of the name"
_MAX_KEYS = 4096  # header names whose keys are kept; more (endless distinct metadata names) starts afresh


class _Keys(dict[str, str]):
    """Sort keys by name, made on first use; a bounded number (endless distinct metadata names start afresh)."""

    def __init__(self, make: Callable[[str], str]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, name: str) -> str:
        key = self._make(name)
        if len(self) >= _MAX_KEYS:
            self.clear()
        self[name] = key
        return key


class HeaderOrder:
    """The service's order of header names as sort keys: ``sorted(names, key=order.key)`` gives what the SDK's
    ``cmp_to_key(compare)`` sort gives, stable ties included.

    The collation compares the names' primary weights with the zero-weight characters skipped (a name that is
    a prefix of the other comes first), then, for equal primaries, position by position the secondary weights,
    where "any other character" (0) < end of name (1) < ``'`` < ``-``. A key is the primary weights as
    characters, a NUL (below every primary weight, so a prefix sorts first), then the secondary weights and
    the end mark: string comparison is then the collation."""

    __slots__ = ("_primary", "_secondary", "key")

    def __init__(self, primary: Sequence[int], secondary: Sequence[int]) -> None:
        weights = [*primary, *secondary]
        if len(primary) != len(secondary) or _END in weights or not all(0 <= w < 0x110000 for w in weights):
            raise ValueError("not a collation this key can express")
        self._primary = tuple(chr(w) if w else "" for w in primary)
        self._secondary = tuple(chr(w) for w in secondary)
        # The sort key of a name (``IndexError`` for a character outside the tables, where the SDK fails too):
        # a dict lookup, computed on a miss, so sorting calls no Python function for a name seen before.
        self.key: Callable[[str], str] = _Keys(self._make_key).__getitem__

    def _make_key(self, name: str) -> str:
        primary, secondary = self._primary, self._secondary
        codes = [ord(c) for c in name]
        return "".join([primary[c] for c in codes]) + "\0" + "".join([secondary[c] for c in codes]) + "\1"

    def canonical_headers(self, headers: Sequence[tuple[str, Any]]) -> str | None:
        """The canonicalized ``x-ms-*`` headers (lower-cased names and their values) of the string to sign, or
        ``None`` when the SDK's own code must decide: a name given twice or a character outside the tables
        (where the SDK raises, or does not, by its own rules)."""
        values = dict(headers)
        if len(values) != len(headers):
            return None
        try:
            names = sorted(values, key=self.key)
        except IndexError:
            return None
        return "".join([name + ":" + value + "\n" for name in names if (value := values[name]) is not None])


def split_headers(entries: Iterable[tuple[str, tuple[str, Any]]]) -> tuple[str, list[tuple[str, Any]]]:
    """The standard-headers part of the string to sign (from its second line on) and the ``x-ms-*`` headers
    (only names given in lower case at the start, lower-cased, as the SDK takes them), in one pass over
    ``entries``: each header as ``(lower-cased name, (name, value))``, the shape azure-core keeps them in."""
    present: dict[str, Any] = {}
    ms: list[tuple[str, Any]] = []
    for low, (name, value) in entries:
        if value:
            present[low] = value
        if name.startswith("x-ms-"):
            ms.append((low, value))
    if present.get("content-length") == "0":
        del present["content-length"]
    return "\n".join([present.get(name, "") for name in SIGNED_HEADERS]) + "\n", ms


def split_url(url: str) -> tuple[str, str]:
    """The URL's path (``urlparse``'s, as the SDK takes it for the canonicalized resource) and its canonicalized
    query: azure-core's ``HttpRequest.query`` (the last of a repeated name wins), sorted by name as given, each
    name lower-cased and its value unquoted."""
    parsed = urlparse(url)
    if not parsed.query:
        return parsed.path, ""
    params = {p[0]: p[-1] for p in [p.partition("=") for p in parsed.query.split("&")]}
    return parsed.path, "".join(["\n" + name.lower() + ":" + unquote(value) for name, value in sorted(params.items())])


def decode_key(account_key: str | bytes) -> bytes:
    """The account key's bytes, decoded as the SDK's ``sign_string`` decodes it (``binascii.Error`` if not
    base64)."""
    return base64.b64decode(account_key.encode("utf-8") if isinstance(account_key, str) else account_key)


def signature(key: bytes, text: str) -> str:
    """Base64 HMAC-SHA256 of ``text`` under ``key``, as the SDK's ``sign_string``."""
    return base64.b64encode(hmac.digest(key, text.encode("utf-8"), "sha256")).decode("utf-8")
