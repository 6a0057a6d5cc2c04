"""What one run of the benchmark measures, in which modes, and how long that takes.

The plan is data so that the run and its time estimate read the same thing: ``estimate_seconds`` prices
every timed command and its settling from the per-command times of the last full run of the first method
(``bench/results/2026-11-26-s7-full.json``, shared mode, medians), so the budget (full ≤ 40 minutes,
``--quick`` ≤ 5) is checked by a unit test rather than by running it on a machine others are measuring on.

What was cut to fit, before any repetition: the one-edit rerun and the separate own-container verification
(no target), AzCopy's 100k first sync (437 s, no target: its rerun runs on rclone's copy), AzCopy and the SDK
pool on the tiny and big first syncs (2.3× and 1.4× rclone on big, 1.3× and 1.0× on tiny in every earlier
run: neither can be the best peer; ``--all-peers`` puts them back), and the shared mode where no target or
comparison needs it. The 100k first syncs load the library the reruns and verifications use and run once
per tool, as in every earlier run (300 s each).
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
    Cell("media", "first_sync", ALL_TOOLS, OURS_RCLONE),
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
# Median wall seconds per command in the last full run (shared mode, the slower of the last two full runs).
# Restores were never measured: priced at RESTORE_FACTOR × the same tool's first sync of the corpus (rclone's
# for AzCopy, whose upload is CPU-bound), as Azurite's Get Blob neither fdatasyncs nor hashes what it serves;
# the first full run replaces that guess.
FULL_SECONDS: dict[tuple[str, str], dict[str, float]] = {
    ("media", "first_sync"): {"azphotosync": 6.2, "rclone": 7.2, "azcopy": 8.2, "sdk": 5.3},
    ("media", "verify_deep"): {"azphotosync": 4.3, "rclone": 2.5},
    ("media", "restore"): {"azphotosync": 6.2, "rclone": 7.2, "azcopy": 7.2},  # × RESTORE_FACTOR
    ("big", "first_sync"): {"azphotosync": 13.7, "rclone": 13.9, "azcopy": 32.3, "sdk": 31.9},
    ("big", "restore"): {"azphotosync": 13.7, "rclone": 13.9, "azcopy": 13.9},
    ("tiny", "first_sync"): {"azphotosync": 40.8, "rclone": 43.7, "azcopy": 58.2, "sdk": 42.3},
    ("tiny", "restore"): {"azphotosync": 40.8, "rclone": 43.7, "azcopy": 43.7},
    ("scale", "first_sync"): {"azphotosync": 308.5, "rclone": 261.3},
    ("scale", "rerun_unchanged"): {"azphotosync": 0.9, "rclone": 15.2, "azcopy": 25.7},
    ("scale", "verify_shared"): {"azphotosync": 22.7, "rclone": 23.2},
    ("rows", "rerun_rows"): {"azphotosync": 1.0},
}
QUICK_SCALE = {"media": 40 / 300, "big": 320 / 2048, "tiny": 0.1, "scale": 0.1, "rows": 1.0}
RESTORE_FACTOR = 0.75
WRITES = {"first_sync"}  # commands after which Azurite autosaves (the next one waits a tick)
SETTLE_AFTER_WRITE = 7.0  # autosave tick + idle second + sync
SETTLE_AFTER_READ = 1.5  # idle second + sync
BOOKKEEPING = {True: 1.0, False: 0.5}  # per command (writes?): container made, blobs counted, dropped; folder removed
START_UP = 0.3  # a command's own start-up, which the quick corpora do not shrink
SEED_ROWS_PER_S = 9_000.0  # one 100-row transaction ≈ 8.8 ms of Azurite, 2.4 ms of ours (table_batch)
# Azurite's start, the corpora (3 GB and 120k files: ~35 s), the hash case (~15 s), rclone's untimed copies
# for the restores (media 7, big 14, tiny 44 s, each settled: ~90 s).
SET_UP = {"full": 140.0, "quick": 30.0}


def estimate_seconds(quick: bool, runs: int, *, all_peers: bool = False) -> float:
    """The run's expected length on this machine (see the module's docstring)."""
    total = SET_UP["quick" if quick else "full"]
    for c in ALL_PEERS_PLAN if all_peers else PLAN:
        total += cell_seconds(c, quick, runs)
    total += max(QUICK_ROWS if quick else FULL_ROWS) / SEED_ROWS_PER_S
    return total


def cell_seconds(c: Cell, quick: bool, runs: int) -> float:
    """One cell's expected seconds: every command, its start-up, settling and bookkeeping."""
    scale = QUICK_SCALE[c.case] if quick else 1.0
    n = 1 if c.once else runs
    rows = len(QUICK_ROWS if quick else FULL_ROWS) if c.case == "rows" else 1
    writes = c.measure in WRITES
    settle = SETTLE_AFTER_WRITE if writes else SETTLE_AFTER_READ
    factor = RESTORE_FACTOR if c.measure == "restore" else 1.0
    total = 0.0
    for tools in c.by_mode.values():
        for tool in tools:
            work = FULL_SECONDS[(c.case, c.measure)][tool] * scale * factor
            each = START_UP + work + settle + BOOKKEEPING[writes]
            total += each * n * rows
    return total
