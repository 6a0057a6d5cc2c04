"""Run one tool as a child process and measure wall time and its peak RSS.

Peak RSS is the kernel's high-water mark (``VmHWM``) of the tool's process, polled while it runs. Not
``wait4``'s ``ru_maxrss``: a child forked from the harness inherits the harness's high-water mark across
``exec``, which would hide the tool's own figure behind the harness's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Sample:
    wall: float
    rss_mb: float
    cpu: float  # user + system seconds of the tool's process (and children it waited for)
    rc: int
    log: str


class ToolFailed(RuntimeError):
    pass


AUTOSAVE_SECONDS = 5.0  # Azurite writes a changed metadata store out, whole, on this timer
_last_end = 0.0  # when the previous measured command ended (monotonic)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(server_pid: int, *, quiet: float = 1.0, limit: float = 60.0) -> float:
    """Wait (untimed) until Azurite has saved what the previous command changed and the kernel has
    written it to disk: one autosave tick after that command ended, then until its CPU time stands still
    for ``quiet`` seconds, then ``sync``. Azurite saves its whole metadata store as JSON when anything
    changed (a 100k-blob store: seconds of its CPU), and the kernel writes a command's dirty pages back up
    to 30 s later (a media run leaves ~1 GB), so without this the next command pays for the previous
    one's writes. Returns the seconds waited."""
    t0 = time.monotonic()
    time.sleep(max(0.0, _last_end + AUTOSAVE_SECONDS + 0.5 - t0))
    last, still_since = _cpu_seconds(server_pid), time.monotonic()
    while time.monotonic() - still_since < quiet and time.monotonic() - t0 < limit:
        time.sleep(0.25)
        now = _cpu_seconds(server_pid)
        if now != last:
            last, still_since = now, time.monotonic()
    os.sync()
    return time.monotonic() - t0


def run(
    cmd: list[str],
    *,
    env: dict[str, str],
    log: Path,
    cwd: Path | None = None,
    ok: tuple[int, ...] = (0,),
    timeout: float = 1800,
    settle_pid: int | None = None,
) -> Sample:
    """Run ``cmd`` to completion; with ``settle_pid`` (Azurite's), first wait for it to settle."""
    global _last_end
    log.parent.mkdir(parents=True, exist_ok=True)
    if settle_pid is not None:
        settle(settle_pid)
    with open(log, "wb") as out:
        out.write((" ".join(cmd) + "\n").encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        peak = _HwmWatcher(proc.pid, deadline=time.monotonic() + timeout)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        _last_end = time.monotonic()
        peak.stop()
    if peak.timed_out:
        raise ToolFailed(f"{cmd[0]} killed after {timeout:.0f} s (log {log}): stuck (a full disk?)")
    proc.returncode = os.waitstatus_to_exitcode(status)
    sample = Sample(wall, peak.kib / 1024, ru.ru_utime + ru.ru_stime, proc.returncode, str(log))
    if proc.returncode not in ok:
        tail = log.read_text(errors="replace")[-1500:]
        raise ToolFailed(f"{cmd[0]} exited {proc.returncode} (log {log}):\n{tail}")
    return sample


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
