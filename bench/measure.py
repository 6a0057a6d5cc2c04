"""Run one tool as a child process and measure its wall time, CPU seconds and peak RSS, in one of two modes.

* **shared** — the tool and Azurite may run on every core (the first round's method): the emulator's CPU
  is charged to whichever tool makes it work more.
* **pinned** — Azurite's threads on one core, the tool (``taskset -c``) on another, the same for every tool.

Before each timed command the harness waits until the previous command's writes have settled: Azurite's
autosave of its metadata store (after a command that wrote), the emulator idle (its CPU time standing still
for a second), and the kernel's dirty and writeback pages near zero (after ``sync``).

Peak RSS is the kernel's high-water mark (``VmHWM``) of the tool's process, polled while it runs. Not
``wait4``'s ``ru_maxrss``: a child forked from the harness inherits the harness's high-water mark across
``exec``, which would hide the tool's own figure behind the harness's. CPU seconds are the delta of
``getrusage(RUSAGE_CHILDREN)`` across the run: user + system of the tool and of every descendant it waited
for (rclone and AzCopy are single processes; the agent's helpers are threads).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Sample:
    wall: float
    rss_mb: float
    cpu: float  # user + system seconds of the tool's process tree
    rc: int
    log: str
    user: float = 0.0
    system: float = 0.0
    settled: float = 0.0  # seconds waited (untimed) before the command started


class ToolFailed(RuntimeError):
    pass


AUTOSAVE_SECONDS = 5.0  # Azurite writes a changed metadata store out, whole, on this timer
DIRTY_LIMIT_KIB = 32 * 1024  # "near zero": the machine is shared, other work always dirties a little
_last_write_end = -1e9  # when the last measured command that wrote to Azurite ended (monotonic)
_autosaves = True  # False while the emulator keeps its data in memory: nothing to wait for after a write


# -- modes ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Mode:
    """Where Azurite and the tool under test may run (``None``: every core the harness may use)."""

    name: str
    emulator_cpus: frozenset[int] | None = None
    tool_cpus: frozenset[int] | None = None


def make_modes(names: Iterable[str], cpus: Iterable[int]) -> list[Mode]:
    """``pinned`` puts the emulator on the lowest core and the tool on the next; it needs two cores."""
    avail = sorted(cpus)
    out: list[Mode] = []
    for name in names:
        if name == "shared":
            out.append(Mode("shared"))
        elif name == "pinned":
            if len(avail) < 2:
                raise ValueError("pinned mode needs two cores (one for Azurite, one for the tool)")
            out.append(Mode("pinned", frozenset(avail[:1]), frozenset(avail[1:2])))
        else:
            raise ValueError(f"unknown mode {name!r}: use pinned or shared")
    return out


def cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def wrap(cmd: Sequence[str], mode: Mode) -> list[str]:
    """The command as run in ``mode``: under ``taskset -c`` when the tool is pinned."""
    return ["taskset", "-c", cpu_list(mode.tool_cpus), *cmd] if mode.tool_cpus else list(cmd)


def pin_process(pid: int, cpus: Iterable[int]) -> int:
    """Set the affinity of every thread of ``pid`` (``taskset -a -p``): Node's worker and file-system
    threads exist already, and threads created later inherit their creator's mask. Returns the count."""
    mask, n = set(cpus), 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0
    for tid in tids:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(tid), mask)
            n += 1
    return n


def apply_mode(server_pid: int, mode: Mode) -> None:
    """Put the emulator where ``mode`` wants it (every usable core in shared mode)."""
    pin_process(server_pid, mode.emulator_cpus or os.sched_getaffinity(0))


# -- settling ------------------------------------------------------------------------------------------------
def dirty_kib(meminfo: str) -> int:
    """``Dirty`` + ``Writeback`` from /proc/meminfo text: page-cache bytes not yet on disk."""
    total = 0
    for line in meminfo.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Dirty", "Writeback"):
            total += int(rest.split()[0])
    return total


def autosave_wait(last_write_end: float, now: float) -> float:
    """Seconds still to wait for Azurite's autosave of what the last writing command changed."""
    return max(0.0, last_write_end + AUTOSAVE_SECONDS + 0.5 - now)


def emulator_autosaves(enabled: bool) -> None:
    """Say whether the emulator now running saves to disk (on its autosave timer) or keeps all in memory."""
    global _autosaves
    _autosaves = enabled


class IdleClock:
    """Tells when a CPU-time counter has stood still for ``quiet`` seconds (fed with samples)."""

    def __init__(self, quiet: float = 1.0):
        self.quiet = quiet
        self._last: float | None = None
        self._since = 0.0

    def feed(self, now: float, cpu: float) -> bool:
        if self._last is None or cpu != self._last:
            self._last, self._since = cpu, now
        return now - self._since >= self.quiet


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _meminfo() -> str:
    with open("/proc/meminfo") as f:
        return f.read()


def settle(server_pid: int, *, quiet: float = 1.0, limit: float = 90.0, dirty_limit: int = DIRTY_LIMIT_KIB) -> float:
    """Wait (untimed) until the previous commands' writes have settled: Azurite's autosave (one tick after
    the last command that wrote ended: it saves its whole metadata store as JSON, seconds of its CPU for a
    100k-blob store), then ``sync`` and until the emulator's CPU time stands still for ``quiet`` seconds
    and the kernel's dirty + writeback pages are below ``dirty_limit`` KiB (Azurite ``fdatasync``s every
    extent it appends, so a command started during writeback queues behind it). Gives up after ``limit``
    seconds (the machine is shared: others may keep pages dirty). Returns the seconds waited."""
    t0 = time.monotonic()
    if _autosaves:
        time.sleep(autosave_wait(_last_write_end, t0))
    os.sync()
    clock = IdleClock(quiet)
    while time.monotonic() - t0 < limit:
        idle = clock.feed(time.monotonic(), _cpu_seconds(server_pid))
        if idle and dirty_kib(_meminfo()) <= dirty_limit:
            break
        time.sleep(0.2)
    return time.monotonic() - t0


# -- CPU accounting and rotation -----------------------------------------------------------------------------
def cpu_delta(before: resource.struct_rusage, after: resource.struct_rusage) -> tuple[float, float]:
    """(user, system) seconds between two ``getrusage(RUSAGE_CHILDREN)`` snapshots: what the children
    reaped in between (and their own reaped descendants) used."""
    return max(0.0, after.ru_utime - before.ru_utime), max(0.0, after.ru_stime - before.ru_stime)


def rotation(rep: int, names: Sequence[str]) -> list[str]:
    """``names`` rotated by ``rep``: every tool takes every position once per len(names) rounds."""
    k = rep % max(1, len(names))
    return [*names[k:], *names[:k]]


def schedule(runs: int, by_mode: Mapping[str, Sequence[str]]) -> list[tuple[int, str, str]]:
    """(round, mode, tool) in run order: modes and each mode's tools both rotated between rounds, so the
    shared machine's drift spreads over every tool and mode alike."""
    return [
        (rep, mode, tool)
        for rep in range(runs)
        for mode in rotation(rep, list(by_mode))
        for tool in rotation(rep, by_mode[mode])
    ]


# -- running -------------------------------------------------------------------------------------------------
def run(
    cmd: list[str],
    *,
    env: dict[str, str],
    log: Path,
    cwd: Path | None = None,
    ok: tuple[int, ...] = (0,),
    timeout: float = 1800,
    settle_pid: int | None = None,
    mode: Mode | None = None,
    writes: bool = True,
) -> Sample:
    """Run ``cmd`` to completion in ``mode``; with ``settle_pid`` (Azurite's), first put the emulator where
    the mode wants it and wait for it to settle. ``writes``: the command changes Azurite's data (the next
    command then waits for the autosave)."""
    global _last_write_end
    mode = mode or Mode("shared")
    log.parent.mkdir(parents=True, exist_ok=True)
    waited = 0.0
    if settle_pid is not None:
        apply_mode(settle_pid, mode)
        waited = settle(settle_pid)
    full = wrap(cmd, mode)
    with open(log, "wb") as out:
        out.write((" ".join(full) + "\n").encode())
        out.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        peak = _HwmWatcher(proc.pid, deadline=time.monotonic() + timeout)
        _, status, _ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        user, system = cpu_delta(before, resource.getrusage(resource.RUSAGE_CHILDREN))
        if writes:
            _last_write_end = time.monotonic()
        peak.stop()
    if peak.timed_out:
        raise ToolFailed(f"{cmd[0]} killed after {timeout:.0f} s (log {log}): stuck (a full disk?)")
    proc.returncode = os.waitstatus_to_exitcode(status)
    sample = Sample(wall, peak.kib / 1024, user + system, proc.returncode, str(log), user, system, waited)
    if proc.returncode not in ok:
        tail = log.read_text(errors="replace")[-1500:]
        raise ToolFailed(f"{cmd[0]} exited {proc.returncode} (log {log}):\n{tail}")
    return sample


def wrote_now() -> None:
    """Mark an untimed write (loading, seeding) so the next timed command waits for its autosave."""
    global _last_write_end
    _last_write_end = time.monotonic()


class _HwmWatcher(threading.Thread):
    """Polls /proc/<pid>/status for VmHWM (monotonic, so polling only misses growth in the last tick)."""

    def __init__(self, pid: int, interval: float = 0.02, deadline: float = float("inf")):
        super().__init__(daemon=True)
        self.pid, self.interval, self.kib = pid, interval, 0
        self.deadline, self.timed_out = deadline, False
        self._done = threading.Event()
        self.start()

    def run(self) -> None:
        path = f"/proc/{self.pid}/status"
        while not self._done.is_set():
            try:
                with open(path) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.kib = max(self.kib, int(line.split()[1]))
                            break
            except OSError:
                return
            if time.monotonic() > self.deadline:  # kill it; wait4 in the caller then returns
                self.timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                return
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
