"""Deterministic corpora: the same seed gives the same names, sizes and bytes on every machine.

Content is pseudo-random (incompressible, unique per file) so no tool gains from compression or dedup.
A marker file records the spec, so a kept work dir (``--work``) is reused instead of regenerated.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
FIXED_MTIME_NS = 1_700_000_000 * 10**9  # 2023-11-14: older than any blob the run creates


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    files: int
    min_size: int
    max_size: int
    per_dir: int = 1000
    ext: str = ".jpg"
    seed: int = 1

    @property
    def approx_bytes(self) -> int:
        return self.files * (self.min_size + self.max_size) // 2


def specs(quick: bool) -> dict[str, CorpusSpec]:
    """The four corpora of docs/benchmarks.md; ``quick`` shrinks each for iteration."""
    if quick:
        return {
            "media": CorpusSpec("media", 40, MiB // 2, 6 * MiB, per_dir=20, ext=".jpg", seed=11),
            "tiny": CorpusSpec("tiny", 2000, KiB, KiB, per_dir=500, ext=".jpg", seed=12),
            "scale": CorpusSpec("scale", 10_000, 256, 4 * KiB, per_dir=1000, ext=".jpg", seed=13),
            "big": CorpusSpec("big", 1, 320 * MiB, 320 * MiB, ext=".mp4", seed=14),
        }
    return {
        "media": CorpusSpec("media", 300, MiB // 2, 6 * MiB, per_dir=50, ext=".jpg", seed=1),
        "tiny": CorpusSpec("tiny", 20_000, KiB, KiB, per_dir=1000, ext=".jpg", seed=2),
        "scale": CorpusSpec("scale", 100_000, 256, 4 * KiB, per_dir=1000, ext=".jpg", seed=3),
        "big": CorpusSpec("big", 1, 2 * GiB, 2 * GiB, ext=".mp4", seed=4),
    }


def relpath(spec: CorpusSpec, i: int) -> str:
    return f"d{i // spec.per_dir:04d}/IMG_{i:06d}{spec.ext}"


def _write_big(path: Path, size: int, rng: random.Random) -> None:
    """Stream a large file: a 16 MiB random pattern with a distinct counter per chunk (bounded memory)."""
    pattern = bytearray(rng.randbytes(16 * MiB))
    with open(path, "wb") as f:
        written, n = 0, 0
        while written < size:
            pattern[:8] = n.to_bytes(8, "little")
            chunk = memoryview(pattern)[: min(len(pattern), size - written)]
            f.write(chunk)
            written += len(chunk)
            n += 1


def generate(root: Path, spec: CorpusSpec) -> Path:
    """Create (or reuse) the corpus under ``root/<name>``; returns its folder."""
    folder = root / spec.name
    marker = root / f".{spec.name}.json"
    want = json.dumps(asdict(spec), sort_keys=True)
    if folder.is_dir() and marker.exists() and marker.read_text() == want:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rng = random.Random(spec.seed)
    for i in range(spec.files):
        path = folder / relpath(spec, i)
        path.parent.mkdir(parents=True, exist_ok=True)
        size = rng.randint(spec.min_size, spec.max_size)
        if size > 64 * MiB:
            _write_big(path, size, rng)
        else:
            path.write_bytes(rng.randbytes(size))
        os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    marker.write_text(want)
    return folder


def corpus_bytes(folder: Path) -> tuple[int, int]:
    """(file count, total bytes) as on disk."""
    n = total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            n += 1
            total += os.stat(os.path.join(dirpath, name)).st_size
    return n, total


def edit_one(folder: Path, spec: CorpusSpec, round_no: int) -> str:
    """Rewrite one file with new bytes of the same size and a fresh mtime (a photo re-saved by an editor)."""
    i = (round_no * 7919) % spec.files
    rel = relpath(spec, i)
    path = folder / rel
    size = path.stat().st_size
    data = random.Random(f"edit-{spec.seed}-{round_no}").randbytes(size)
    path.write_bytes(data)  # mtime = now
    return rel
