"""CPU cost of what the read pass hashes per byte of a large file (docs/benchmarks.md, "The hashing cost").

Hashes 512 MiB of random bytes held in memory, in 8 MiB pieces, four ways (SHA-256 alone; + MD5; + a
SHA-256 per block; + the block re-hash at staging) and prints the median CPU seconds of three runs each.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time

PIECE = os.urandom(8 << 20)
TOTAL = 512 << 20
LABELS = (
    "SHA-256 only",
    "+ MD5",
    "+ MD5 + per-block SHA-256 (the read pass)",
    "+ the block re-hash at staging (all hashing)",
)


def run(kind: int) -> float:
    start = time.process_time()
    whole, md5, block = hashlib.sha256(), hashlib.md5(), hashlib.sha256()
    view = memoryview(PIECE)
    for _ in range(TOTAL // len(PIECE)):
        whole.update(view)
        if kind >= 1:
            md5.update(view)
        if kind >= 2:
            block.update(view)
        if kind >= 3:
            hashlib.sha256(view).digest()
    return time.process_time() - start


def main() -> None:
    base = 0.0
    for kind, label in enumerate(LABELS):
        cpu = statistics.median(run(kind) for _ in range(3))
        base = base or cpu
        print(f"{label}: {cpu:.2f} s CPU per 512 MiB = {512 / cpu:.0f} MiB/s; {cpu / base:.2f}x")


if __name__ == "__main__":
    main()
