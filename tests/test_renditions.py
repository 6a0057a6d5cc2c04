"""Renditions from real media made here: decode, orientation, sRGB, sizes, no metadata, and the reasons
recorded for files that cannot be rendered."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from sync_core.derived.decoders import KIND_IMAGE, KIND_RAW, KIND_VIDEO, DecodeError, Limits, decode, kind_of
from sync_core.derived.renditions import SIZES, render, rendition_name
from tests.rendition_media import BLUE, RED, encoded, heic, jpeg_oriented, linear_dng, mp4, png_bomb, webp_chunks


def _renditions(kind: str, data: bytes) -> tuple[dict[int, Image.Image], object]:
    decoded = decode(kind, io.BytesIO(data), target=max(SIZES))
    out = {}
    for size, body in render(decoded.image).items():
        assert set(webp_chunks(body)) <= {"VP8 ", "VP8L", "VP8X", "ALPH"}, webp_chunks(body)
        im = Image.open(io.BytesIO(body))
        assert im.format == "WEBP" and not im.info.get("exif") and not im.info.get("icc_profile")
        assert not im.getexif()
        out[size] = im
    return out, decoded


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 40) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=False))


def test_rendition_names_are_content_addressed():
    sha = "ab" + "0" * 62
    assert rendition_name(sha, 320) == f"ab/{sha}/320.webp"
    assert rendition_name(sha, 1600) == f"ab/{sha}/1600.webp"


def test_kinds_by_extension():
    assert kind_of("a/b.JPG") == KIND_IMAGE and kind_of("x.heic") == KIND_IMAGE and kind_of("x.avif") == KIND_IMAGE
    assert kind_of("x.CR3") == KIND_RAW and kind_of("x.dng") == KIND_RAW and kind_of("x.rw2") == KIND_RAW
    assert kind_of("x.mov") == KIND_VIDEO and kind_of("x.MTS") == KIND_VIDEO and kind_of("x.3gp") == KIND_VIDEO
    assert kind_of("x.xmp") is None and kind_of("notes.txt") is None


def test_jpeg_with_orientation_6_comes_out_portrait_with_no_metadata():
    out, decoded = _renditions(KIND_IMAGE, jpeg_oriented(400, 300, 6))
    assert (decoded.width, decoded.height) == (300, 400)  # the original's size as shown
    assert out[1600].size == (300, 400)  # never upscaled
    assert out[320].size == (240, 320)
    small = out[320].convert("RGB")
    assert _close(small.getpixel((120, 20)), RED) and _close(small.getpixel((120, 300)), BLUE)
    raw = render(decoded.image)[320]
    assert b"TestCam" not in raw and b"Exif" not in raw


@pytest.mark.parametrize(
    "fmt,kw,mode",
    [("PNG", {}, "RGBA"), ("TIFF", {"compression": "tiff_lzw"}, "RGB"), ("GIF", {}, "RGB"), ("WEBP", {}, "RGB"),
     ("AVIF", {}, "RGB"), ("BMP", {}, "RGB")],
)  # fmt: skip
def test_still_formats(fmt, kw, mode):
    out, decoded = _renditions(KIND_IMAGE, encoded(fmt, (2400, 1800), mode, **kw))
    assert (decoded.width, decoded.height) == (2400, 1800)
    assert out[1600].size == (1600, 1200) and out[320].size == (320, 240)
    assert out[320].mode == ("RGBA" if mode == "RGBA" else "RGB")
    assert _close(out[320].convert("RGB").getpixel((100, 100)), (10, 200, 10))


def test_heic():
    out, decoded = _renditions(KIND_IMAGE, heic((640, 480)))
    assert (decoded.width, decoded.height) == (640, 480)
    assert out[1600].size == (640, 480) and out[320].size == (320, 240)


def test_video_poster_frame_from_about_the_first_second():
    out, decoded = _renditions(KIND_VIDEO, mp4(seconds=3.0, fps=10))
    assert decoded.duration == pytest.approx(3.0, abs=0.2)
    assert (decoded.width, decoded.height) == (64, 48) and out[320].size == (64, 48)
    grey = out[320].convert("L").getpixel((32, 24))
    assert 80 <= grey <= 120  # frame 10 (t = 1 s) is grey 100


def test_short_video_takes_its_middle():
    _, decoded = _renditions(KIND_VIDEO, mp4(seconds=0.6, fps=10))
    assert decoded.duration == pytest.approx(0.6, abs=0.15)


@pytest.mark.parametrize(
    "kind,data,reason",
    [
        (KIND_IMAGE, jpeg_oriented()[:1500], "cannot decode"),
        (KIND_IMAGE, b"definitely not a picture" * 10, "unknown or unsupported image format"),
        (KIND_IMAGE, png_bomb(), "decompression bomb"),
        (KIND_IMAGE, b"", "unknown or unsupported image format"),
        (KIND_VIDEO, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "video"),
        (KIND_RAW, b"II*\x00" + b"\x00" * 500, "RAW"),
    ],
)
def test_undecodable_files_give_a_reason(kind, data, reason):
    with pytest.raises(DecodeError) as info:
        decode(kind, io.BytesIO(data), target=1600)
    assert reason in str(info.value) and "\n" not in str(info.value)


def test_the_pixel_limit_applies_to_formats_decoded_whole():
    with pytest.raises(DecodeError, match="decompression bomb: 2400x1800"):
        decode(KIND_IMAGE, io.BytesIO(encoded("PNG", (2400, 1800))), target=1600, limits=Limits(pixels=1_000_000))


_PANORAMA_PROBE = """
import io, json, re, sys
from PIL import Image
from sync_core.derived.decoders import KIND_IMAGE, decode
from sync_core.derived.renditions import render
with open(sys.argv[1], "rb") as f:
    d = decode(KIND_IMAGE, f, target=1600)
out = render(d.image)
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))  # this process's peak
print(json.dumps({"w": d.width, "h": d.height, "decoded": d.image.size,
                  "sizes": {k: Image.open(io.BytesIO(v)).size for k, v in out.items()}, "peak_kb": hwm}))
"""


def test_a_200_megapixel_panorama_is_decoded_reduced_in_bounded_memory(tmp_path: Path):
    path = tmp_path / "pano.jpg"
    im = Image.new("L", (20_000, 10_000), 128)
    im.save(path, "JPEG", quality=50)
    del im
    probe = subprocess.run(
        [sys.executable, "-c", _PANORAMA_PROBE, str(path)], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert (result["w"], result["h"]) == (20_000, 10_000)
    assert result["decoded"] == [2500, 1250]  # libjpeg's 1/8 scale: 3 MP held, not 200 MP
    assert result["sizes"] == {"320": [320, 160], "1600": [1600, 800]}
    assert result["peak_kb"] < 150 * 1024  # a whole decode would hold 200 MB (grey), 600 MB once RGB


def test_heic_with_orientation_6_comes_out_portrait():
    import pillow_heif

    pillow_heif.register_heif_opener()
    im = Image.new("RGB", (400, 300), BLUE)
    im.paste(RED, (0, 0, 200, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, "HEIF", exif=exif.tobytes())
    out, decoded = _renditions(KIND_IMAGE, buf.getvalue())
    assert (decoded.width, decoded.height) == (300, 400) and out[320].size == (240, 320)
    small = out[320].convert("RGB")
    assert _close(small.getpixel((120, 20)), RED) and _close(small.getpixel((120, 300)), BLUE)


def test_sixteen_bit_and_cmyk_inputs_become_8_bit_rgb():
    grey16 = Image.new("I;16", (64, 48), 40_000)
    buf = io.BytesIO()
    grey16.save(buf, "PNG")
    out, _ = _renditions(KIND_IMAGE, buf.getvalue())
    assert out[320].mode == "RGB" and _close(out[320].getpixel((5, 5)), (156, 156, 156), 4)
    out, _ = _renditions(KIND_IMAGE, encoded("JPEG", (64, 48), "CMYK"))
    assert out[320].mode == "RGB"


def test_raw_without_a_preview_is_decoded_by_libraw_and_turned_upright():
    out, decoded = _renditions(KIND_RAW, linear_dng((256, 192), orientation=6))
    assert (decoded.width, decoded.height) == (192, 256)  # the sensor's landscape, shown portrait
    assert out[320].size[1] > out[320].size[0]
