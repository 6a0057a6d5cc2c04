"""Bytes of an original to an upright sRGB picture plus the original's facts, one function per kind.

* images (JPEG, PNG, GIF's first frame, TIFF's first page, WebP, BMP, AVIF with Pillow; HEIC/HEIF with
  pillow-heif): a JPEG is decoded reduced (``Image.draft``: libjpeg scales by 1/2…1/8 while decoding), so
  a 200-megapixel panorama costs a few megapixels of memory; other formats decode whole and are refused
  above :attr:`Limits.pixels`, which bounds a worker's memory and turns a decompression bomb into a reason;
* RAW (DNG, CR2/CR3, NEF, ARW, ORF, RW2…): the embedded preview when there is one (decoded like a JPEG),
  else a half-size LibRaw decode (``rawpy``); the file is spooled to a temporary file, not held in memory;
* video: a poster frame from about the first second (PyAV, reading the blob by ranges).

Every failure a file can cause raises :class:`DecodeError` with a one-line reason; the caller records it.
"""

from __future__ import annotations

import io
import math
import shutil
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from sync_core.contracts.mediatypes import MEDIA_TYPES, extension
from sync_core.errors import first_line

# Our own per-format limit (Limits) replaces Pillow's global one, which cannot tell a JPEG that is decoded
# reduced from a PNG that must be decoded whole.
Image.MAX_IMAGE_PIXELS = None

try:  # HEIC/HEIF through libheif; AVIF is Pillow's own
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - then HEIC files are recorded as an unknown format
    pillow_heif = None

KIND_IMAGE, KIND_RAW, KIND_VIDEO = "image", "raw", "video"
_NOT_RAW = {"image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff", "image/webp", "image/heic",
            "image/heif", "image/avif", "image/jxl"}  # fmt: skip
POSTER_SECONDS = 1.0  # where a video's poster frame is taken (earlier for a shorter video)
MAX_POSTER_FRAMES = 300  # frames decoded at most while looking for it
_SRGB = ImageCms.createProfile("sRGB")


class DecodeError(Exception):
    """The file cannot be rendered; ``str(exc)`` is the reason recorded in the index."""


@dataclass(frozen=True)
class Limits:
    pixels: int = 120_000_000  # formats decoded whole: ~480 MB of RGBA at most per worker
    jpeg_pixels: int = 1_000_000_000  # JPEGs decode at 1/8 scale at best: ~16 MP of that is held


@dataclass
class Decoded:
    image: Image.Image  # upright, sRGB, mode RGB or RGBA; possibly already reduced (JPEG draft)
    width: int  # the original's size as shown (orientation applied)
    height: int
    duration: float | None = None  # seconds, videos only


def kind_of(name: str) -> str | None:
    """``image``, ``raw``, ``video`` or ``None`` (not a picture: sidecars and other files)."""
    ctype = MEDIA_TYPES.get(extension(name), "")
    if ctype.startswith("video/"):
        return KIND_VIDEO
    if ctype.startswith("image/"):
        return KIND_IMAGE if ctype in _NOT_RAW else KIND_RAW
    return None


def decode(kind: str, stream: BinaryIO, *, target: int, limits: Limits = Limits()) -> Decoded:
    """Decode ``stream`` for renditions whose longer side is at most ``target`` pixels."""
    decoder: Callable[[BinaryIO, int, Limits], Decoded] = {
        KIND_IMAGE: decode_image, KIND_RAW: decode_raw, KIND_VIDEO: decode_video
    }[kind]  # fmt: skip
    try:
        return decoder(stream, target, limits)
    except DecodeError:
        raise
    except MemoryError as exc:
        raise DecodeError("out of memory while decoding") from exc
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, struct.error) as exc:
        raise DecodeError(f"cannot decode: {first_line(exc)}") from exc


# -- images ---------------------------------------------------------------------------------------------------
def decode_image(stream: BinaryIO, target: int, limits: Limits) -> Decoded:
    try:
        im = Image.open(stream)
    except UnidentifiedImageError as exc:
        raise DecodeError("unknown or unsupported image format") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"decompression bomb: {first_line(exc)}") from exc
    return _finish(im, target, limits)


def _finish(im: Image.Image, target: int, limits: Limits) -> Decoded:
    w, h = im.size
    limit = limits.jpeg_pixels if im.format == "JPEG" else limits.pixels
    if w * h > limit:
        raise DecodeError(f"decompression bomb: {w}x{h} pixels is over the limit of {limit:,}")
    if w <= 0 or h <= 0:
        raise DecodeError(f"no pixels ({w}x{h})")
    if im.format == "JPEG" and max(w, h) > target:
        scale = max(w, h) / target  # reduce while decoding, keeping the longer side at least ``target``
        im.draft(im.mode, (math.ceil(w / scale), math.ceil(h / scale)))
    im.load()
    if im.getexif().get(0x0112) in (5, 6, 7, 8):  # Orientation: transposed, so the shown size is swapped
        w, h = h, w
    return Decoded(to_srgb(ImageOps.exif_transpose(im)), w, h)


def to_srgb(im: Image.Image) -> Image.Image:
    """RGB or RGBA in sRGB: the embedded ICC profile applied when there is one (an unreadable profile is
    taken to be sRGB), high-bit-depth greys scaled to 8 bits."""
    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = im.convert("I") if im.mode != "F" else im
        im = im.point(lambda v: v / 256).convert("L")
    alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info)
    mode = "RGBA" if alpha else "RGB"
    if im.mode not in ("RGB", "RGBA", "L", "CMYK"):
        im = im.convert(mode)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = ImageCms.profileToProfile(im, source, _SRGB, outputMode="RGBA" if im.mode == "RGBA" else "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass
    if im.mode != mode:
        im = im.convert(mode)
    return im


# -- RAW ------------------------------------------------------------------------------------------------------
def decode_raw(stream: BinaryIO, target: int, limits: Limits) -> Decoded:
    import rawpy  # imported with the first RAW file: it pulls in numpy

    with tempfile.NamedTemporaryFile(prefix="azps-raw-", suffix=".raw") as spool:
        shutil.copyfileobj(stream, spool, 1024 * 1024)
        spool.flush()
        try:
            with rawpy.imread(spool.name) as raw:
                sizes = raw.sizes
                w, h = (sizes.height, sizes.width) if sizes.flip in (5, 6) else (sizes.width, sizes.height)
                if w * h > limits.jpeg_pixels:
                    raise DecodeError(f"decompression bomb: {w}x{h} pixels is over the limit of {limits.jpeg_pixels:,}")
                picture = _raw_preview(raw, target, limits)
                if picture is None:  # no usable preview: a half-size decode (LibRaw applies the flip itself)
                    if (w * h) // 4 > limits.pixels:
                        raise DecodeError(f"RAW too large to decode without a preview: {w}x{h} pixels")
                    rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
                    picture = Image.fromarray(rgb)
                elif sizes.flip in (3, 5, 6):  # the preview is stored as the sensor reads
                    picture = picture.transpose(
                        {3: Image.Transpose.ROTATE_180, 5: Image.Transpose.ROTATE_90, 6: Image.Transpose.ROTATE_270}[
                            sizes.flip
                        ]
                    )
        except rawpy.LibRawError as exc:
            raise DecodeError(f"cannot decode RAW: {type(exc).__name__}: {first_line(exc)}") from exc
    return Decoded(to_srgb(picture), w, h)


def _raw_preview(raw: object, target: int, limits: Limits) -> Image.Image | None:
    import rawpy

    try:
        thumb = raw.extract_thumb()  # type: ignore[attr-defined]
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            decoded = decode_image(io.BytesIO(thumb.data), target, limits)
        except (DecodeError, OSError):
            return None
        return decoded.image
    return Image.fromarray(thumb.data)


# -- video ----------------------------------------------------------------------------------------------------
def decode_video(stream: BinaryIO, target: int, limits: Limits) -> Decoded:
    import av  # imported with the first video: FFmpeg's libraries are large

    try:
        container = av.open(stream, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError) as exc:
        raise DecodeError(f"cannot read video: {first_line(exc)}") from exc
    try:
        vs = next(iter(container.streams.video), None)
        if vs is None:
            raise DecodeError("no video stream")
        duration = None
        if container.duration:
            duration = container.duration / av.time_base
        elif vs.duration and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        at = min(POSTER_SECONDS, duration / 2) if duration else 0.0
        if at > 0 and vs.time_base:
            try:
                container.seek(int(at / vs.time_base), stream=vs, backward=True)
            except av.FFmpegError:
                container.seek(0)
        frame = None
        try:
            for n, f in enumerate(container.decode(vs)):
                frame = f
                if f.time is None or f.time >= at or n >= MAX_POSTER_FRAMES:
                    break
        except av.FFmpegError as exc:
            if frame is None:
                raise DecodeError(f"cannot decode video: {first_line(exc)}") from exc
        if frame is None:
            raise DecodeError("no video frame could be decoded")
        if frame.width * frame.height > limits.pixels:
            raise DecodeError(f"video frame too large: {frame.width}x{frame.height}")
        picture = frame.to_image()
        rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        if rotation:
            picture = picture.rotate(rotation, expand=True)  # counter-clockwise, as the display matrix says
    finally:
        container.close()
    return Decoded(to_srgb(picture), picture.width, picture.height, duration)
