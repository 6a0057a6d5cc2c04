"""Renditions throughput: ``sync_core.derived`` (decode → orient → sRGB → two bare WebP) against a plain
Pillow loop doing the same decode-resize-encode on the same files with the same number of processes.

    .venv/bin/python -m bench.renditions                       # 40 photos of 12 MP, 2 processes
    .venv/bin/python -m bench.renditions --files 200 --megapixels 24 --processes 2 --work /tmp/rend

The benchmark's media corpus is incompressible random bytes (nothing decodes it), so this generates its
own: photo-like JPEGs (smooth gradients plus sensor-like noise, quality 90, half with EXIF orientation 6)
and a few PNGs, deterministically. Both sides read local files: the storage round trips are measured by
the sync benchmark; this measures the decode-resize-encode that decides a renditions run's speed.
Reported: files/s, MB of originals/s, and each worker's peak RSS (``VmHWM``), best of ``--runs``.

    .venv/bin/python -m bench.renditions --video-4g            # the poster frame of a 4 GB video

``--video-4g`` writes a sparse 4 GiB MP4 (a real 10-second clip, then a 4 GiB ``free`` box, then the
index at the end, where a camera's recorder puts it) and takes its poster frame through
:class:`~sync_core.derived.blob_reader.BlobReader` over a local stand-in for the blob's ranged downloads;
it reports the bytes read, the number of ranges and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def make_corpus(work: Path, files: int, megapixels: float) -> list[Path]:
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(19)
    w = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    h = int(w * 3 / 4)
    paths = []
    for i in range(files):
        path = work / (f"p{i:04d}.png" if i % 10 == 9 else f"p{i:04d}.jpg")
        paths.append(path)
        if path.exists():
            continue
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([x / w * 200, y / h * 200, (x + y) / (w + h) * 255], axis=-1)
        noisy = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        im = Image.fromarray(noisy)
        if path.suffix == ".png":
            im.resize((w // 3, h // 3)).save(path, "PNG")
        else:
            exif = Image.Exif()
            if i % 2:
                exif[0x0112] = 6
            im.save(path, "JPEG", quality=90, exif=exif)
    return paths


def _peak_kb() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]


def ours(path: str) -> tuple[int, int, int]:
    from sync_core.derived.decoders import KIND_IMAGE, decode
    from sync_core.derived.renditions import LARGEST, render

    with open(path, "rb") as f:
        out = render(decode(KIND_IMAGE, f, target=LARGEST).image)
    return os.getpid(), _peak_kb(), sum(map(len, out.values()))


def plain(path: str) -> tuple[int, int, int]:
    total = 0
    with Image.open(path) as im:
        im.thumbnail((1600, 1600))  # Pillow's own draft for JPEGs
        im = ImageOps.exif_transpose(im).convert("RGB")
        for size in (1600, 320):
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "WEBP", quality=80)
            total += len(buf.getvalue())
    return os.getpid(), _peak_kb(), total


def measure(fn, paths: list[Path], processes: int) -> dict:
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(fn, [str(paths[0])] * processes))  # imports and warm-up, untimed
        t0 = time.perf_counter()
        results = list(pool.map(fn, [str(p) for p in paths]))
        seconds = time.perf_counter() - t0
    peaks: dict[int, int] = {}
    for pid, peak, _ in results:
        peaks[pid] = max(peaks.get(pid, 0), peak)
    size = sum(p.stat().st_size for p in paths)
    return {
        "seconds": round(seconds, 3),
        "files_per_s": round(len(paths) / seconds, 2),
        "mb_per_s": round(size / 1e6 / seconds, 2),
        "peak_rss_mb_per_worker": round(max(peaks.values()) / 1024, 1),
    }


class _FileBlob:
    """What :class:`BlobReader` asks of a ``BlobClient`` (ranged downloads), served from a local file."""

    def __init__(self, path: Path):
        self.path = path

    def download_blob(self, offset: int, length: int, **_: object) -> _FileBlob:
        with open(self.path, "rb") as f:
            f.seek(offset)
            self._data = f.read(length)
        return self

    def readall(self) -> bytes:
        return self._data


def video_4g(work: Path) -> dict:
    import struct

    from sync_core.derived.blob_reader import BlobReader
    from sync_core.derived.decoders import KIND_VIDEO, decode
    from tests.rendition_media import mp4

    clip = mp4(seconds=10.0, fps=10, size=(320, 240), noise=True)
    boxes, pos = {}, 0
    while pos < len(clip):
        size = struct.unpack(">I", clip[pos : pos + 4])[0]
        boxes[clip[pos + 4 : pos + 8]] = (pos, size)
        pos += size
    moov_at = boxes[b"moov"][0]  # chunk offsets point into the mdat before it: a box in between is harmless
    pad = 4 * 1024**3
    path = work / "video-4g.mp4"
    with open(path, "wb") as f:
        f.write(clip[:moov_at])
        f.write(struct.pack(">I4sQ", 1, b"free", pad))
        f.seek(pad - 16, os.SEEK_CUR)  # sparse: no disk
        f.write(clip[moov_at:])
    size = path.stat().st_size
    t0 = time.perf_counter()
    with BlobReader(_FileBlob(path), size) as reader:  # type: ignore[arg-type]
        decoded = decode(KIND_VIDEO, reader, target=1600)
    out = {"video_bytes": size, "bytes_read": reader.bytes_read, "ranges": reader.requests,
           "duration_s": round(decoded.duration or 0, 2), "seconds": round(time.perf_counter() - t0, 3),
           "peak_rss_mb": round(_peak_kb() / 1024, 1)}  # fmt: skip
    path.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--video-4g", action="store_true", help="only the 4 GiB video's poster frame")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="azps-rend-"))
    if args.video_4g:
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(video_4g(work), indent=2))
        return
    paths = make_corpus(work, args.files, args.megapixels)
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for _ in range(args.runs):  # alternating, so noise from the shared machine falls on both
        runs["ours"].append(measure(ours, paths, args.processes))
        runs["plain"].append(measure(plain, paths, args.processes))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    result = {
        "files": len(paths), "megapixels": args.megapixels, "processes": args.processes,
        "corpus_mb": round(sum(p.stat().st_size for p in paths) / 1e6, 1), **best,
        "ratio_ours_over_plain_time": round(best["ours"]["seconds"] / best["plain"]["seconds"], 3),
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
