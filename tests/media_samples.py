"""Tiny but well-formed media files for tests: JPEG/TIFF with EXIF, MP4/MOV with an ``mvhd`` box."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

_ASCII, _LONG = 2, 4


def _ifd(entries: list[tuple[int, int, bytes]], base: int) -> tuple[bytes, bytes]:
    """An IFD at offset ``base`` (little-endian) plus its out-of-line data area."""
    entries = sorted(entries)
    head = struct.pack("<H", len(entries))
    data = b""
    data_start = base + 2 + 12 * len(entries) + 4
    for tag, typ, value in entries:
        count = len(value) if typ == _ASCII else 1
        if len(value) <= 4:
            head += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", tag, typ, count, data_start + len(data))
            data += value + (b"\x00" if len(value) % 2 else b"")
    return head + struct.pack("<I", 0), data


def exif_tiff(
    taken: str | None = "2021:07:14 09:30:05", model: str | None = "Pixel 7", offset: str | None = None
) -> bytes:
    """A little-endian TIFF header + IFD0 (Model) + Exif IFD (DateTimeOriginal, OffsetTimeOriginal)."""
    exif_entries: list[tuple[int, int, bytes]] = []
    if taken is not None:
        exif_entries.append((0x9003, _ASCII, taken.encode() + b"\x00"))
    if offset is not None:
        exif_entries.append((0x9011, _ASCII, offset.encode() + b"\x00"))
    ifd0_entries: list[tuple[int, int, bytes]] = []
    if model is not None:
        ifd0_entries.append((0x0110, _ASCII, model.encode() + b"\x00"))
    n0 = len(ifd0_entries) + 1
    ifd0_size = 2 + 12 * n0 + 4
    # lay out: header(8) | IFD0 | IFD0 data | Exif IFD | Exif data
    _, probe_data = _ifd([*ifd0_entries, (0x8769, _LONG, b"\x00" * 4)], 8)
    exif_at = 8 + ifd0_size + len(probe_data)
    ifd0, ifd0_data = _ifd([*ifd0_entries, (0x8769, _LONG, struct.pack("<I", exif_at))], 8)
    exif, exif_data = _ifd(exif_entries, exif_at)
    return b"II*\x00" + struct.pack("<I", 8) + ifd0 + ifd0_data + exif + exif_data


def jpeg_with_exif(pixels: bytes = b"", **kw: str | None) -> bytes:
    """SOI + APP1 Exif + some opaque payload + EOI (enough for EXIF readers; not a decodable image)."""
    app1 = b"Exif\x00\x00" + exif_tiff(**kw)
    return b"\xff\xd8\xff\xe1" + struct.pack(">H", 2 + len(app1)) + app1 + pixels + b"\xff\xd9"


def _box(kind: bytes, payload: bytes, *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def quicktime_meta(items: dict[str, str], *, iso: bool = False) -> bytes:
    """``moov/meta`` with ``hdlr``, ``keys`` and ``ilst`` as Apple devices write them (``iso``: with the
    ISO version/flags word)."""
    keys = struct.pack(">II", 0, len(items)) + b"".join(
        struct.pack(">I4s", 8 + len(k.encode()), b"mdta") + k.encode() for k in items
    )
    ilst = b"".join(
        _box(struct.pack(">I", i), _box(b"data", struct.pack(">II", 1, 0) + v.encode()))
        for i, v in enumerate(items.values(), start=1)
    )
    body = _box(b"hdlr", b"\x00" * 8 + b"mdta" + b"\x00" * 13) + _box(b"keys", keys) + _box(b"ilst", ilst)
    return _box(b"meta", (b"\x00" * 4 if iso else b"") + body)


def mp4_with_creation(
    when: datetime | None,
    *,
    mdat: bytes = b"",
    moov_last: bool = True,
    version: int = 0,
    meta: dict[str, str] | None = None,
    iso_meta: bool = False,
) -> bytes:
    """ftyp + mdat + moov(mvhd [+ meta]) (or moov first); ``when=None`` writes an unset creation time."""
    secs = 0 if when is None else int((when - datetime(1904, 1, 1, tzinfo=UTC)).total_seconds())
    if version == 1:
        body = struct.pack(">B3xQQIQ", 1, secs, secs, 1000, 0)
    else:
        body = struct.pack(">B3xIIII", 0, secs, secs, 1000, 0)
    mvhd = _box(b"mvhd", body + b"\x00" * 80)
    extra = quicktime_meta(meta, iso=iso_meta) if meta else b""
    moov = _box(b"moov", mvhd + _box(b"trak", b"\x00" * 16) + extra)
    ftyp = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    media = _box(b"mdat", mdat, large=True)
    return ftyp + (media + moov if moov_last else moov + media)
