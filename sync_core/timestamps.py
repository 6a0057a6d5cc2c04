"""Numbers read from a file, a blob's metadata or a Table row, checked before they reach SQLite or the OS.

SQLite and the Table's ``Edm.Int64`` hold signed 64-bit integers, so a nanosecond mtime fits only between
1677-09-21 and 2262-04-11, while a filesystem (a 64-bit ``time_t``) can hold any second of ±2^63. Such a
file is backed up all the same: its blob metadata keeps the true mtime, and the index keeps the nearest
value it can hold (:func:`index_int`). A value written by another tool is checked by :func:`row_mtime_ns`
and :func:`row_size`, so one absurd row is rejected on its own instead of stopping a restore or a rebuild.
"""

from __future__ import annotations

from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
NS = 1_000_000_000
MTIME_NS_MIN = INT64_MIN * NS  # what os.utime accepts: a 64-bit time_t, in nanoseconds
MTIME_NS_MAX = INT64_MAX * NS + NS - 1


def index_int(value: int) -> int:
    """``value`` clamped to what SQLite and ``Edm.Int64`` can store (out of range only for mtimes before
    1677 or after 2262, and inode numbers of 2^63 and above)."""
    return INT64_MIN if value < INT64_MIN else INT64_MAX if value > INT64_MAX else value


def _integer(value: Any, what: str) -> int:
    """An exact integer from an int, an integral float (a Double written by another tool) or a decimal
    string; ``ValueError`` naming ``what`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{what} is not a number")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{what} is not a whole number")
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not a number") from exc


def row_size(value: Any) -> int:
    """A size from a row or metadata: a whole number of bytes the index can hold."""
    n = _integer(value, "size")
    if not 0 <= n <= INT64_MAX:
        raise ValueError(f"size {n} is out of range")
    return n


def row_mtime_ns(value: Any) -> int:
    """An mtime (ns since 1970, negative before) from a row or metadata, within what the OS can set."""
    n = _integer(value, "mtime")
    if not MTIME_NS_MIN <= n <= MTIME_NS_MAX:
        raise ValueError(f"mtime {n} is out of range")
    return n
