"""bench.measure: settling detection, rotation, modes and CPU accounting of the tool's process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import measure
from bench.measure import IdleClock, autosave_wait, dirty_kib, make_modes, rotation, schedule, wrap

MEMINFO = """MemTotal:       24683520 kB
Dirty:              1234 kB
Writeback:           100 kB
WritebackTmp:         7 kB
"""


def test_dirty_counts_dirty_and_writeback_only() -> None:
    assert dirty_kib(MEMINFO) == 1334


def test_autosave_wait_covers_one_tick_after_the_last_write() -> None:
    assert autosave_wait(100.0, 101.0) == pytest.approx(measure.AUTOSAVE_SECONDS + 0.5 - 1.0)
    assert autosave_wait(100.0, 100.0 + measure.AUTOSAVE_SECONDS + 0.5) == 0.0
    assert autosave_wait(-1e9, 5.0) == 0.0


def test_idle_clock_needs_the_counter_still_for_the_quiet_time() -> None:
    clock = IdleClock(quiet=1.0)
    assert not clock.feed(0.0, 5.0)
    assert not clock.feed(0.6, 5.0)
    assert not clock.feed(0.9, 5.1)  # the emulator worked: the quiet second starts again
    assert not clock.feed(1.8, 5.1)
    assert clock.feed(2.0, 5.1)


def test_rotation_puts_every_tool_in_every_position() -> None:
    names = ["a", "b", "c"]
    orders = [rotation(rep, names) for rep in range(3)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    for pos in range(3):
        assert {o[pos] for o in orders} == set(names)
    assert rotation(4, []) == []


def test_schedule_rotates_modes_and_each_modes_tools() -> None:
    got = schedule(2, {"pinned": ["x", "y", "z"], "shared": ["x", "y"]})
    assert got == [
        (0, "pinned", "x"), (0, "pinned", "y"), (0, "pinned", "z"), (0, "shared", "x"), (0, "shared", "y"),
        (1, "shared", "y"), (1, "shared", "x"), (1, "pinned", "y"), (1, "pinned", "z"), (1, "pinned", "x"),
    ]  # fmt: skip
    counts = {(m, t): sum(1 for _, m2, t2 in got if (m2, t2) == (m, t)) for _, m, t in got}
    assert set(counts.values()) == {2}


def test_modes_pin_emulator_and_tool_to_different_cores() -> None:
    pinned, shared = make_modes(["pinned", "shared"], [3, 1, 7])
    assert (pinned.emulator_cpus, pinned.tool_cpus) == ({1}, {3})
    assert shared.emulator_cpus is None and shared.tool_cpus is None
    assert wrap(["rclone", "copy"], pinned) == ["taskset", "-c", "3", "rclone", "copy"]
    assert wrap(["rclone", "copy"], shared) == ["rclone", "copy"]
    with pytest.raises(ValueError, match="two cores"):
        make_modes(["pinned"], [0])
    with pytest.raises(ValueError, match="unknown mode"):
        make_modes(["loose"], [0, 1])


BURN = "import time\nt=time.process_time()\nwhile time.process_time()-t<0.4: pass\n"


def test_cpu_counts_the_tools_children_and_pinning_applies(tmp_path: Path) -> None:
    """The tool here only waits for a grandchild that burns 0.4 s of CPU: the sample must include it.
    In pinned mode the tool (and so its child) runs on the tool's core only."""
    script = (
        "import os, subprocess, sys\n"
        f"subprocess.run([sys.executable, '-c', {BURN!r}], check=True)\n"
        "print('cpus', sorted(os.sched_getaffinity(0)))\n"
    )
    pinned = make_modes(["pinned"], os.sched_getaffinity(0))[0]
    s = measure.run([sys.executable, "-c", script], env=dict(os.environ), log=tmp_path / "t.log", mode=pinned)
    assert s.cpu >= 0.35 and s.user + s.system == pytest.approx(s.cpu)
    assert s.wall >= s.cpu * 0.9  # one core: CPU cannot exceed wall time
    assert f"cpus {sorted(pinned.tool_cpus or ())}" in (tmp_path / "t.log").read_text()


def test_pin_process_pins_every_thread_and_settle_waits_for_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "_last_write_end", -1e9)  # no autosave pending
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\ntime.sleep(30)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        cpu = min(os.sched_getaffinity(0))
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{proc.pid}/task")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert measure.pin_process(proc.pid, {cpu}) == 2
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            assert os.sched_getaffinity(int(tid)) == {cpu}
        waited = measure.settle(proc.pid, quiet=0.5, limit=5, dirty_limit=1 << 40)  # an idle "emulator"
        assert waited < 3
    finally:
        proc.kill()
        proc.wait()


def test_settle_gives_up_on_a_busy_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "_last_write_end", -1e9)
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        waited = measure.settle(proc.pid, quiet=0.5, limit=1.5, dirty_limit=1 << 40)
        assert 1.5 <= waited < 3
    finally:
        proc.kill()
        proc.wait()


def test_settle_waits_for_the_autosave_after_a_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "AUTOSAVE_SECONDS", 1.0)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        measure.wrote_now()
        waited = measure.settle(proc.pid, quiet=0.2, limit=5, dirty_limit=1 << 40)
        assert waited >= 1.5  # the tick and its half-second margin, then the idle check
    finally:
        proc.kill()
        proc.wait()


def test_settle_has_no_autosave_to_wait_for_on_an_in_memory_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "AUTOSAVE_SECONDS", 3.0)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        measure.emulator_autosaves(False)
        measure.wrote_now()
        waited = measure.settle(proc.pid, quiet=0.2, limit=5, dirty_limit=1 << 40)
        assert waited < 2.0  # only the idle check, not the 3.5 s tick
    finally:
        measure.emulator_autosaves(True)
        proc.kill()
        proc.wait()


def test_tools_run_with_compiled_modules_cached_as_on_a_users_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from bench import tools

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "from the caller")
    env = tools.base_env(tmp_path)
    assert "PYTHONDONTWRITEBYTECODE" not in env and "AZURE_STORAGE_CONNECTION_STRING" not in env
    assert env["HOME"] == str(tmp_path / "home")
