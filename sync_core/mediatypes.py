"""Which files are media, and the Content-Type each is stored with (media are never transformed)."""

from __future__ import annotations

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
    ".insv": "video/mp4",
    ".lrv": "video/mp4",
    # sidecars that belong with the media they describe
    ".xmp": "application/rdf+xml",
    ".aae": "application/xml",
}

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def extension(name: str) -> str:
    """The lower-cased extension of a file name, including the dot ('' when there is none)."""
    return os.path.splitext(name)[1].lower()


def is_media(name: str) -> bool:
    """True when the name has a media (or media-sidecar) extension, case-insensitively."""
    return extension(name) in MEDIA_TYPES


def content_type(name: str) -> str:
    """Content-Type for a file name: the media table first, then the platform's guess, then octet-stream."""
    ext = extension(name)
    if ext in MEDIA_TYPES:
        return MEDIA_TYPES[ext]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE
