"""Small real media for the renditions tests, made with the same libraries the renditions use."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms

RED, BLUE = (220, 20, 20), (20, 20, 220)


def jpeg_oriented(width: int = 400, height: int = 300, orientation: int = 6) -> bytes:
    """A landscape-stored JPEG (left half red, right half blue) with EXIF orientation, GPS and an ICC
    profile: shown upright (orientation 6: turned clockwise) it is portrait, red on top."""
    im = Image.new("RGB", (width, height), BLUE)
    im.paste(RED, (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    exif[0x8825] = {1: "N", 2: (52.0, 22.0, 7.0)}  # GPS IFD: a latitude that must not leak
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif, icc_profile=icc)
    return buf.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (640, 480), mode: str = "RGB", **kw) -> bytes:
    colour = {"RGBA": (10, 200, 10, 128), "CMYK": (0, 255, 255, 0)}.get(mode, (10, 200, 10))
    im = Image.new(mode, size, colour)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def heic(size: tuple[int, int] = (640, 480)) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encoded("HEIF", size)


def mp4(seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (64, 48), noise: bool = False) -> bytes:
    """An MPEG-4 video whose frame ``i`` is grey level ``10 * i`` (or noise, to make it big)."""
    import av

    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        if noise:
            s.bit_rate = 8_000_000
        for i in range(int(seconds * fps)):
            if noise:
                arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            else:
                arr = np.full((size[1], size[0], 3), min(250, 10 * i), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def webp_chunks(data: bytes) -> list[str]:
    """The RIFF chunk names of a WebP file (``EXIF``, ``ICCP``, ``XMP `` would be metadata)."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    names, pos = [], 12
    while pos + 8 <= len(data):
        name, size = data[pos : pos + 4].decode("latin-1"), struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        names.append(name)
        if name == "VP8X":
            flags = data[pos + 8]
            assert not flags & 0b00101100, "VP8X announces ICC, EXIF or XMP"
        pos += 8 + size + (size & 1)
    return names


def linear_dng(size: tuple[int, int] = (256, 192), orientation: int = 6) -> bytes:
    """A minimal linear (demosaiced) DNG without a preview, so LibRaw decodes it: a TIFF with DNGVersion,
    PhotometricInterpretation LinearRaw and an orientation."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    ifd = ImageFileDirectory_v2()
    ifd[50706] = bytes([1, 4, 0, 0])  # DNGVersion
    ifd.tagtype[50706] = 1
    ifd[50708] = "TestCam DNG"  # UniqueCameraModel
    ifd[262] = 34892  # LinearRaw
    ifd[274] = orientation
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 50, 50)).save(buf, "TIFF", tiffinfo=ifd)
    return buf.getvalue()
