"""Nothing waits for ever: a storage endpoint that accepts connections and never answers fails within a
bounded time with a clear message; once the service is known unreachable the run stops and says so once
(instead of each file spending its own retry budget); Ctrl-C stops a run within seconds, exit 130, lock free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.emulator import ACCOUNT_KEY, Azurite
from agent.lock import StateLock
from sync_core.local.state import StateDB
from sync_core.storage import clients, concurrency
from sync_core.storage.clients import blob_service, open_container
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import NullProgress, RunSummary

from .conftest import det_bytes, run_cli, write_file
from .faultproxy import FaultPlan, FaultProxy, Request, SilentServer
from .test_faults import proxied_connection_string

REPO = Path(__file__).resolve().parents[1]


def is_upload(r: Request) -> bool:
    return r.method == "PUT" and r.comp in ("", "block", "blocklist")


class Notes(NullProgress):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, line: str, *, verbose: bool = False) -> None:
        self.lines.append(line)


@pytest.fixture(autouse=True)
def ctrl_c_delivered() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt here and in the agents started from here, however the suite was started:
    a shell without job control makes a command it runs in the background ignore SIGINT, and its children
    inherit that (a handler, unlike an ignored signal, is reset to the default by exec)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds instead of minutes, so the bounds are visible in a test."""
    monkeypatch.setattr(clients, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(clients, "RETRY_SEQUENCE_SECONDS", 3.0)


def in_thread(fn, timeout: float):  # type: ignore[no-untyped-def]
    """Run ``fn`` on a daemon thread; its result, or a failure if it is still running after ``timeout``."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s"
    return out[0], time.monotonic() - t0


def test_endpoint_that_never_answers_fails_in_bounded_time_with_one_line(
    azurite: Azurite, storage_env, tmp_path, monkeypatch, short_timeouts
):
    src = tmp_path / "lib"
    write_file(src, "a.jpg", b"photo")
    with SilentServer() as silent:
        monkeypatch.setenv(
            "AZURE_STORAGE_CONNECTION_STRING",
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={silent.url};TableEndpoint={azurite.table_url};",
        )
        r, elapsed = in_thread(lambda: run_cli("--source", str(src), "--state-dir", str(tmp_path / "s")), 60)
    assert r.code == 2, r.err
    assert elapsed < 15  # one retry sequence: 3 s plus the attempt under way and a backoff
    (line,) = r.err.strip().splitlines()
    assert "cannot reach storage" in line and "timed out" in line, line


def test_unreachable_service_stops_the_run_and_says_so_once(
    azurite: Azurite, cfg, container, tmp_path, monkeypatch, short_timeouts
):
    monkeypatch.setattr(clients, "RETRY_SEQUENCE_SECONDS", 600.0)  # the outage, not each file's budget, stops it
    monkeypatch.setattr(concurrency, "UNREACHABLE_AFTER", 4)
    src = tmp_path / "lib"
    for i in range(22):
        write_file(src, f"a/{i:02d}.jpg", det_bytes(i, 5_000))
    import dataclasses

    # Start-up works; then the service swallows every upload and never answers.
    with FaultProxy(azurite.blob_port, FaultPlan(delay=1.0, delay_seconds=3600, only=is_upload)) as proxy:
        pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
        notes = Notes()

        def run() -> RunSummary:
            state = StateDB(tmp_path / "state")
            try:
                opts = SyncOptions(source=src, max_workers=4)
                return SyncEngine(pcfg, state, open_container(blob_service(pcfg), pcfg), opts, notes).run()
            finally:
                state.close()

        s, elapsed = in_thread(run, 120)
        uploads = sum(1 for r in proxy.arrived() if is_upload(r))

    assert elapsed < 20, elapsed  # not 22 files x a retry budget each
    said = [n for n in notes.lines if "storage is not answering" in n]
    assert len(said) == 1, notes.lines
    assert 1 <= s.failed <= 8 and s.uploaded == 0 and s.exit_code == 1
    assert f"{22 - s.failed} file(s) not tried" in said[0]
    assert uploads <= 8  # the files after the outage was known were not even tried
    assert not list(container.list_blobs())


def interrupted_while_blocked(
    azurite: Azurite, blocked: Callable[[Request], bool], *args: str
) -> tuple[int, str, float]:
    """Run ``azphotosync *args`` with every request ``blocked`` picks held by the service for an hour; once
    one has arrived, Ctrl-C. The exit code, stderr and the seconds from Ctrl-C to the end."""
    with FaultProxy(azurite.blob_port, FaultPlan(delay=1.0, delay_seconds=3600, only=blocked)) as proxy:
        env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": proxied_connection_string(azurite, proxy)}
        cmd = [sys.executable, "-m", "agent.cli", *args]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not any(blocked(r) for r in proxy.arrived()):  # a worker is now blocked in I/O
                assert proc.poll() is None and time.monotonic() < deadline, "no blocked request reached the service"
                time.sleep(0.05)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            return proc.returncode, err, time.monotonic() - t0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_ctrl_c_stops_a_run_blocked_in_io_within_seconds_and_frees_the_lock(
    azurite: Azurite, storage_env, container, tmp_path
):
    src, state = tmp_path / "lib", tmp_path / "state"
    for i in range(6):
        write_file(src, f"a/{i}.jpg", det_bytes(i, 3_000))
    code, err, elapsed = interrupted_while_blocked(
        azurite, is_upload, "sync", "--source", str(src), "--state-dir", str(state)
    )
    assert code == 130, err
    assert elapsed < 5, elapsed
    assert "interrupted" in err
    StateLock(state, "test").acquire().release()  # a second run can take the lock


def is_download(r: Request) -> bool:
    return r.method == "GET" and not r.comp and "restype" not in r.query


def test_ctrl_c_stops_a_restore_blocked_in_a_download_within_seconds(
    azurite: Azurite, storage_env, container, tmp_path
):
    """A restore's workers are not waited for either: one stalled GET would hold Ctrl-C up to the read timeout."""
    src, state, dest = tmp_path / "lib", tmp_path / "state", tmp_path / "dest"
    for i in range(6):
        write_file(src, f"a/{i}.jpg", det_bytes(i, 3_000))
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state))
    assert r.code == 0, r.err
    code, err, elapsed = interrupted_while_blocked(azurite, is_download, "restore", "--to", str(dest))
    assert code == 130, err
    assert elapsed < 5, elapsed
    assert "interrupted" in err
    assert not [p for p in dest.rglob("*.jpg") if p.is_file()]  # nothing placed that was not complete


def test_outage_watch_trips_on_failures_in_a_row_or_over_time_and_any_answer_resets_it():
    now = [0.0]
    watch = concurrency.OutageWatch(clock=lambda: now[0])
    err = TimeoutError("Read timed out")
    for _ in range(concurrency.UNREACHABLE_AFTER - 1):
        watch.on_transport_failure(err)
    watch.on_throttle()  # a 503 is an answer: the service is there
    for _ in range(concurrency.UNREACHABLE_AFTER - 1):
        watch.on_transport_failure(err)
    assert not watch.tripped
    watch.on_transport_failure(err)
    assert watch.tripped and "Read timed out" in watch.describe()
    watch.on_success()
    assert watch.tripped  # stays tripped for the run

    slow = concurrency.OutageWatch(clock=lambda: now[0])  # one worker: few failures, far apart
    slow.on_transport_failure(err)
    now[0] += concurrency.UNREACHABLE_SECONDS
    slow.on_transport_failure(err)
    assert not slow.tripped  # two failures are not enough, however far apart
    slow.on_transport_failure(err)
    assert slow.tripped


def test_a_ctrl_c_the_kernel_gives_a_worker_thread_still_stops_the_run_at_once(
    azurite: Azurite, cfg, container, tmp_path, short_timeouts
):
    """A process's SIGINT may be delivered to any of its threads, and Python runs the handler in the main
    thread only when that thread next runs: the main thread must not sleep on its workers until one ends."""
    import dataclasses

    src = tmp_path / "lib"
    for i in range(6):
        write_file(src, f"a/{i}.jpg", det_bytes(i, 3_000))
    with FaultProxy(azurite.blob_port, FaultPlan(delay=1.0, delay_seconds=3600, only=is_upload)) as proxy:
        pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
        sent: list[float] = []

        def interrupt_a_worker() -> None:
            deadline = time.monotonic() + 60
            while not any(is_upload(r) for r in proxy.arrived()) and time.monotonic() < deadline:
                time.sleep(0.02)
            worker = next(t for t in threading.enumerate() if t.name.startswith("file"))
            sent.append(time.monotonic())
            signal.pthread_kill(worker.ident or 0, signal.SIGINT)

        state = StateDB(tmp_path / "state")
        helper = threading.Thread(target=interrupt_a_worker, daemon=True)
        try:
            engine = SyncEngine(pcfg, state, open_container(blob_service(pcfg), pcfg), SyncOptions(source=src))
            helper.start()
            with pytest.raises(KeyboardInterrupt):
                engine.run()
            stopped = time.monotonic()
        finally:
            state.close()
    assert sent and stopped - sent[0] < 1.5, stopped - sent[0]
