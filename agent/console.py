"""Terminal output: a rich progress bar on a TTY, plain periodic lines otherwise, and the end summary."""

from __future__ import annotations

import time
from typing import Self

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sync_core.errors import redact
from sync_core.sync.progress import FileOutcome, Kind, RunSummary

PLAIN_INTERVAL = 10.0  # seconds between progress lines when not on a terminal


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class RunConsole:
    """A run's progress on stderr (a bar on a terminal, periodic plain lines otherwise): the
    :class:`sync_core.sync.progress.Progress` events but ``file_done``, which each run's console defines for
    its own outcome type and ends with :meth:`finished`."""

    def __init__(self, console: Console, *, verbose: bool = False, label: str = "syncing"):
        self.console = console
        self.verbose = verbose
        self.label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._files_total = 0
        self._files_done = 0
        self._bytes_total = 0
        self._bytes_done = 0
        self._t0 = time.monotonic()
        self._last_line = self._t0

    def __enter__(self) -> Self:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[files]} files"),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    # -- Progress ------------------------------------------------------------------------------------
    def planned(self, files: int, total_bytes: int) -> None:
        self._files_total, self._bytes_total = files, total_bytes
        self._t0 = self._last_line = time.monotonic()
        if self._progress is not None:
            self._task = self._progress.add_task(self.label, total=total_bytes or None, files=f"0/{files}")
        elif files:
            self.console.print(f"{self.label}: {files} file(s), {human_bytes(total_bytes)} to process")

    def advance(self, nbytes: int) -> None:
        self._bytes_done += nbytes
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)

    def finished(self, line: str | None = None, *, counted: bool = True) -> None:
        """One file done: counted (unless ``counted`` is false), ``line`` printed when given."""
        if counted:
            self._files_done += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, files=f"{self._files_done}/{self._files_total}")
        if line is not None:
            self.console.print(line)
        self._maybe_plain_line()

    def note(self, text: str, *, verbose: bool = False) -> None:
        if self.verbose or not verbose:
            self.console.print(escape(redact(text)))

    def _maybe_plain_line(self) -> None:
        if self._progress is not None:
            return
        now = time.monotonic()
        if now - self._last_line < PLAIN_INTERVAL:
            return
        self._last_line = now
        rate = self._bytes_done / max(now - self._t0, 1e-9)
        left = (self._bytes_total - self._bytes_done) / rate if rate > 0 else float("nan")
        self.console.print(
            f"progress: {self._files_done}/{self._files_total} files, {human_bytes(self._bytes_done)}"
            f"/{human_bytes(self._bytes_total)}, {human_bytes(rate)}/s, ETA {left:.0f}s"
        )


class ConsoleProgress(RunConsole):
    """A sync's progress: failures always, every other file under ``--verbose``."""

    def file_done(self, outcome: FileOutcome) -> None:
        line = None
        if outcome.kind == Kind.FAILED:
            line = f"[red]failed[/red]  {escape(outcome.relpath)}: {escape(redact(outcome.detail))}"
        elif self.verbose:
            line = outcome_line(outcome.kind.value, outcome.relpath, outcome.detail)
        self.finished(line, counted=outcome.kind != Kind.UNCHANGED)


def outcome_line(kind: str, relpath: str, detail: str) -> str:
    """The ``--verbose`` line of one file: its outcome, its path and why."""
    extra = f" ({escape(redact(detail))})" if detail else ""
    return f"{kind:<12} {escape(relpath)}{extra}"


def print_summary(console: Console, s: RunSummary, where: str) -> None:
    """The end-of-run summary for people (``--json`` prints :meth:`RunSummary.to_dict` instead)."""
    if s.dry_run:
        console.print(
            f"dry run: would upload {s.would_upload} file(s), {human_bytes(s.would_upload_bytes)} "
            f"(new or changed by size/mtime); {s.unchanged} unchanged; nothing was written"
        )
    else:
        console.print(f"synced into {escape(where)}")
        console.print(
            f"  scanned {s.scanned}  unchanged {s.unchanged}  hashed {s.hashed}  uploaded {s.uploaded}  "
            f"copied {s.copied}  already present {s.already_present}  touched {s.touched}  "
            f"skipped {s.skipped}  failed {s.failed}  deleted {s.deleted}"
        )
        rate = s.bytes_uploaded / s.seconds if s.seconds else 0
        console.print(f"  sent {human_bytes(s.bytes_uploaded)} in {s.seconds:.1f} s ({human_bytes(rate)}/s)")
    if s.left_out:
        console.print(f"  left out {escape(describe_left_out(s.left_out))}")
    if s.failed:
        console.print(f"[red]{s.failed} file(s) failed[/red]; they are retried on the next run")
    _print_table_index(console, s)


def describe_left_out(left_out: dict[str, dict[str, int]], per_reason: int = 6) -> str:
    """``not a photo or video 7 (.mpo 5, .txt 2); hidden 1 ((folder) 1)``: what the rules skipped, by reason
    and extension, the most frequent first."""
    parts = []
    for reason, by_ext in sorted(left_out.items(), key=lambda kv: -sum(kv[1].values())):
        top = sorted(by_ext.items(), key=lambda kv: (-kv[1], kv[0]))
        exts = ", ".join(f"{ext} {n}" for ext, n in top[:per_reason])
        more = f", {len(top) - per_reason} more" if len(top) > per_reason else ""
        parts.append(f"{reason} {sum(by_ext.values())} ({exts}{more})")
    return "; ".join(parts)


def _print_table_index(console: Console, s: RunSummary) -> None:
    """The closed loop and the Table mirror: what was repaired, what is lost, what the cloud cannot see yet."""
    if s.repaired or s.repair_lost or s.repair_failed:
        console.print(
            f"  cloud-flagged blobs: repaired {s.repaired}  lost {s.repair_lost}  repair failed {s.repair_failed}"
        )
    for p in s.repair_problems:
        label = "[red]LOST[/red]" if p["outcome"] == "lost" else "[yellow]repair failed[/yellow]"
        console.print(f"{label} {escape(p['blob_name'])}: {escape(redact(p['detail']))}")
    if s.mirror_error:
        console.print(
            f"[yellow]index table not fully updated[/yellow] ({escape(redact(s.mirror_error))}); "
            f"{s.mirror_pending} row(s) are retried on the next run"
        )
