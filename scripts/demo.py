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

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
LIBRARY = DEMO / "library"
STATE = DEMO / "state"
CLI = str(Path(sys.executable).with_name("azphotosync"))


def make_library() -> None:
    rng = random.Random(2026)
    files = {
        "2024/01 Winter/IMG_0001.JPG": 900_000,
        "2024/01 Winter/IMG_0002.HEIC": 1_400_000,
        "2024/01 Winter/Clip 0003.MOV": 6_000_000,
        "2024/07 Été à la plage/DSC_0101.NEF": 3_000_000,
        "2024/07 Été à la plage/DSC_0102.jpg": 700_000,
        "2025/Family #1 & friends/PXL_2025.mp4": 4_000_000,
        "2025/Family #1 & friends/scan 50%.tif": 1_200_000,
        "2025/Screenshots/shot 1.png": 200_000,
        "empty.gif": 0,
    }
    for rel, size in files.items():
        p = LIBRARY / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(size))
    # A duplicate (stored by server-side copy, not re-sent) and things the scanner skips.
    shutil.copy(LIBRARY / "2024/01 Winter/IMG_0001.JPG", LIBRARY / "2025/IMG_0001 (copy).JPG")
    (LIBRARY / ".DS_Store").write_bytes(b"junk")
    (LIBRARY / "2025/notes.txt").write_text("not a photo")


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
