"""Byte sizes people type (``500MB``, ``2GiB``, ``0``), parsed by ``humanfriendly`` rather than by hand.

Decimal units are powers of 1000 and binary units (``KiB``, ``MiB``, ``GiB``…) powers of 1024, as on the
labels of disks and in Azure's pricing. Anything else is a :class:`~sync_core.errors.ConfigError`.
"""

from __future__ import annotations

import re

import humanfriendly

from sync_core.errors import ConfigError

# humanfriendly reads "2 parsecs" as 2 bytes; accept only a number and a known unit.
_SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*([kmgtpe]i?b?|b|bytes?)?$", re.IGNORECASE)


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Bytes in ``text``; ``what`` names the setting in the error message."""
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"invalid {what} {text}: must not be negative")
        return text
    try:
        if not _SIZE_RE.match(text.strip()):
            raise ValueError(text)
        value = int(humanfriendly.parse_size(text.strip()))
    except (humanfriendly.InvalidSize, ValueError, AttributeError) as exc:
        raise ConfigError(f"invalid {what} {text!r}: use a byte count like 500MB, 2GiB or 0") from exc
    if value < 0:
        raise ConfigError(f"invalid {what} {text!r}: must not be negative")
    return value


def format_size(n: int) -> str:
    """Binary units, as the deep-verify budget is usually given (``2 GiB``)."""
    return humanfriendly.format_size(n, binary=True)
