"""Which files are media, and the Content-Type each is stored with (media are never transformed).

A file is media by its extension (the table below) or, when its extension says nothing, by its first bytes
(:func:`sniff`): a JPEG saved as ``.mpo``, ``.bak`` or without an extension is still a photo. Only files
whose extension is unknown are read, a few hundred bytes each.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os

# Extension (lower case, with dot) -> Content-Type. RAW formats use their registered or de-facto types.
MEDIA_TYPES: dict[str, str] = {
    # still images
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".hif": "image/heif",
    ".avif": "image/avif",
    ".jxl": "image/jxl",
    ".jp2": "image/jp2",
    ".mpo": "image/x-mpo",  # multi-picture JPEG (3D cameras, phones)
    ".heics": "image/heic-sequence",
    # camera RAW
    ".dng": "image/x-adobe-dng",
    ".cr2": "image/x-canon-cr2",
    ".cr3": "image/x-canon-cr3",
    ".crw": "image/x-canon-crw",
    ".nef": "image/x-nikon-nef",
    ".nrw": "image/x-nikon-nrw",
    ".arw": "image/x-sony-arw",
    ".srf": "image/x-sony-srf",
    ".sr2": "image/x-sony-sr2",
    ".orf": "image/x-olympus-orf",
    ".rw2": "image/x-panasonic-rw2",
    ".raf": "image/x-fuji-raf",
    ".pef": "image/x-pentax-pef",
    ".srw": "image/x-samsung-srw",
    ".x3f": "image/x-sigma-x3f",
    ".3fr": "image/x-hasselblad-3fr",
    ".iiq": "image/x-phaseone-iiq",
    ".raw": "image/x-panasonic-raw",
    ".erf": "image/x-epson-erf",
    ".mrw": "image/x-minolta-mrw",
    ".kdc": "image/x-kodak-kdc",
    ".dcr": "image/x-kodak-dcr",
    ".mos": "image/x-leaf-mos",
    ".mef": "image/x-mamiya-mef",
    ".rwl": "image/x-leica-rwl",
    ".gpr": "image/x-gopro-gpr",
    # video
    ".mov": "video/quicktime",
    ".qt": "video/quicktime",
    ".mp4": "video/mp4",
    ".m4v": "video/x-m4v",
    ".3gp": "video/3gpp",
    ".3g2": "video/3gpp2",
    ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".webm": "video/webm",
    ".mts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".m2t": "video/mp2t",
    ".ts": "video/mp2t",
    ".mpg": "video/mpeg",
    ".mpeg": "video/mpeg",
    ".wmv": "video/x-ms-wmv",
    ".asf": "video/x-ms-asf",
    ".mod": "video/mpeg",  # JVC/Panasonic/Canon camcorders (MPEG program stream)
    ".tod": "video/mpeg",
    ".vob": "video/mpeg",
    ".flv": "video/x-flv",
    ".ogv": "video/ogg",
    ".dv": "video/x-dv",
    ".insv": "video/mp4",
    ".lrv": "video/mp4",
    # sidecars that belong with the media they describe
    ".xmp": "application/rdf+xml",
    ".aae": "application/xml",
}

# Extensions that are media only when the content agrees (TypeScript sources are ``.ts`` too).
CONFIRM_BY_CONTENT = frozenset({".ts"})
# Extensions known to be something else: never read to look for media (documents, archives, audio, code).
# fmt: off
NOT_MEDIA_EXTS = frozenset({
    ".txt", ".md", ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".rtf",
    ".csv", ".json", ".xml", ".html", ".htm", ".css", ".js", ".py", ".sh", ".ini", ".cfg", ".log", ".yml",
    ".yaml", ".zip", ".7z", ".rar", ".gz", ".bz2", ".xz", ".tar", ".iso", ".dmg", ".exe", ".dll", ".so",
    ".db", ".sqlite", ".mp3", ".wav", ".flac", ".aac", ".m4a", ".ogg", ".opus", ".wma", ".mid", ".eml",
    ".lnk", ".url", ".torrent", ".nfo", ".sfv", ".md5", ".sha1", ".sha256", ".pp3", ".dop", ".lrcat",
})
# fmt: on
SNIFF_BYTES = 512  # enough for an MPEG-TS packet pair (188 or 192 bytes each) and every header below

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# ISO base media brands (``ftyp`` major brand) -> Content-Type; any other brand is MP4 video.
_FTYP_BRANDS: dict[bytes, str] = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"), "image/heic"),
    **dict.fromkeys((b"mif1", b"msf1", b"heif", b"mif2"), "image/heif"),
    **dict.fromkeys((b"avif", b"avis"), "image/avif"),
    b"crx ": "image/x-canon-cr3",
    b"qt  ": "video/quicktime",
    b"M4V ": "video/x-m4v",
    b"M4VH": "video/x-m4v",
    b"M4A ": "",  # audio
    b"M4B ": "",
    b"jp2 ": "image/jp2",
}
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"pnot", b"free", b"skip"})
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_JXL_BOX = bytes.fromhex("0000000c4a584c200d0a870a")
_JP2_BOX = bytes.fromhex("0000000c6a5020200d0a870a")


def sniff(head: bytes) -> str | None:
    """The Content-Type of media whose file starts with ``head`` (at least :data:`SNIFF_BYTES` of it when the
    file is that long); ``None`` when the bytes are no photo or video this module knows."""
    h = head
    if h[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if h[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if h[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if h[:4] == b"RIFF" and h[8:12] in (b"WEBP", b"AVI "):
        return "image/webp" if h[8:12] == b"WEBP" else "video/x-msvideo"
    if h[4:8] == b"ftyp":
        brand = h[8:12]
        if brand.startswith(b"3g2"):
            return "video/3gpp2"
        if brand.startswith(b"3gp"):
            return "video/3gpp"
        return _FTYP_BRANDS.get(brand, "video/mp4") or None
    if h[4:8] in _QUICKTIME_ATOMS and int.from_bytes(h[:4], "big") >= 8:
        return "video/quicktime"
    if h[:12] == _JXL_BOX or h[:2] == b"\xff\x0a":
        return "image/jxl"
    if h[:12] == _JP2_BOX:
        return "image/jp2"
    if h[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM, told apart by the DocType
        return "video/webm" if b"webm" in h[:64] else "video/x-matroska"
    if h[:16] == _ASF:
        return "video/x-ms-wmv"
    if h[:4] == b"\x00\x00\x01\xba":
        return "video/mpeg"
    if len(h) >= 377 and h[0] == 0x47 and h[188] == 0x47 and h[376] == 0x47:
        return "video/mp2t"
    if len(h) >= 389 and h[4] == 0x47 and h[196] == 0x47 and h[388] == 0x47:  # M2TS: 4-byte timecode first
        return "video/mp2t"
    return _sniff_raw(h)


def _sniff_raw(h: bytes) -> str | None:
    """Camera RAW and TIFF, whose headers share the TIFF byte-order marks."""
    if h[:4] == b"II\x1a\x00" and h[6:14] == b"HEAPCCDR":
        return "image/x-canon-crw"
    if h[:16] == b"FUJIFILMCCD-RAW ":
        return "image/x-fuji-raf"
    if h[:4] == b"FOVb":
        return "image/x-sigma-x3f"
    if h[:4] == b"\x00MRM":
        return "image/x-minolta-mrw"
    if h[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "image/x-olympus-orf"
    if h[:4] == b"IIU\x00":
        return "image/x-panasonic-rw2"
    if h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "image/x-canon-cr2" if h[8:10] == b"CR" else "image/tiff"
    if h[:2] == b"BM" and len(h) >= 14 and h[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    return None


def read_head(path: str) -> bytes:
    """The first :data:`SNIFF_BYTES` of a regular file, without following a link or waiting on a FIFO;
    ``b''`` when it cannot be read (the hashing stage reports that)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with contextlib.suppress(OSError):
        fd = os.open(path, flags)
        try:
            return os.read(fd, SNIFF_BYTES)
        finally:
            os.close(fd)
    return b""


def extension(name: str) -> str:
    """The lower-cased extension of a file name, including the dot ('' when there is none)."""
    return os.path.splitext(name)[1].lower()


def is_media(name: str) -> bool:
    """True when the name has a media (or media-sidecar) extension, case-insensitively."""
    return extension(name) in MEDIA_TYPES


def content_type(name: str, path: str | None = None) -> str:
    """Content-Type for a file: the media table, then (for an extension the table does not know) the file's
    own first bytes when ``path`` is given, then the platform's guess, then octet-stream."""
    ext = extension(name)
    if ext in MEDIA_TYPES and ext not in CONFIRM_BY_CONTENT:
        return MEDIA_TYPES[ext]
    if path is not None and ext not in NOT_MEDIA_EXTS:
        sniffed = sniff(read_head(path))
        if sniffed:
            return sniffed
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE
