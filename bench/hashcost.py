"""CPU cost of what the agent hashes per byte of a large file (docs/benchmarks.md, "The hashing cost").

Part 1 hashes 512 MiB of random bytes held in memory, in 8 MiB pieces, and prints the median CPU seconds of
three runs for each composition: the one before XXH3 block ids (SHA-256 alone; + MD5; + a SHA-256 per block
in the read pass; + the SHA-256 re-hash of each block at staging) and the one now (SHA-256 + MD5 + an XXH3-128
per block in the read pass; + the XXH3-128 re-hash at staging).

Part 2 runs the read pass itself (``sync_core.local.hasher.hash_stream``, 4 MiB blocks: SHA-256 and the
XXH3-128 of each block; since 2026-12-08 the whole file's MD5 is computed by the transfer while blocks are
sent) over a 512 MiB temporary file in the page cache, and prints the median wall and CPU seconds of three
runs.

Run it as ``python -m bench.hashcost`` from the repository root.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from sync_core.local.hasher import block_digest, hash_stream

PIECE = os.urandom(8 << 20)
TOTAL = 512 << 20
BLOCK = 4 << 20
RUNS = 3


def _sha256(view: memoryview) -> None:
    hashlib.sha256(view).digest()


def _block_digest(view: memoryview) -> None:
    block_digest(view)  # the agent's own: XXH3-128


# (label, block hash, steps): 1 whole-file SHA-256, 2 + MD5, 3 + the block hash in the read pass, 4 + again
COMPOSITIONS: tuple[tuple[str, Callable[[memoryview], None], int], ...] = (
    ("SHA-256 only", _sha256, 1),
    ("+ MD5", _sha256, 2),
    ("+ MD5 + per-block SHA-256 (the read pass before)", _sha256, 3),
    ("+ the block SHA-256 again at staging (all hashing before)", _sha256, 4),
    ("+ MD5 + per-block XXH3-128 (the read pass now)", _block_digest, 3),
    ("+ the block XXH3-128 again at staging (all hashing now)", _block_digest, 4),
)


def composition(block_hash: Callable[[memoryview], None], steps: int) -> float:
    """CPU seconds to hash TOTAL bytes as ``steps`` says (the pieces are whole blocks: 8 MiB = 2 x 4 MiB)."""
    start = time.process_time()
    whole, md5 = hashlib.sha256(), hashlib.md5()
    view = memoryview(PIECE)
    for _ in range(TOTAL // len(PIECE)):
        whole.update(view)
        if steps >= 2:
            md5.update(view)
        for _block_pass in range(steps - 2):
            for off in range(0, len(view), BLOCK):
                block_hash(view[off : off + BLOCK])
    return time.process_time() - start


def read_pass(path: str) -> tuple[float, float]:
    """Wall and CPU seconds of one read pass over the file at ``path`` (in the page cache)."""
    wall, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb", buffering=0) as f:
        got = hash_stream(f, BLOCK)
    assert got.size == TOTAL and len(got.blocks) == TOTAL // BLOCK
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    print(f"Part 1: CPU per 512 MiB, median of {RUNS}")
    base = 0.0
    for label, block_hash, steps in COMPOSITIONS:
        cpu = statistics.median(composition(block_hash, steps) for _ in range(RUNS))
        base = base or cpu
        print(f"  {label}: {cpu:.2f} s CPU = {512 / cpu:.0f} MiB/s; {cpu / base:.2f}x")

    print(f"Part 2: the read pass (hash_stream, 4 MiB blocks) of a 512 MiB file in the page cache, median of {RUNS}")
    with tempfile.NamedTemporaryFile(prefix="hashcost-") as tmp:
        for _ in range(TOTAL // len(PIECE)):
            tmp.write(PIECE)
        tmp.flush()
        read_pass(tmp.name)  # into the page cache
        runs = [read_pass(tmp.name) for _ in range(RUNS)]
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {wall:.2f} s wall, {cpu:.2f} s CPU")

if __name__ == "__main__":
    main()
