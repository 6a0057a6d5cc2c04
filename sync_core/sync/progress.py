"""What a run reports while it works (one :class:`Progress` protocol for sync and restore) and what a sync
reports when it ends; rendering is the agent's business."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

MAX_LISTED = 1000  # per-file lists kept in a summary (failures, changing files); the counts are complete
ALWAYS_CHANGING_RUNS = 3  # a file skipped as changing in this many consecutive runs needs attention


class Kind(StrEnum):
    UNCHANGED = "unchanged"  # stat matched the index: not read at all
    TOUCHED = "touched"  # stat changed, content did not: index updated, nothing sent
    UPLOADED = "uploaded"
    COPIED = "copied"  # server-side copy of content already in the container
    PRESENT = "present"  # blob already existed with this content: recorded, nothing sent
    WOULD_UPLOAD = "would_upload"  # dry run
    SKIPPED = "skipped"  # vanished, changed while being read/sent, symlink, special file (files the rules
    # leave out by name or content are counted in RunSummary.left_out, and in ``skipped``)
    FAILED = "failed"  # unreadable, unstorable name, service error after retries


@dataclass(frozen=True, slots=True)
class FileOutcome:
    relpath: str
    kind: Kind
    size: int = 0
    bytes_sent: int = 0
    blob_name: str | None = None
    detail: str = ""


@dataclass
class RunSummary:
    scanned: int = 0
    unchanged: int = 0
    hashed: int = 0
    touched: int = 0
    uploaded: int = 0
    copied: int = 0
    already_present: int = 0
    would_upload: int = 0
    would_upload_bytes: int = 0
    skipped: int = 0  # every file not backed up on purpose: left out by the rules, or skipped while processed
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)  # reason -> extension -> files/folders
    failed: int = 0
    deleted: int = 0
    bytes_uploaded: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    # Files skipped because they changed while being read or sent: retried next run, but a file that is
    # always changing is never backed up, so the runs keep their names (see :func:`always_changing`).
    changing: list[str] = field(default_factory=list)
    # Table index: the closed-loop repair at the start, the mirror at the end
    repaired: int = 0  # flagged blobs put right (re-uploaded, or found whole again)
    repair_lost: int = 0  # flagged blobs whose bytes no local file has any more
    repair_failed: int = 0
    repair_problems: list[dict[str, str]] = field(default_factory=list)
    mirrored: int = 0
    mirror_pending: int = 0  # rows the Table still has to learn (retried next run)
    mirror_error: str = ""
    index_unavailable: str = ""  # why the Table could not be used at all: the rows wait, the backup went on
    mirror_seconds: float = 0.0  # the Table mirror's time at the end of the run (its cost, for bench/)
    problems: int = 0  # non-file problems that make the run exit 1 (new losses, failed repairs, mirror)

    def add(self, o: FileOutcome) -> None:
        match o.kind:
            case Kind.UNCHANGED:
                self.unchanged += 1
            case Kind.TOUCHED:
                self.touched += 1
            case Kind.UPLOADED:
                self.uploaded += 1
            case Kind.COPIED:
                self.copied += 1
            case Kind.PRESENT:
                self.already_present += 1
            case Kind.WOULD_UPLOAD:
                self.would_upload += 1
                self.would_upload_bytes += o.size
            case Kind.SKIPPED:
                self.skipped += 1
                if "changed" in o.detail and len(self.changing) < MAX_LISTED:
                    self.changing.append(o.relpath)
            case Kind.FAILED:
                self.failed += 1
                if len(self.failures) < MAX_LISTED:
                    self.failures.append({"path": o.relpath, "error": o.detail})
        self.bytes_uploaded += o.bytes_sent

    def add_left_out(self, left_out: dict[str, dict[str, int]]) -> None:
        """Count what the scan's rules left out (by reason and extension) as skipped."""
        for reason, by_ext in left_out.items():
            mine = self.left_out.setdefault(reason, {})
            for ext, n in by_ext.items():
                mine[ext] = mine.get(ext, 0) + n
                self.skipped += n

    @property
    def exit_code(self) -> int:
        """0 all good, 1 some files failed (the rest were backed up) or a problem was found."""
        return 1 if self.failed or self.problems else 0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["exit_code"] = self.exit_code
        return d


def always_changing(summaries: list[dict[str, Any]], runs: int = ALWAYS_CHANGING_RUNS) -> list[str]:
    """Files skipped as "changed while being read" in each of the newest ``runs`` run summaries (newest
    first): such a file is never backed up although every run ends well, so it must be reported."""
    if len(summaries) < runs:
        return []
    sets = [set(s.get("changing") or []) if isinstance(s, dict) else set() for s in summaries[:runs]]
    return sorted(set.intersection(*sets))


O_contra = TypeVar("O_contra", contravariant=True)


class Progress(Protocol[O_contra]):
    """What a run reports while it works, whatever it moves (a sync's :class:`FileOutcome`, a restore's
    ``RestoreOutcome``): events from the run's main thread, ``advance`` from any thread."""

    def planned(self, files: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, outcome: O_contra) -> None: ...

    def note(self, text: str, *, verbose: bool = False) -> None: ...


ProgressSink = Progress[FileOutcome]  # a sync's


class NullProgress:
    """A sink that ignores everything (library use, tests), for any run."""

    def planned(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, outcome: object) -> None:
        pass

    def note(self, text: str, *, verbose: bool = False) -> None:
        pass
