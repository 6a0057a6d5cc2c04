"""When a photo or video was taken, and with which camera: the base for a timeline and albums later.

Read once, when the file is hashed, from bytes already in memory for small files or from a few header
reads for large ones:

* stills (JPEG, MPO, TIFF, PNG and TIFF-based RAW such as DNG, CR2, NEF, ARW, ORF, RW2): EXIF
  ``DateTimeOriginal`` (then ``DateTimeDigitized``) with its ``SubSecTime…`` and ``OffsetTime…`` when
  present, and the ``Model`` tag, through ``exifread``;
* HEIF/HEIC/HIF/AVIF: the same tags from the container's own EXIF item, located by libheif (``pillow-heif``)
  whatever the brand (Sony and Canon write ``heix``), with ``exifread`` as the fallback;
* WebP: the same tags from its RIFF ``EXIF`` chunk;
* RAF (Fujifilm) and X3F (Sigma): the EXIF of the JPEG preview they embed, else their own header fields;
* CR3 (Canon): the TIFF structures ``CMT1`` (model) and ``CMT2`` (EXIF) in the Canon ``uuid`` box;
* QuickTime/MP4 video (MOV, MP4, M4V, 3GP…): Apple's ``com.apple.quicktime.creationdate`` (local time with its
  offset) else the ``mvhd`` creation time (UTC), and the model from ``com.apple.quicktime.model`` or the
  ``udta/©mod`` user data, found by walking box headers (a handful of seeks, whatever the size).

A file whose extension says nothing is read by what its first bytes are (:func:`sync_core.contracts.mediatypes.sniff`).

Capture time is an ISO 8601 string: EXIF local time as written by the camera (``2023-05-01T12:34:56``, with
``.641`` sub-seconds and ``+02:00`` or ``Z`` when the camera recorded them); MP4 ``mvhd`` times are UTC
(``…Z``). A date before 1826 (the first photograph) or more than a day ahead is a camera's placeholder, not a
capture date. Anything unreadable yields ``None`` fields: metadata never stops a file from being backed up.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import exifread

from sync_core.contracts.mediatypes import NOT_MEDIA_EXTS, SNIFF_BYTES, extension, read_head, sniff

log = logging.getLogger(__name__)
# exifread warns about every file without EXIF; that is normal for our purposes.
logging.getLogger("exifread").setLevel(logging.ERROR)

# fmt: off
EXIF_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".mpo", ".tif", ".tiff", ".png", ".jxl",
    ".dng", ".cr2", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".pef", ".srw", ".3fr", ".iiq",
    ".erf", ".mos", ".kdc", ".dcr", ".mef", ".rwl", ".gpr",
})
# fmt: on
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif", ".avif", ".heics"})
ISOBMFF_VIDEO_EXTENSIONS = frozenset({".mov", ".qt", ".mp4", ".m4v", ".3gp", ".3g2", ".insv", ".lrv"})
_KIND_BY_EXT = {
    **dict.fromkeys(EXIF_EXTENSIONS, "exif"),
    **dict.fromkeys(HEIF_EXTENSIONS, "heif"),
    **dict.fromkeys(ISOBMFF_VIDEO_EXTENSIONS, "quicktime"),
    ".cr3": "cr3",
    ".raf": "raf",
    ".x3f": "x3f",
    ".webp": "webp",
}
_KIND_BY_TYPE = {
    **dict.fromkeys(("image/heic", "image/heif", "image/avif"), "heif"),
    **dict.fromkeys(("video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2", "video/x-m4v"), "quicktime"),
    **dict.fromkeys(
        (
            "image/jpeg",
            "image/tiff",
            "image/png",
            "image/jxl",
            "image/x-canon-cr2",
            "image/x-olympus-orf",
            "image/x-panasonic-rw2",
        ),
        "exif",
    ),
    "image/x-canon-cr3": "cr3",
    "image/x-fuji-raf": "raf",
    "image/x-sigma-x3f": "x3f",
    "image/webp": "webp",
}
MAX_MODEL_CHARS = 128
_MP4_EPOCH = datetime(1904, 1, 1, tzinfo=UTC)
_FIRST_PHOTO_YEAR = 1826
_MAX_BOXES = 4096  # bound the walk over a malformed file
_MODEL_KEY = b"com.apple.quicktime.model"
_DATE_KEY = b"com.apple.quicktime.creationdate"
_OFFSET_RE = re.compile(r"^(?:Z|[+-](?:0\d|1[0-4]):[0-5]\d)$")
_SUBSEC_RE = re.compile(r"^\d{1,9}$")
_ISO_DATE_RE = re.compile(r"^(\d{4})-?(\d\d)-?(\d\d)T(\d\d):?(\d\d):?(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)?$")
_CANON_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_EXIF_HEADER = b"Exif\x00\x00"
_MAX_EMBEDDED_PREVIEW = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Capture:
    time: str | None = None
    camera_model: str | None = None


NOTHING = Capture()


def read_capture(path: str, data: bytes | None = None) -> Capture:
    """Capture time and camera model of the file at ``path`` (``data``: its bytes when already read).

    Never raises: a file whose metadata cannot be read gets ``Capture(None, None)``."""
    try:
        kind = _kind(path, data)
        if kind is None:
            return NOTHING
        if data is not None:
            return _READERS[kind](io.BytesIO(data))
        with open(path, "rb") as f:
            return _READERS[kind](f)
    except Exception as exc:  # malformed media must never stop the sync
        log.debug("no capture metadata for %s: %s", path, exc)
        return NOTHING


def _kind(path: str, data: bytes | None) -> str | None:
    """Which reader understands the file: by extension, else (unknown extension) by its first bytes."""
    ext = extension(path)
    if ext in _KIND_BY_EXT:
        return _KIND_BY_EXT[ext]
    if ext in NOT_MEDIA_EXTS:
        return None
    ctype = sniff(data[:SNIFF_BYTES] if data is not None else read_head(path))
    return _KIND_BY_TYPE.get(ctype or "")


def plausible(when: datetime) -> bool:
    """Whether a clock reading can be a capture date: not before the first photograph, not in the future
    (a naive local time is compared as if it were UTC; the extra day covers every time zone)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.year >= _FIRST_PHOTO_YEAR and aware <= datetime.now(UTC) + timedelta(days=1)


# -- EXIF ------------------------------------------------------------------------------------------
_TIME_TAGS = (  # (time, sub-seconds, offset): the original capture first, then the digitisation
    ("DateTimeOriginal", "SubSecTimeOriginal", "OffsetTimeOriginal"),
    ("DateTimeDigitized", "SubSecTimeDigitized", "OffsetTimeDigitized"),
)


def exif_capture(f: BinaryIO) -> Capture:
    tags = exifread.process_file(f, details=False, extract_thumbnail=False)
    return _capture_from_tags(tags)


def _capture_from_tags(tags: dict[str, object]) -> Capture:
    def tag(name: str) -> str | None:  # the Exif IFD's tag, or IFD0's in a bare EXIF block (CR3's CMT2)
        return _text(tags.get(f"EXIF {name}", tags.get(f"Image {name}")))

    when = None
    for time_tag, subsec_tag, offset_tag in _TIME_TAGS:
        when = _exif_datetime(tag(time_tag), tag(offset_tag) or tag("OffsetTimeOriginal"), tag(subsec_tag))
        if when:
            break
    return Capture(time=when, camera_model=_clean_model(_text(tags.get("Image Model"))))


def _text(tag: object) -> str | None:
    if tag is None:
        return None
    values = getattr(tag, "values", tag)
    if isinstance(values, bytes):
        values = values.decode("ascii", "replace")
    return str(values).replace("\x00", " ").strip() or None


def _exif_datetime(value: str | None, offset: str | None, subsec: str | None = None) -> str | None:
    """``2023:05:01 12:34:56`` -> ``2023-05-01T12:34:56`` (+ ``.641`` and ``+02:00`` when valid)."""
    if not value:
        return None
    try:
        dt = datetime.strptime(value[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # "0000:00:00 00:00:00", blanks and other camera placeholders
    text = dt.isoformat()
    if subsec and _SUBSEC_RE.match(subsec.strip()):
        text += "." + subsec.strip()
    off = offset.strip() if offset else ""
    if off and _OFFSET_RE.match(off):
        text += off
        dt = datetime.fromisoformat(text)
    return text if plausible(dt) else None


def _clean_model(value: str | None) -> str | None:
    if not value:
        return None
    clean = "".join(ch for ch in value if ch.isprintable()).strip()
    return clean[:MAX_MODEL_CHARS] or None


# -- ISO base media (MP4/MOV) --------------------------------------------------------------------
def _boxes(f: BinaryIO, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """``(type, payload_start, box_end)`` of the boxes in ``[start, end)``, reading headers only."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(out) < _MAX_BOXES:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            break
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            ext = f.read(8)
            if len(ext) < 8:
                break
            size, header = struct.unpack(">Q", ext)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def _moov(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(0, os.SEEK_END)
    return next(((p, e) for kind, p, e in _boxes(f, 0, f.tell()) if kind == b"moov"), None)


def quicktime_capture(f: BinaryIO) -> Capture:
    """Creation time (Apple's ``com.apple.quicktime.creationdate`` with its offset, else ``moov/mvhd`` in
    UTC) and the model (``com.apple.quicktime.model`` in ``moov/meta`` or ``moov/udta/meta``, else
    ``moov/udta/©mod``);
    ``NOTHING`` when there is no ``moov``."""
    moov = _moov(f)
    if moov is None:
        return NOTHING
    when = model = None
    keys: dict[bytes, str] = {}
    for kind, payload, box_end in _boxes(f, *moov):
        if kind == b"mvhd" and when is None:
            when = _mvhd_time(f, payload)
        elif kind == b"meta" and not keys:
            keys = _quicktime_keys(f, payload, box_end)
        elif kind == b"udta":  # ©mod; FFmpeg also puts its meta box here
            model = model or _udta_model(f, payload, box_end)
            for mkind, mp, me in _boxes(f, payload, box_end):
                if mkind == b"meta" and not keys:
                    keys = _quicktime_keys(f, mp, me)
    local = _iso_time(keys.get(_DATE_KEY))
    return Capture(local or when, _clean_model(keys.get(_MODEL_KEY) or model))


def mvhd_creation_time(f: BinaryIO) -> str | None:
    """Creation time from ``moov/mvhd`` (UTC); ``None`` when absent or unset."""
    moov = _moov(f)
    if moov is None:
        return None
    return next((_mvhd_time(f, p) for kind, p, _ in _boxes(f, *moov) if kind == b"mvhd"), None)


def _mvhd_time(f: BinaryIO, payload: int) -> str | None:
    f.seek(payload)
    version = f.read(4)[:1]
    raw = f.read(8 if version == b"\x01" else 4)
    seconds = int.from_bytes(raw, "big") if raw else 0
    if not seconds:
        return None
    when = _MP4_EPOCH + timedelta(seconds=seconds)
    if when.year < 1971 or not plausible(when):
        return None  # an unset camera clock, not a capture date
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_time(value: str | None) -> str | None:
    """``2021-07-14T09:30:05+0200`` (Apple's creation date) -> ``2021-07-14T09:30:05+02:00``."""
    m = _ISO_DATE_RE.match(value.strip()) if value else None
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, off = m.groups()
    text = f"{y}-{mo}-{d}T{h}:{mi}:{sec}{frac or ''}"
    if off and off != "Z":
        off = off if ":" in off else f"{off[:3]}:{off[3:]}"
        if not _OFFSET_RE.match(off):
            off = ""
    text += off or ""
    try:
        return text if plausible(datetime.fromisoformat(text)) else None
    except ValueError:
        return None


def _quicktime_keys(f: BinaryIO, start: int, end: int) -> dict[bytes, str]:
    """The ``mdta`` keys of a ``meta`` box with their text values (``keys`` lists them, ``ilst`` holds the
    values by 1-based index)."""
    for skip in (0, 4):  # QuickTime's meta box has no version/flags; ISO's does
        boxes = {kind: (p, e) for kind, p, e in _boxes(f, start + skip, end)}
        if b"keys" in boxes and b"ilst" in boxes:
            break
    else:
        return {}
    keys_at, keys_end = boxes[b"keys"]
    f.seek(keys_at + 4)
    count = int.from_bytes(f.read(4), "big")
    pos, names = keys_at + 8, {}
    for i in range(1, min(count, 512) + 1):
        f.seek(pos)
        size = int.from_bytes(f.read(4), "big")
        if size < 8 or pos + size > keys_end:
            break
        f.read(4)  # namespace, 'mdta'
        name = f.read(min(size - 8, 256))
        if name in (_MODEL_KEY, _DATE_KEY):
            names[i] = name
        pos += size
    out: dict[bytes, str] = {}
    for kind, p, e in _boxes(f, *boxes[b"ilst"]):
        name = names.get(int.from_bytes(kind, "big"))
        if name is None:
            continue
        for dkind, dp, de in _boxes(f, p, e):
            if dkind == b"data" and de - dp > 8:
                f.seek(dp + 8)  # type indicator, locale
                out[name] = f.read(min(de - dp - 8, 4 * MAX_MODEL_CHARS)).decode("utf-8", "replace")
    return out


def _udta_model(f: BinaryIO, start: int, end: int) -> str | None:
    """``udta/©mod``: QuickTime text (16-bit length, 16-bit language, text) or an MP4 ``data`` box."""
    for kind, p, e in _boxes(f, start, end):
        if kind != b"\xa9mod" or e - p < 4:
            continue
        inner = [(dp, de) for dkind, dp, de in _boxes(f, p, e) if dkind == b"data"]
        if inner and inner[0][1] - inner[0][0] > 8:
            f.seek(inner[0][0] + 8)
            return f.read(min(inner[0][1] - inner[0][0] - 8, 4 * MAX_MODEL_CHARS)).decode("utf-8", "replace")
        f.seek(p)
        length = int.from_bytes(f.read(2), "big")
        f.read(2)
        return f.read(min(length, e - p - 4, 4 * MAX_MODEL_CHARS)).decode("utf-8", "replace")
    return None


# -- HEIF, CR3, RAF, X3F ---------------------------------------------------------------------------------
def heif_capture(f: BinaryIO) -> Capture:
    """The EXIF item of the primary image, as libheif finds it (any brand), else what ``exifread`` reads."""
    raw = None
    try:
        import pillow_heif

        f.seek(0)
        raw = pillow_heif.open_heif(f).info.get("exif")
    except Exception as exc:  # not a HEIF libheif can open (AVIF without its plugin, damaged)
        log.debug("libheif could not open the file: %s", exc)
    if raw:
        cap = exif_capture(io.BytesIO(raw[len(_EXIF_HEADER) :] if raw.startswith(_EXIF_HEADER) else raw))
        if cap != NOTHING:
            return cap
    f.seek(0)
    return exif_capture(f)


def cr3_capture(f: BinaryIO) -> Capture:
    """Canon CR3: ``moov/uuid(Canon)/CMT1`` is IFD0 (the model), ``CMT2`` the EXIF IFD (the date); the
    ``mvhd`` time is the fallback."""
    moov = _moov(f)
    if moov is None:
        return NOTHING
    tags: dict[str, object] = {}
    for kind, p, e in _boxes(f, *moov):
        f.seek(p)
        if kind != b"uuid" or f.read(16) != _CANON_UUID:
            continue
        for sub, sp, se in _boxes(f, p + 16, e):
            if sub in (b"CMT1", b"CMT2") and se - sp < 1024 * 1024:
                f.seek(sp)
                found = exifread.process_file(io.BytesIO(f.read(se - sp)), details=False)
                tags.update({k: v for k, v in found.items() if sub == b"CMT1" or k != "Image Model"})
    cap = _capture_from_tags(tags)
    return cap if cap.time else Capture(mvhd_creation_time(f), cap.camera_model)


def raf_capture(f: BinaryIO) -> Capture:
    """Fujifilm RAF: the EXIF of the JPEG preview the header points to (offset 84), else the header's model."""
    f.seek(0)
    head = f.read(92)
    if not head.startswith(b"FUJIFILMCCD-RAW ") or len(head) < 92:
        return NOTHING
    at, length = struct.unpack(">II", head[84:92])
    cap = NOTHING
    if 0 < length <= _MAX_EMBEDDED_PREVIEW:
        f.seek(at)
        cap = exif_capture(io.BytesIO(f.read(length)))
    model = cap.camera_model or _clean_model(head[28:60].split(b"\x00")[0].decode("ascii", "replace"))
    return Capture(cap.time, model)


def x3f_capture(f: BinaryIO) -> Capture:
    """Sigma X3F: an embedded EXIF block (recent cameras) or the ``PROP`` section's ``CAMMODEL`` and ``TIME``
    (Unix seconds of the camera's local clock) found through the directory the last 4 bytes point to."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    if f.read(4) != b"FOVb" or size < 16:
        return NOTHING
    f.seek(size - 4)
    (directory,) = struct.unpack("<I", f.read(4))
    f.seek(directory)
    if f.read(4) != b"SECd" or directory >= size:
        return NOTHING
    f.read(4)  # version
    (count,) = struct.unpack("<I", f.read(4))
    entries = [struct.unpack("<II4s", f.read(12)) for _ in range(min(count, 64))]
    props: dict[str, str] = {}
    for offset, length, kind in entries:
        if offset + length > size:
            continue
        f.seek(offset)
        if kind == b"PROP" and length < 1024 * 1024:
            props.update(_x3f_props(f.read(length)))
        elif kind in (b"IMA2", b"IMAG") and length <= _MAX_EMBEDDED_PREVIEW:
            blob = f.read(length)
            at = blob.find(b"\xff\xd8\xff")
            if at >= 0:
                cap = exif_capture(io.BytesIO(blob[at:]))
                if cap.time:
                    return cap
    when = None
    if props.get("TIME", "").isdigit():
        local = datetime(1970, 1, 1) + timedelta(seconds=int(props["TIME"]))
        when = local.isoformat() if plausible(local) else None
    return Capture(when, _clean_model(props.get("CAMMODEL")))


def _x3f_props(sec: bytes) -> dict[str, str]:
    """A ``SECp`` section: (name, value) character offsets into UTF-16LE text after the entry table."""
    if sec[:4] != b"SECp" or len(sec) < 24:
        return {}
    count, fmt = struct.unpack("<II", sec[8:16])
    if fmt != 0:
        return {}
    table_end = 24 + 8 * min(count, 4096)
    text = sec[table_end:].decode("utf-16-le", "replace")

    def at(i: int) -> str:
        end = text.find("\x00", i)
        return text[i : end if end >= 0 else len(text)]

    out = {}
    for k in range(min(count, 4096)):
        name_at, value_at = struct.unpack("<II", sec[24 + 8 * k : 32 + 8 * k])
        out[at(name_at)] = at(value_at)
    return out


def webp_capture(f: BinaryIO) -> Capture:
    """WebP: the RIFF ``EXIF`` chunk (a TIFF structure, sometimes behind an ``Exif`` header)."""
    f.seek(0)
    head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return NOTHING
    end = 8 + int.from_bytes(head[4:8], "little")
    pos = 12
    for _ in range(_MAX_BOXES):
        f.seek(pos)
        chunk = f.read(8)
        if len(chunk) < 8 or pos >= end:
            break
        size = int.from_bytes(chunk[4:8], "little")
        if chunk[:4] == b"EXIF" and size <= _MAX_EMBEDDED_PREVIEW:
            raw = f.read(size)
            return exif_capture(io.BytesIO(raw[len(_EXIF_HEADER) :] if raw.startswith(_EXIF_HEADER) else raw))
        pos += 8 + size + (size & 1)
    return NOTHING


_READERS = {
    "exif": exif_capture,
    "heif": heif_capture,
    "quicktime": quicktime_capture,
    "cr3": cr3_capture,
    "raf": raf_capture,
    "x3f": x3f_capture,
    "webp": webp_capture,
}
