"""``--bwlimit``: the token bucket's arithmetic (on a fake clock) and its wiring into uploads and restores."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.errors import ConfigError
from sync_core.storage import bandwidth
from sync_core.storage.bandwidth import TokenBucket, parse_rate
from sync_core.storage.clients import table_service
from sync_core.verify.verdicts import Verdict
from tests.conftest import det_bytes, run_cli, write_file


@pytest.mark.parametrize(
    ("text", "rate"),
    [("500KB", 500_000), ("10MB", 10_000_000), ("10M", 10_000_000), ("2MiB", 2 * 1024 * 1024),
     ("2MiB/s", 2 * 1024 * 1024), ("1.5 MB", 1_500_000), ("4096", 4096)],
)  # fmt: skip
def test_parse_rate(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "0", "fast", "-5MB", "MB"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid rate"):
        parse_rate(text)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_bucket_holds_the_long_run_rate_whatever_the_block_size() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    assert bucket.consume(1000) == 0  # the first second's burst is free
    assert bucket.consume(4000) == pytest.approx(4.0)  # a block bigger than the bucket: wait it off
    assert clock.now == pytest.approx(4.0)
    for _ in range(10):
        bucket.consume(300)
    # 1000 burst + 7000 bytes at 1000 B/s
    assert clock.now == pytest.approx(7.0)


def test_bucket_refills_only_up_to_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=500, clock=clock, sleep=clock.sleep)
    clock.now = 100.0  # a long idle time does not bank 100 s of credit
    assert bucket.consume(500) == 0
    assert bucket.consume(1000) == pytest.approx(1.0)


def test_bucket_is_shared_across_threads() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10_000, burst=10_000, clock=clock, sleep=clock.sleep)
    threads = [threading.Thread(target=lambda: [bucket.consume(1000) for _ in range(50)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 kB in total, 10 kB free, the rest at 10 kB/s: the sum of all waits is at least 39 s
    assert clock.now >= 39.0 - 1e-6


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """Every consume() call as (rate, bytes), still enforcing the limit."""
    calls: list[tuple[float, int]] = []
    real = bandwidth.TokenBucket.consume

    def consume(self: TokenBucket, nbytes: int) -> float:
        calls.append((self.rate, nbytes))
        return real(self, nbytes)

    monkeypatch.setattr(bandwidth.TokenBucket, "consume", consume)
    monkeypatch.setattr(bandwidth.TokenBucket, "__call__", consume)
    return calls


def test_sync_and_restore_go_through_the_limiter(
    tmp_path: Path, container: ContainerClient, recorded: list[tuple[float, int]]
) -> None:
    src = tmp_path / "src"
    write_file(src, "small.jpg", det_bytes(1, 40_000))
    write_file(src, "big.mov", det_bytes(2, 9 * 1024 * 1024))  # block upload path
    r = run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / "s"), "--bwlimit", "1GB", "--json")
    assert r.code == 0, r.err
    sent = r.json()["bytes_uploaded"]
    assert sent == 40_000 + 9 * 1024 * 1024
    assert {rate for rate, _ in recorded} == {1e9}
    assert sum(n for _, n in recorded) == sent

    recorded.clear()
    r = run_cli("restore", "--to", str(tmp_path / "d"), "--bwlimit", "512MiB", "--json")
    assert r.code == 0, r.err
    assert {rate for rate, _ in recorded} == {512 * 1024 * 1024}
    assert sum(n for _, n in recorded) == r.json()["bytes_received"] == sent

    recorded.clear()
    write_file(src, "new.jpg", det_bytes(3, 50_000))
    r = run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / "s"), "--json")  # no limit
    assert (r.code, r.json()["uploaded"], recorded) == (0, 1, [])


def test_bad_bwlimit_is_a_usage_error(tmp_path: Path) -> None:
    r = run_cli("sync", "--source", str(tmp_path), "--bwlimit", "fast")
    assert r.code == 2 and "invalid rate 'fast'" in r.err
    r = run_cli("restore", "--to", str(tmp_path), "--bwlimit", "0")
    assert r.code == 2 and "--bwlimit" in r.err


def test_repair_goes_through_the_limiter(
    tmp_path: Path, container: ContainerClient, cfg: StorageConfig, recorded: list[tuple[float, int]]
) -> None:
    """A re-upload of flagged blobs is capped like any upload: every byte it sends passes the bucket."""
    from sync_core.index import table_index as ti
    from tests.test_table_repair import flag, name_of, row

    src, state = tmp_path / "src", tmp_path / "s"
    small, big = det_bytes(4, 40_000), det_bytes(5, 9 * 1024 * 1024)
    write_file(src, "small.jpg", small)
    write_file(src, "big.mov", big)
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    table = table_service(cfg).get_table_client(cfg.table)
    for rel, data in (("small.jpg", small), ("big.mov", big)):
        container.delete_blob(name_of(rel, data))
        flag(table, name_of(rel, data), Verdict.MISSING)

    recorded.clear()
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--bwlimit", "1GB", "--json")
    assert r.code == 0, r.err
    assert (r.json()["repaired"], r.json()["bytes_uploaded"]) == (2, len(small) + len(big))
    assert {rate for rate, _ in recorded} == {1e9}
    assert sum(n for _, n in recorded) == len(small) + len(big)
    assert row(table, name_of("big.mov", big))[ti.P_VERIFY_STATUS] == Verdict.REUPLOADED


def test_repair_takes_the_time_the_limit_says(tmp_path: Path, container: ContainerClient, cfg: StorageConfig) -> None:
    """3 MiB re-uploaded at 1 MiB/s on a fake clock: the first second's burst is free, the rest waits 2 s."""
    from sync_core.local.state import StateDB
    from tests.test_table_repair import _repairer, flag, name_of

    src, state_dir = tmp_path / "src", tmp_path / "s"
    data = det_bytes(6, 3 * 1024 * 1024)
    write_file(src, "clip.mov", data)
    assert run_cli("sync", "--source", str(src), "--state-dir", str(state_dir), "--json").code == 0
    table = table_service(cfg).get_table_client(cfg.table)
    container.delete_blob(name_of("clip.mov", data))
    flag(table, name_of("clip.mov", data), Verdict.MISSING)

    clock = FakeClock()
    bucket = TokenBucket(1024 * 1024, clock=clock, sleep=clock.sleep)
    state = StateDB(state_dir)
    res = _repairer(cfg, state, src, table, read_hook=bucket).run()
    state.close()
    assert [i.outcome for i in res.items] == ["reuploaded"] and res.bytes_sent == len(data)
    assert clock.now == pytest.approx(2.0)
