"""The two renditions of an original, content-addressed: ``<sha[0:2]>/<sha256>/<size>.webp``.

Sizes are the longer side in pixels (320 for grids, 1600 for viewing), never larger than the original.
The output is a bare WebP: no EXIF, ICC or XMP is written (a shared thumbnail must not carry the
original's GPS position), which is why the picture is converted to sRGB first.
"""

from __future__ import annotations

import io

from PIL import Image

SIZES = (320, 1600)  # smallest first: uploaded in this order, so the largest existing means both exist
LARGEST = max(SIZES)
WEBP_QUALITY = 80


def rendition_name(sha256: str, size: int) -> str:
    return f"{sha256[:2]}/{sha256}/{size}.webp"


def render(picture: Image.Image, sizes: tuple[int, ...] = SIZES) -> dict[int, bytes]:
    """WebP bytes per size, each resized from the next larger one (cheaper than from the original)."""
    out: dict[int, bytes] = {}
    current = picture
    for size in sorted(sizes, reverse=True):
        if max(current.size) > size:
            current = current.copy()
            current.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out[size] = encode_webp(current)
    return dict(sorted(out.items()))


def encode_webp(picture: Image.Image) -> bytes:
    """A WebP with no metadata: the encoder is handed none, and the picture's own ``info`` is dropped."""
    bare = picture.copy()
    bare.info = {}
    buf = io.BytesIO()
    bare.save(buf, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", icc_profile=None, xmp=b"")
    return buf.getvalue()
