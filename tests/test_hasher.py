"""The read pass of a large file (sync_core.local.hasher.hash_file): the whole file's SHA-256 and the digest
of each block, streamed, and nothing else (the MD5 is the transfer's); block ids made from those digests.
No storage needed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import xxhash

from sync_core.local import hasher
from sync_core.local.hasher import FileChangedError, Hashed, block_digest, hash_file, md5_of
from sync_core.sync.transfer import block_id

from .conftest import det_bytes, write_file

MiB = 1024 * 1024


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
    assert (h.sha256, h.size, h.data) == (hashlib.sha256(data).hexdigest(), size, None)
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


# -- no MD5 before the first block can go ----------------------------------------------------------------
def test_the_read_pass_computes_no_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MD5 is the slowest hash here; in the read pass it delayed a large file's first block (the transfer
    computes it while blocks are on the wire)."""
    data = det_bytes(10, 6 * MiB + 1)
    path = write_file(tmp_path, "f.mov", data)

    def no_md5(*args: object) -> None:
        raise AssertionError("MD5 computed in the read pass")

    monkeypatch.setattr(hasher.hashlib, "md5", no_md5)
    h = read_pass(path, MiB)
    assert h.sha256 == hashlib.sha256(data).hexdigest() and len(h.blocks) == 7


def test_md5_of_is_the_contents_while_it_is_the_content_hashed(tmp_path: Path):
    data = det_bytes(11, 3 * MiB + 5)
    path = write_file(tmp_path, "f.mov", data)
    h = read_pass(path, MiB)
    assert md5_of(str(path), h) == hashlib.md5(data).digest()
    st = path.stat()
    path.write_bytes(data[:-1] + b"x")  # other bytes, same size, same mtime put back
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert md5_of(str(path), h) is None  # not the content hashed: no MD5 claimed for it
    path.unlink()
    assert md5_of(str(path), h) is None
