"""`make demo`: back up a small generated library into a local Azurite, show that a rerun sends nothing, make
its thumbnails and an album, close the verification loop, and end with the command and URL of the local
gallery for it.

Runs the real CLI exactly as a user would (``azphotosync --emulator …``), then stops the Azurite it started.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import av
import pillow_heif
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
LIBRARY = DEMO / "library"
STATE = DEMO / "state"
CLI = str(Path(sys.executable).with_name("azphotosync"))


RGB = tuple[int, int, int]


def scene(size: tuple[int, int], sky: RGB, ground: RGB, sun: bool = True) -> Image.Image:
    """A small landscape-like picture (sky, sun, hills): real pixels, so the thumbnails show something."""
    w, h = size
    im = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(im)
    for y in range(h // 2):  # the sky lightens towards the horizon
        k = y / (h / 2)
        draw.line([(0, y), (w, y)], fill=tuple(int(c + (255 - c) * 0.6 * k) for c in sky))
    if sun:
        r = h // 10
        draw.ellipse([w * 0.7 - r, h * 0.25 - r, w * 0.7 + r, h * 0.25 + r], fill=(255, 236, 160))
    draw.polygon([(0, h * 0.65), (w * 0.3, h * 0.45), (w * 0.6, h * 0.6), (w, h * 0.4), (w, h), (0, h)], fill=ground)
    return im


def _exif(taken: str, model: str, orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0110] = model  # Model
    exif[0x0112] = orientation  # Orientation
    exif.get_ifd(0x8769)[0x9003] = taken  # Exif IFD: DateTimeOriginal
    return exif


def video(path: Path, colour: RGB, *, seconds: int = 2, size: tuple[int, int] = (320, 240), created: str = "") -> None:
    """A short H.264 (else MPEG-4) clip with a key frame every second (so seeking has somewhere to land) and,
    when given, a creation time; written by PyAV (its wheels carry FFmpeg)."""
    with av.open(str(path), "w", format="mov" if path.suffix.lower() == ".mov" else "mp4") as out:
        if created:
            out.metadata["creation_time"] = created
        try:
            stream = out.add_stream("libx264", rate=10)
            stream.options = {"g": "10", "preset": "ultrafast"}
        except Exception:  # an FFmpeg build without x264
            stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(seconds * 10):
            frame = scene(size, colour, (40 + i * 4, 110, 60), sun=i % 10 < 5)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_library() -> None:
    """Real small media in the same layout as ever: JPEGs with EXIF (one stored sideways, orientation 6), a
    HEIC, a MOV and an MP4, a TIFF scan, a PNG screenshot; a NEF that is not one (no RAW can be made here:
    its thumbnail fails with a reason, as a damaged file's would), an empty file, a duplicate and junk."""
    pillow_heif.register_heif_opener()
    lib = LIBRARY
    for d in ("2024/01 Winter", "2024/07 Été à la plage", "2025/Family #1 & friends", "2025/Screenshots"):
        (lib / d).mkdir(parents=True, exist_ok=True)
    winter = scene((1600, 1200), (120, 150, 190), (235, 238, 245))
    winter.save(lib / "2024/01 Winter/IMG_0001.JPG", quality=85, exif=_exif("2024:01:14 10:32:00", "Pixel 7"))
    snow = scene((1200, 900), (90, 110, 160), (220, 225, 235), sun=False)
    snow.save(lib / "2024/01 Winter/IMG_0002.HEIC", quality=80, exif=_exif("2024:01:15 16:05:00", "iPhone 15"))
    video(lib / "2024/01 Winter/Clip 0003.MOV", (100, 130, 180), created="2024-01-15T16:10:00Z")
    (lib / "2024/07 Été à la plage/DSC_0101.NEF").write_bytes(random.Random(2026).randbytes(300_000))
    # Stored sideways as a camera held upright does, with orientation 6: the thumbnail comes out portrait.
    beach = scene((1067, 1600), (40, 150, 230), (230, 200, 140)).rotate(90, expand=True)
    beach.save(lib / "2024/07 Été à la plage/DSC_0102.jpg", quality=85,
               exif=_exif("2024:07:21 11:15:00", "NIKON Z 6", orientation=6))  # fmt: skip
    video(lib / "2025/Family #1 & friends/PXL_2025.mp4", (230, 160, 90), created="2025-05-03T14:00:00Z")
    scan = scene((1000, 1400), (245, 240, 225), (200, 190, 170), sun=False)
    scan.save(lib / "2025/Family #1 & friends/scan 50%.tif", compression="tiff_deflate")
    shot = Image.new("RGB", (1280, 800), (250, 250, 252))
    ImageDraw.Draw(shot).rectangle([40, 40, 1240, 120], fill=(40, 90, 200))
    shot.save(lib / "2025/Screenshots/shot 1.png")
    (lib / "empty.gif").write_bytes(b"")
    # A duplicate (stored by server-side copy, not re-sent) and things the scanner skips.
    shutil.copy(lib / "2024/01 Winter/IMG_0001.JPG", lib / "2025/IMG_0001 (copy).JPG")
    (lib / ".DS_Store").write_bytes(b"junk")
    (lib / "2025/notes.txt").write_text("not a photo")


def run(*args: str) -> None:
    cmd = [CLI, *args]
    shown = " ".join(a if " " not in a else repr(a) for a in ["azphotosync", *args])
    print(f"\n$ {shown}", flush=True)
    subprocess.run(cmd, check=False, env={**os.environ, "AZPHOTOSYNC_SOURCE_ID": "demo-laptop"})


def lose_one_blob() -> str:
    """Simulate damage in the cloud: delete one backed-up blob directly with the SDK."""
    from azure.storage.blob import BlobServiceClient

    from agent.emulator import Azurite

    az = Azurite(**json.loads((STATE / "azurite.json").read_text()))
    container = BlobServiceClient.from_connection_string(az.connection_string).get_container_client("photos-archive")
    victim = next(b.name for b in container.list_blobs() if b.name.endswith("DSC_0102.jpg"))
    container.delete_blob(victim)
    return victim


def stop_emulator() -> None:
    info = STATE / "azurite.json"
    if info.exists():
        pid = json.loads(info.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)
            print(f"\n(stopped the demo's Azurite, pid {pid})")
        except OSError:
            pass


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    make_library()
    print(f"sample library: {LIBRARY}")
    try:
        run("--source", str(LIBRARY), "--state-dir", str(STATE), "--emulator", "--dry-run", "--verbose")
        run("--source", str(LIBRARY), "--state-dir", str(STATE), "--emulator", "--verbose")
        print("\nA second run reads nothing it already backed up and uploads nothing:")
        run("--source", str(LIBRARY), "--state-dir", str(STATE), "--emulator")
        print("\nThumbnails: two WebP renditions of every photo and video, made in the cloud (here, by the agent):")
        run("thumbnails", "--state-dir", str(STATE), "--emulator")
        print("\nAlbums live in the index table, shared by every device of the archive. Make one from a folder,")
        print("list the albums, and show it (files without a capture date are dated by their mtime, marked *):")
        album = "Summer at the beach"
        run("album", "create", album, "--state-dir", str(STATE), "--emulator")
        run("album", "add", album, "--path", "2024/07 Été à la plage", "--state-dir", str(STATE), "--emulator")
        run("album", "list", "--state-dir", str(STATE), "--emulator")
        run("album", "show", album, "--state-dir", str(STATE), "--emulator")
        print("\nThe closed loop: a blob disappears behind the agent's back; verification finds it,")
        print("the next sync re-uploads it from the local copy, and verification is clean again.")
        print(f"(deleting {lose_one_blob()})")
        run("verify", "--state-dir", str(STATE), "--emulator")
        run("--source", str(LIBRARY), "--state-dir", str(STATE), "--emulator")
        run("verify", "--state-dir", str(STATE), "--emulator")
        run("status", "--state-dir", str(STATE), "--emulator")
    finally:
        stop_emulator()
    print("\nBrowse the sample library in the private gallery (loopback only; Ctrl-C stops it):")
    print(f"  .venv/bin/azphotosync gallery --emulator --state-dir {STATE.relative_to(ROOT)} --open")
    print("  then open http://127.0.0.1:8765/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
