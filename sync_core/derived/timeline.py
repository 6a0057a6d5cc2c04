"""The archive's current items, and the timeline: every item by the date it was taken, by year and month.

An item is one current index row (the Table is the shared catalog: every device sees the same items). Its
date is the capture time recorded at backup (EXIF ``DateTimeOriginal`` as the camera wrote it, its local
wall clock; QuickTime times are UTC and shown in the viewer's time zone). A file without one is dated by
its modification time in the viewer's zone, and says so (``source = "mtime"``): a scan or a screenshot has
no capture date, and a person should see why it sits where it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

from azure.data.tables import TableClient

from sync_core.contracts.blobname import normalize_prefix
from sync_core.index.table_index import (
    P_BLOB_NAME,
    P_CAMERA_MODEL,
    P_CAPTURE_TIME,
    P_MTIME_NS,
    P_RELPATH,
    P_SHA256,
    P_SIZE,
)

DateSource = Literal["capture", "mtime"]


@dataclass(frozen=True, slots=True)
class Item:
    """One current file of the archive, as its index row describes it."""

    prefix: str
    relpath: str
    sha256: str
    blob_name: str
    size: int
    mtime_ns: int
    capture_time: str | None = None
    camera_model: str | None = None

    @property
    def folder(self) -> str:
        """The directory of the source tree holding it (``""``: the library root)."""
        return self.relpath.rpartition("/")[0]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def item_from_row(prefix: str, row: dict[str, Any]) -> Item | None:
    """The item of a plain index row, or ``None`` for a row that lacks its path or hash (another tool's)."""
    rel, sha = row.get(P_RELPATH), row.get(P_SHA256)
    if not isinstance(rel, str) or not isinstance(sha, str) or not rel:
        return None
    capture, model = row.get(P_CAPTURE_TIME), row.get(P_CAMERA_MODEL)
    blob = row.get(P_BLOB_NAME)
    return Item(
        prefix, rel, sha, blob if isinstance(blob, str) else "", _int(row.get(P_SIZE)), _int(row.get(P_MTIME_NS)),
        capture if isinstance(capture, str) and capture else None, model if isinstance(model, str) else None,
    )  # fmt: skip


def current_items(table: TableClient, prefix: str, source_id: str | None = None) -> Iterator[Item]:
    """Every current item under ``prefix`` (of ``source_id`` when given), from the index table."""
    from sync_core.index.table_mirror import prefix_rows

    prefix = normalize_prefix(prefix)
    for row in prefix_rows(table, prefix, source_id, extra="IsCurrent eq true"):
        item = item_from_row(prefix, row)
        if item is not None:
            yield item


# -- dates -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dated:
    item: Item
    when: datetime  # naive wall-clock time
    source: DateSource  # "mtime": no usable capture time was recorded

    def to_dict(self) -> dict[str, Any]:
        i = self.item
        return {"path": i.relpath, "sha256": i.sha256, "size": i.size, "taken": self.when.isoformat(),
                "date_source": self.source, "camera": i.camera_model}  # fmt: skip


def taken(item: Item, tz: tzinfo | None = None) -> Dated:
    """When ``item`` was taken (``tz``: the viewer's zone, default this machine's)."""
    if item.capture_time:
        try:
            when = datetime.fromisoformat(item.capture_time)
        except ValueError:
            pass  # another tool's text: dated by mtime instead, and flagged as such
        else:
            if when.tzinfo is not None and item.capture_time.endswith("Z"):
                when = when.astimezone(tz)  # QuickTime UTC: the viewer's clock
            return Dated(item, when.replace(tzinfo=None), "capture")
    seconds, ns = divmod(item.mtime_ns, 1_000_000_000)
    when = datetime.fromtimestamp(seconds, tz) + timedelta(microseconds=ns // 1000)
    return Dated(item, when.replace(tzinfo=None), "mtime")


@dataclass
class Month:
    year: int
    month: int
    items: list[Dated] = field(default_factory=list)

    @property
    def by_mtime(self) -> int:
        return sum(d.source == "mtime" for d in self.items)

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"year": self.year, "month": self.month, "count": len(self.items),
                             "dated_by_mtime": self.by_mtime}  # fmt: skip
        if items:
            d["items"] = [x.to_dict() for x in self.items]
        return d


@dataclass
class Year:
    year: int
    months: list[Month] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(len(m.items) for m in self.months)


def timeline(items: Iterable[Item], tz: tzinfo | None = None, *, newest_first: bool = True) -> list[Year]:
    """Every item by the date it was taken, grouped by year and month (newest first by default; items of
    the same instant by path)."""
    dated = sorted((taken(i, tz) for i in items), key=lambda d: (d.when, d.item.relpath), reverse=newest_first)
    years: list[Year] = []
    for d in dated:
        if not years or years[-1].year != d.when.year:
            years.append(Year(d.when.year))
        months = years[-1].months
        if not months or months[-1].month != d.when.month:
            months.append(Month(d.when.year, d.when.month))
        months[-1].items.append(d)
    return years


# -- date ranges (``--taken FROM..TO``) ---------------------------------------------------------------------
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _period(text: str) -> tuple[datetime, datetime]:
    """The start and the (exclusive) end of a year ``YYYY``, a month ``YYYY-MM`` or a day ``YYYY-MM-DD``."""
    m = _DATE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a date: use YYYY, YYYY-MM or YYYY-MM-DD")
    y, mo, d = int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1)
    try:
        start = datetime(y, mo, d)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date: {exc}") from exc
    if m.group(3):
        return start, start + timedelta(days=1)
    if m.group(2):
        return start, datetime(y + (mo == 12), mo % 12 + 1, 1)
    return start, datetime(y + 1, 1, 1)


@dataclass(frozen=True, slots=True)
class TakenRange:
    """``FROM..TO`` with whole periods at both ends, both included; either end may be left open
    (``2024..``, ``..2023-06``); a single period (``2024-07``) is that period."""

    start: datetime | None
    end: datetime | None  # exclusive
    text: str

    @classmethod
    def parse(cls, text: str) -> TakenRange:
        lo, sep, hi = text.partition("..")
        if not sep:
            start, end = _period(lo)
            return cls(start, end, text)
        if not lo.strip() and not hi.strip():
            raise ValueError(f"{text!r}: give at least one end of the range, e.g. 2024-01..2024-06")
        start = _period(lo)[0] if lo.strip() else None
        end = _period(hi)[1] if hi.strip() else None
        if start is not None and end is not None and start >= end:
            raise ValueError(f"{text!r}: the range ends before it starts")
        return cls(start, end, text)

    def __contains__(self, when: datetime) -> bool:
        return (self.start is None or when >= self.start) and (self.end is None or when < self.end)
