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


def video(
    fmt: str, seed: int = 0, metadata: dict[str, str] | None = None, frames: int = 3, mdta: bool = False
) -> bytes:
    """A short clip muxed by FFmpeg (``fmt`` as FFmpeg names it), with container metadata when given: in
    QuickTime user data (``udta/©mod``…) by default, as ``mdta`` keys (Apple's way) with ``mdta``."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt, options={"movflags": "use_metadata_tags"} if mdta else None) as c:
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


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def _tiff(tags: dict[int, str]) -> bytes:
    """A bare TIFF structure (no ``Exif`` header) whose IFD0 holds ``tags``, as Pillow writes EXIF."""
    e = Image.Exif()
    for tag, value in tags.items():
        e[tag] = value
    raw = e.tobytes()
    return raw[6:] if raw.startswith(b"Exif\x00\x00") else raw


def cr3(model: str = "Canon EOS R5", taken: str = "2022:11:05 14:03:22", offset: str | None = "+01:00") -> bytes:
    """A Canon CR3 skeleton as the camera lays it out: ``ftyp crx``, then ``moov`` holding the Canon ``uuid``
    box with ``CMT1`` (IFD0: make, model) and ``CMT2`` (the EXIF IFD: date, offset)."""
    canon = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
    exif_tags = {0x9003: taken} | ({0x9011: offset} if offset else {})
    cmt = _box(b"CMT1", _tiff({0x010F: "Canon", 0x0110: model})) + _box(b"CMT2", _tiff(exif_tags))
    mvhd = _box(b"mvhd", bytes(4) + bytes(96))
    moov = _box(b"moov", _box(b"uuid", canon + _box(b"CNCV", b"CanonCR3_001/00.09.00/00.00.00") + cmt) + mvhd)
    return _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom") + moov + _box(b"mdat", bytes(64))


def raf(model: str = "X-T3", exif_data: Image.Exif | None = None) -> bytes:
    """A Fujifilm RAF: the 16-byte magic, version and camera name, the JPEG preview's offset and length at byte
    84, then the preview (a JPEG carrying the EXIF)."""
    preview = still("JPEG", 5, exif_data if exif_data is not None else exif(model=model))
    head = bytearray(160)
    head[0:16] = b"FUJIFILMCCD-RAW "
    head[16:20] = b"0201"
    head[20:28] = b"FF383501"
    head[28 : 28 + len(model)] = model.encode()
    head[60:64] = b"0100"
    head[84:92] = len(head).to_bytes(4, "big") + len(preview).to_bytes(4, "big")
    return bytes(head) + preview


def x3f(model: str = "SIGMA DP2 Merrill", unix_local: int = 1_400_000_000) -> bytes:
    """A Sigma X3F (version 2.3): header, a ``PROP`` section (UTF-16 name/value pairs, among them
    ``CAMMODEL`` and ``TIME``), and the ``SECd`` directory whose offset ends the file."""
    import struct

    header = bytearray(b"FOVb" + struct.pack("<I", 0x00020003) + bytes(16) + struct.pack("<IIII", 0, 64, 48, 0))
    header += b"Auto".ljust(32, b"\x00") + bytes(32) + bytes(4 * 32)
    props = [("CAMMANUF", "SIGMA"), ("CAMMODEL", model), ("TIME", str(unix_local))]
    text, table = "", b""
    for name, value in props:
        table += struct.pack("<I", len(text))
        text += name + "\x00"
        table += struct.pack("<I", len(text))
        text += value + "\x00"
    body = text.encode("utf-16-le")
    prop = b"SECp" + struct.pack("<IIIII", 0x00020000, len(props), 0, 0, len(text)) + table + body
    prop_at = len(header)
    directory_at = prop_at + len(prop)
    directory = b"SECd" + struct.pack("<II", 0x00020000, 1) + struct.pack("<II4s", prop_at, len(prop), b"PROP")
    return bytes(header) + prop + directory + struct.pack("<I", directory_at)
