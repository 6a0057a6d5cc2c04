"""What one run of the benchmark measures, in which modes, and how long that takes.

The plan is data so that the run and its time estimate read the same thing: ``estimate_seconds`` prices
every timed command and its settling from per-command times measured on this machine (``FULL_SECONDS``),
so the budget (full ≤ 40 minutes, ``--quick`` ≤ 5) is checked by a unit test rather than by running it on
a machine others are measuring on.

What was cut to fit, before any repetition: the one-edit rerun and the separate own-container verification
(no target), AzCopy's 100k first sync (437 s, no target: its rerun runs on rclone's copy), AzCopy and the SDK
pool on the tiny and big first syncs (2.3× and 1.4× rclone on big, 1.3× and 1.0× on tiny in every earlier
run: neither can be the best peer; ``--all-peers`` puts them back), and the shared mode where no target
reads it (media: its shared-mode first syncs were the first round's comparison, 1.05× rclone in the first
run of this method; the 1M-row index of the rows case, ~7 minutes of seeding, took their place) and the SDK
pool on media (a reference, not a peer: 1.00× ours in that run). The 100k first syncs load the library
the reruns and verifications use and run once per tool, as in every earlier run.
"""

from __future__ import annotations

from dataclasses import dataclass

PEERS = ("rclone", "azcopy", "sdk")
ALL_TOOLS = ("azphotosync", *PEERS)
RESTORE_TOOLS = ("azphotosync", "rclone", "azcopy")
BOTH = ("pinned", "shared")
FULL_ROWS = (10_000, 100_000, 1_000_000)
QUICK_ROWS = (1_000, 10_000)
ROWS_SOURCE_FILES = 100  # the real library under the synthetic rows: the rerun still scans a folder


@dataclass(frozen=True)
class Cell:
    """One measurement: the tools run in each mode, each ``runs`` times (``once``: a single sample per
    tool, e.g. the load of the 100k library)."""

    case: str
    measure: str
    pinned: tuple[str, ...]
    shared: tuple[str, ...] = ()
    once: bool = False

    @property
    def by_mode(self) -> dict[str, tuple[str, ...]]:
        return {m: tools for m, tools in (("pinned", self.pinned), ("shared", self.shared)) if tools}


OURS_RCLONE = ("azphotosync", "rclone")
PLAN: tuple[Cell, ...] = (
    Cell("media", "first_sync", ("azphotosync", "rclone", "azcopy")),
    Cell("media", "verify_deep", OURS_RCLONE),
    Cell("media", "restore", RESTORE_TOOLS),
    Cell("big", "first_sync", OURS_RCLONE),
    Cell("big", "restore", RESTORE_TOOLS),
    Cell("tiny", "first_sync", (), OURS_RCLONE),
    Cell("tiny", "restore", RESTORE_TOOLS),
    Cell("scale", "first_sync", (), ("rclone", "azphotosync"), once=True),
    Cell("scale", "rerun_unchanged", ("azphotosync", "rclone", "azcopy")),
    Cell("scale", "verify_shared", OURS_RCLONE),
    Cell("rows", "rerun_rows", ("azphotosync",)),
)
# --all-peers: the cells a full run leaves out, in both modes.
ALL_PEERS_PLAN: tuple[Cell, ...] = (
    Cell("media", "first_sync", ALL_TOOLS, ALL_TOOLS),
    Cell("media", "verify_deep", OURS_RCLONE, OURS_RCLONE),
    Cell("media", "restore", RESTORE_TOOLS, RESTORE_TOOLS),
    Cell("big", "first_sync", ALL_TOOLS, ALL_TOOLS),
    Cell("big", "restore", RESTORE_TOOLS, RESTORE_TOOLS),
    Cell("tiny", "first_sync", ALL_TOOLS, ALL_TOOLS),
    Cell("tiny", "restore", RESTORE_TOOLS, RESTORE_TOOLS),
    Cell("scale", "first_sync", (), ("rclone", "azphotosync"), once=True),
    Cell("scale", "rerun_unchanged", ("azphotosync", "rclone", "azcopy"), ("azphotosync", "rclone", "azcopy")),
    Cell("scale", "verify_shared", OURS_RCLONE, OURS_RCLONE),
    Cell("rows", "rerun_rows", ("azphotosync",), ("azphotosync",)),
)


def cell(case: str, measure: str, *, tools: tuple[str, ...], modes: tuple[str, ...], all_peers: bool = False) -> Cell:
    """The plan's cell, narrowed to the tools and modes asked for (``--tools``, ``--modes``)."""
    c = next(c for c in (ALL_PEERS_PLAN if all_peers else PLAN) if (c.case, c.measure) == (case, measure))

    def keep(mode: str, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(t for t in names if t in tools) if mode in modes else ()

    return Cell(case, measure, keep("pinned", c.pinned), keep("shared", c.shared), c.once)


# -- the estimate --------------------------------------------------------------------------------------------
# Median wall seconds per command on this machine (2 × AMD EPYC). media and big: the first full run of this
# method (``bench/results/2026-12-07-r2-full.json``, the slower mode). tiny, scale and rows run since then
# on an empty in-memory emulator per case (``IN_MEMORY_CASES``), which the first run did not: their figures
# are the quick run's (``--quick``, 2026-12-07) scaled by the corpus (start-up kept once), with a margin.
# Ours on big since the MD5 left the read pass (2026-12-08, ``--cases big``, a loaded machine); our restores
# and deep verification since the streamed downloads (``2026-12-08-r2c-full.json``). AzCopy and
# the SDK pool on tiny and big (``--all-peers`` only): round one's ratios to rclone.
FULL_SECONDS: dict[tuple[str, str], dict[str, float]] = {
    ("media", "first_sync"): {"azphotosync": 10.9, "rclone": 10.7, "azcopy": 12.2, "sdk": 10.9},
    ("media", "verify_deep"): {"azphotosync": 2.4, "rclone": 3.3},
    ("media", "restore"): {"azphotosync": 3.4, "rclone": 4.2, "azcopy": 6.3},
    ("big", "first_sync"): {"azphotosync": 21.0, "rclone": 20.6, "azcopy": 48.0, "sdk": 47.0},
    ("big", "restore"): {"azphotosync": 10.5, "rclone": 9.6, "azcopy": 18.1},
    ("tiny", "first_sync"): {"azphotosync": 52.0, "rclone": 29.0, "azcopy": 38.0, "sdk": 29.0},
    ("tiny", "restore"): {"azphotosync": 26.0, "rclone": 18.0, "azcopy": 41.0},
    ("scale", "first_sync"): {"azphotosync": 230.0, "rclone": 127.0},
    ("scale", "rerun_unchanged"): {"azphotosync": 2.0, "rclone": 15.0, "azcopy": 24.0},
    ("scale", "verify_shared"): {"azphotosync": 14.0, "rclone": 12.0},
    ("rows", "rerun_rows"): {"azphotosync": 1.0},
}
QUICK_SCALE = {"media": 40 / 300, "big": 320 / 2048, "tiny": 0.1, "scale": 0.1, "rows": 1.0}
IN_MEMORY_CASES = frozenset({"tiny", "scale", "rows"})  # the emulator keeps them in memory (bench.run)
WRITES = {"first_sync"}  # commands after which an on-disk Azurite autosaves (the next one waits a tick)
SETTLE_AFTER_WRITE = 7.0  # autosave tick + idle second + sync
SETTLE_AFTER_READ = 1.5  # idle second + sync (also after writes to an in-memory emulator)
BOOKKEEPING = {True: 1.0, False: 0.5}  # per command (writes?): container made, blobs counted, dropped; folder removed
START_UP = 0.3  # a command's own start-up, which the quick corpora do not shrink
# Seeding synthetic rows: Azurite keeps a sorted index per key and inserts into it by moving the array, so
# a row costs more the more the table holds (measured 2026-12-07: 100k rows 11.7 s, 1M rows ~430 s).
SEED_LINEAR_S, SEED_QUADRATIC_S = 8.2e-5, 3.5e-10


def seed_seconds(rows: int) -> float:
    return SEED_LINEAR_S * rows + SEED_QUADRATIC_S * rows * rows


# Azurite's starts, the corpora (3 GB and 120k files: ~35 s), the hash case (~25 s), rclone's untimed copies
# for the restores (media 9, big 22, tiny ~30 s, each settled: ~75 s), and tiny's own copy again on a fresh
# emulator for its restores (~45 s).
SET_UP = {"full": 185.0, "quick": 35.0}


def estimate_seconds(
    quick: bool, runs: int, *, all_peers: bool = False, cases: tuple[str, ...] | None = None
) -> float:
    """The run's expected length on this machine (see the module's docstring); ``cases``: only those."""
    total = SET_UP["quick" if quick else "full"]
    for c in ALL_PEERS_PLAN if all_peers else PLAN:
        if cases is None or c.case in cases:
            total += cell_seconds(c, quick, runs)
    if cases is None or "rows" in cases:
        total += seed_seconds(max(QUICK_ROWS if quick else FULL_ROWS))
    return total


def cell_seconds(c: Cell, quick: bool, runs: int) -> float:
    """One cell's expected seconds: every command, its start-up, settling and bookkeeping."""
    scale = QUICK_SCALE[c.case] if quick else 1.0
    n = 1 if c.once else runs
    rows = len(QUICK_ROWS if quick else FULL_ROWS) if c.case == "rows" else 1
    writes = c.measure in WRITES
    settle = SETTLE_AFTER_WRITE if writes and c.case not in IN_MEMORY_CASES else SETTLE_AFTER_READ
    total = 0.0
    for tools in c.by_mode.values():
        for tool in tools:
            work = FULL_SECONDS[(c.case, c.measure)][tool] * scale
            each = START_UP + work + settle + BOOKKEEPING[writes]
            total += each * n * rows
    return total
