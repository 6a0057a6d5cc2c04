"""The read pass of a large file (sync_core.local.hasher.hash_file): the whole file's SHA-256 and MD5 and the
digest of each block, streamed, with MD5 on a thread of its own when a second core may help; block ids made
from those digests. No storage needed."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path

import pytest
import xxhash

from sync_core.local import hasher
from sync_core.local.hasher import FileChangedError, Hashed, block_digest, hash_file, hash_stream
from sync_core.sync.transfer import block_id

from .conftest import det_bytes, write_file

MiB = 1024 * 1024
REAL_MD5 = hashlib.md5


def read_pass(path: Path, block_size: int) -> Hashed:
    st = path.stat()
    return hash_file(str(path), st.st_size, st.st_mtime_ns, keep_up_to=0, block_size=block_size)


@pytest.mark.parametrize(
    ("size", "block_size"),
    [
        (5 * MiB + 3, MiB),  # blocks aligned with the reads, a short last block
        (3 * MiB + 12_345, 700_001),  # blocks straddling reads
        (4 * MiB, 4 * MiB),  # one whole block
        (200, MiB),  # one short block
    ],
)
def test_the_read_pass_records_the_whole_file_and_each_block(tmp_path: Path, size: int, block_size: int):
    data = det_bytes(size, size)
    h = read_pass(write_file(tmp_path, "f.mov", data), block_size)
    assert (h.sha256, h.md5, h.size, h.data) == (
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).digest(),
        size,
        None,
    )
    pieces = [data[i : i + block_size] for i in range(0, size, block_size)]
    assert h.block_size == block_size
    assert h.blocks == tuple(xxhash.xxh3_128_digest(p) for p in pieces) == tuple(block_digest(p) for p in pieces)


def test_block_ids_are_x_the_block_number_and_26_hex_characters_of_its_xxh3_128():
    piece = det_bytes(3, 1000)
    bid = block_id(42, block_digest(piece))
    assert bid == "x00042" + xxhash.xxh3_128_hexdigest(piece)[:26]
    assert len(bid) == 32
    assert block_id(0, block_digest(b"other")) != block_id(0, block_digest(piece))


def test_a_file_that_grows_while_it_is_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write_file(tmp_path, "f.mov", det_bytes(5, 6 * MiB))
    st = path.stat()
    real = hasher.open_scanned

    def grows_after_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        cm = real(*args, **kwargs)
        f = cm.__enter__()
        with open(path, "ab") as g:
            g.write(b"more")
        return _Entered(cm, f)

    monkeypatch.setattr(hasher, "open_scanned", grows_after_open)
    with pytest.raises(FileChangedError):
        hash_file(str(path), st.st_size, st.st_mtime_ns, block_size=MiB)


class _Entered:
    """A context manager already entered (the file open), handing back its file."""

    def __init__(self, cm, f) -> None:  # type: ignore[no-untyped-def]
        self.cm, self.f = cm, f

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self.f

    def __exit__(self, *exc: object) -> None:
        self.cm.__exit__(*exc)


# -- MD5 on a thread of its own beside SHA-256 ---------------------------------------------------------------
class SlowMd5:
    """An MD5 that takes its time before reading what it is given (so the reader runs ahead of it), records
    every update after ``done`` is set, and fails on update number ``fail_at``."""

    def __init__(self, fail_at: int = 0) -> None:
        self.real, self.calls, self.fail_at = REAL_MD5(), 0, fail_at
        self.done = threading.Event()
        self.late: list[int] = []

    def update(self, data: memoryview) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise MemoryError("md5 failed")
        time.sleep(0.003)
        if self.done.is_set():
            self.late.append(self.calls)
        self.real.update(data)

    def digest(self) -> bytes:
        return self.real.digest()


def md5_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("md5")]


def test_md5_on_its_own_thread_gives_the_same_digests_and_never_reads_a_refilled_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    data = det_bytes(7, 9 * MiB + 4321)  # 10 reads, each of other bytes
    path = write_file(tmp_path, "f.mov", data)
    slow: list[SlowMd5] = []
    monkeypatch.setattr(hasher.hashlib, "md5", lambda: slow.append(SlowMd5()) or slow[-1])
    with open(path, "rb", buffering=0) as f:
        beside = hash_stream(f, 2 * MiB, md5_beside=True)
    with open(path, "rb", buffering=0) as f:
        inline = hash_stream(f, 2 * MiB, md5_beside=False)
    assert beside == inline
    assert beside.md5 == slow[0].digest() == REAL_MD5(data).digest()  # no buffer refilled too soon
    assert beside.sha256 == hashlib.sha256(data).hexdigest() and beside.size == len(data)
    assert not md5_threads()


def test_an_md5_error_is_raised_and_the_thread_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write_file(tmp_path, "f.mov", det_bytes(8, 8 * MiB))
    monkeypatch.setattr(hasher.hashlib, "md5", lambda: SlowMd5(fail_at=3))
    with open(path, "rb", buffering=0) as f, pytest.raises(MemoryError, match="md5 failed"):
        hash_stream(f, MiB, md5_beside=True)
    assert not md5_threads()


class FailingReads(io.RawIOBase):
    """A file whose fourth read fails (a disk error, a file truncated under us)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.reads = data, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        self.reads += 1
        if self.reads == 4:
            raise OSError(5, "Input/output error")
        n = min(len(b), len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_an_early_exit_leaves_no_thread_and_no_buffer_in_use(monkeypatch: pytest.MonkeyPatch):
    slow = SlowMd5()
    monkeypatch.setattr(hasher.hashlib, "md5", lambda: slow)
    with pytest.raises(OSError, match="Input/output error"):
        hash_stream(FailingReads(det_bytes(9, 8 * MiB)), MiB, md5_beside=True)  # type: ignore[arg-type]
    slow.done.set()
    time.sleep(0.05)
    assert not md5_threads() and not slow.late  # the MD5 thread had finished when the error came out


@pytest.mark.parametrize("cores", [1, 2])
def test_the_read_pass_runs_md5_beside_only_with_a_second_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
):
    data = det_bytes(10, 6 * MiB + 1)
    path = write_file(tmp_path, "f.mov", data)
    seen: list[bool] = []
    real = hasher.hash_stream

    def spy(f, block_size, *, md5_beside):  # type: ignore[no-untyped-def]
        seen.append(md5_beside)
        return real(f, block_size, md5_beside=md5_beside)

    monkeypatch.setattr(hasher, "_cores", lambda: cores)
    monkeypatch.setattr(hasher, "hash_stream", spy)
    h = read_pass(path, MiB)
    assert seen == [cores > 1]
    assert (h.sha256, h.md5) == (hashlib.sha256(data).hexdigest(), REAL_MD5(data).digest())
