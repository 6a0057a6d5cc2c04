"""Faults on the wire: the agent through a fault-injecting proxy in front of the real Azurite.

Resets, 503 ServerBusy with Retry-After, 500s and delays on a share of requests: the run must complete,
every blob must verify, faults must cost seconds (tuned retry policy), ``Retry-After`` must be honoured,
and throttling must lower the parallelism and let it grow back (visible with ``--verbose``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient

from agent.emulator import ACCOUNT_KEY, Azurite
from sync_core.config import StorageConfig
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, open_container
from sync_core.storage.concurrency import AdaptiveLimiter
from sync_core.sync.pipeline import SyncEngine, SyncOptions

from .conftest import det_bytes, run_cli, write_file
from .faultproxy import FaultPlan, FaultProxy

MiB = 1024 * 1024


def proxied_connection_string(az: Azurite, proxy: FaultProxy) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={proxy.blob_url};TableEndpoint={az.table_url};"
    )


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(azurite.blob_port) as p:
        yield p


def verify_container(container: ContainerClient, cfg: StorageConfig, files: dict[str, bytes]) -> None:
    """Every file is in the container exactly once, under its contract name, with its exact bytes."""
    names = sorted(b.name for b in container.list_blobs())
    expected = {}
    for rel, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        expected[f"{cfg.prefix}/{sha[:2]}/{sha}/{rel}"] = sha
    assert names == sorted(expected)
    for name, sha in expected.items():
        got = container.get_blob_client(name).download_blob().readall()
        assert hashlib.sha256(got).hexdigest() == sha, name


def test_sync_completes_through_resets_busy_errors_and_delays(azurite, cfg, container, proxy, tmp_path):
    src = tmp_path / "lib"
    files = {f"2024/{i:02d}/IMG_{i:04d}.JPG": det_bytes(i, 20_000 + i * 1_000) for i in range(30)}
    files["video/long.MP4"] = det_bytes(99, 5 * MiB + 123)  # 3 blocks of 2 MiB: the block path too
    for rel, data in files.items():
        write_file(src, rel, data)
    proxy.set_plan(FaultPlan(reset=0.1, busy=0.1, error=0.05, delay=0.05, delay_seconds=0.3, seed=7))
    pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
    state = StateDB(tmp_path / "state")
    t0 = time.monotonic()
    try:
        engine_container = open_container(blob_service(pcfg), pcfg)
        opts = SyncOptions(source=src, max_workers=6, block_size=2 * MiB, small_file_max=2 * MiB)
        s = SyncEngine(pcfg, state, engine_container, opts).run()
    finally:
        state.close()
    elapsed = time.monotonic() - t0

    faults = proxy.fault_counts()
    assert sum(faults.values()) >= 8, faults  # the run really went through faults of every kind
    assert all(faults[k] > 0 for k in ("reset", "busy", "error")), faults
    assert (s.uploaded, s.failed) == (len(files), 0), s.failures
    verify_container(container, cfg, files)
    # Wall time is for the benchmark, not a unit test; print it for whoever reads the log.
    print(f"30 uploads + 1 block upload through faults took {elapsed:.1f}s")


def test_backoff_costs_seconds_not_minutes():
    """The SDK default waits ~15 s before the first retry; ours stays within 1.5 s, 3 s, 6 s (jitter included)
    and is capped, so a transient fault costs seconds."""
    from sync_core.storage.clients import RETRY_MAX_BACKOFF, blob_retry_policy

    policy = blob_retry_policy()
    for count, ceiling in ((1, 1.5), (2, 3.0), (3, 6.0), (20, RETRY_MAX_BACKOFF)):
        waits = [policy.get_backoff_time({"count": count, "history": []}) for _ in range(200)]
        assert max(waits) <= ceiling, (count, max(waits))
        assert min(waits) > 0


def test_retry_after_is_honoured(azurite, cfg, container, proxy):
    """The first PUT gets 503 + Retry-After: 2; the retry must wait for it (our own first backoff is < 1 s)."""
    proxy.set_plan(FaultPlan(busy=1.0, retry_after=2, first_n=1, only=lambda r: r.method == "PUT"))
    pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
    svc = blob_service(pcfg)
    svc.get_blob_client(container.container_name, "x/one.jpg").upload_blob(b"hello", overwrite=False)
    puts = [e for e in proxy.exchanges() if e.request.method == "PUT"]
    assert [e.status for e in puts] == [503, 201]
    assert puts[1].started - puts[0].finished >= 1.9
    assert container.get_blob_client("x/one.jpg").download_blob().readall() == b"hello"


def test_throttling_lowers_parallelism_then_grows_back(azurite, storage_env, container, proxy, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    for i in range(160):
        write_file(src, f"a/{i:03d}.jpg", det_bytes(1000 + i, 2_000))
    # A burst of 503 ServerBusy on the first uploads, then calm.
    proxy.set_plan(FaultPlan(busy=0.6, retry_after=0, first_n=12, only=lambda r: r.method == "PUT", seed=3))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", proxied_connection_string(azurite, proxy))
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--max-workers", "8", "--verbose",
                "--create-container")  # fmt: skip
    assert r.code == 0, r.err
    assert "storage is throttling: parallelism 8 -> 4" in r.err
    assert "storage is calm: parallelism" in r.err
    assert proxy.fault_counts()["busy"] == 12
    assert sum(1 for _ in container.list_blobs()) == 160


def test_aimd_limiter_halves_once_per_cooldown_and_adds_back_one_per_window():
    now = [0.0]
    lim = AdaptiveLimiter(8, cooldown=1.0, clock=lambda: now[0])
    lim.on_throttle()
    lim.on_throttle()  # same burst: one signal
    assert lim.limit == 4
    now[0] = 0.5
    lim.on_success()
    assert lim.limit == 4  # still cooling down
    now[0] = 1.5
    lim.on_throttle()
    assert lim.limit == 2
    lim.on_throttle()
    now[0] = 3.0
    lim.on_throttle()
    now[0] = 4.5
    lim.on_throttle()
    assert lim.limit == 1  # never below the minimum
    now[0] = 6.0
    for _ in range(1 + 2 + 3):
        lim.on_success()
    assert lim.limit == 4  # +1 per `limit` calm responses
    for _ in range(100):
        lim.on_success()
    assert lim.limit == 8  # never above the maximum
    assert lim.drain_changes()[0] == "storage is throttling: parallelism 8 -> 4"
    assert lim.drain_changes() == []


def test_limiter_bounds_files_in_flight():
    import threading

    lim = AdaptiveLimiter(3)
    lim.on_throttle()  # -> 1
    inside, peak = [0], [0]
    guard = threading.Lock()

    def work() -> None:
        with lim:
            with guard:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            with guard:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
