"""Real media files made in the test by the formats' own libraries (Pillow, pillow-heif, PyAV/FFmpeg), so the
recognition and capture tests run against what cameras' software writes, not hand-built headers."""

from __future__ import annotations

import io

import av
import numpy
import pillow_heif
from PIL import Image


def picture(seed: int = 0, size: tuple[int, int] = (32, 24)) -> Image.Image:
    return Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))


def exif(
    taken: str | None = "2021:07:14 09:30:05",
    model: str | None = "DSC-RX100M7",
    offset: str | None = None,
    subsec: str | None = None,
) -> Image.Exif:
    e = Image.Exif()
    if model is not None:
        e[0x0110] = model
    ifd = e.get_ifd(0x8769)
    if taken is not None:
        ifd[0x9003] = taken
    if offset is not None:
        ifd[0x9011] = offset
    if subsec is not None:
        ifd[0x9291] = subsec
    return e


def still(fmt: str, seed: int = 0, exif_data: Image.Exif | None = None) -> bytes:
    """A still in a Pillow format (JPEG, PNG, GIF, TIFF, WEBP, BMP, AVIF, MPO: two frames, as 3D cameras)."""
    buf = io.BytesIO()
    im = picture(seed)
    kw: dict[str, object] = {}
    if exif_data is not None:
        kw["exif"] = exif_data
    if fmt == "MPO":
        kw.update(save_all=True, append_images=[picture(seed + 1)])
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def heif(seed: int = 0, exif_data: Image.Exif | None = None, brand: bytes | None = None) -> bytes:
    """A HEIC written by libheif; ``brand`` replaces the major brand (Sony and Canon write ``heix``)."""
    buf = io.BytesIO()
    kw = {"exif": exif_data.tobytes()} if exif_data is not None else {}
    pillow_heif.from_pillow(picture(seed)).save(buf, format="HEIF", quality=50, **kw)
    data = buf.getvalue()
    if brand is not None:
        assert data[4:8] == b"ftyp"
        data = data[:8] + brand + data[12:]
    return data


VIDEO_CODECS = {"mp4": "mpeg4", "mov": "mpeg4", "3gp": "mpeg4", "matroska": "mpeg4", "webm": "libvpx",
                "avi": "mpeg4", "asf": "wmv2", "mpegts": "mpeg2video", "mpeg": "mpeg2video"}  # fmt: skip


def video(fmt: str, seed: int = 0, metadata: dict[str, str] | None = None, frames: int = 3) -> bytes:
    """A short clip muxed by FFmpeg (``fmt`` as FFmpeg names it), with container metadata when given."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt, options={"movflags": "use_metadata_tags"} if metadata else None) as c:
        c.metadata.update(metadata or {})
        s = c.add_stream(VIDEO_CODECS[fmt], rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            arr = numpy.full((48, 64, 3), (seed * 17 + i * 40) % 256, numpy.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()
