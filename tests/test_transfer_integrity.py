"""What is committed is what was hashed, from the file that was scanned, with the standard Content-MD5.

* Staged blocks are named by their own XXH3-128: a block staged from bytes edited mid-upload is never
  committed by a later run, even after the file is put back with a new mtime; a block staged under an
  earlier version's id is never reused and does not stop the upload.
* A file swapped for a symlink, a FIFO or another file between the scan and the read is refused (the
  target's bytes are never uploaded under the library name, and nothing blocks).
* Every blob (single put, blocks, server-side copy) carries Content-MD5 and rclone's ``mtime`` key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.local.hasher import block_digest
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, open_container
from sync_core.sync import pipeline
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import FileOutcome, Kind, NullProgress, RunSummary
from sync_core.sync.transfer import Transfer, block_id

from .conftest import det_bytes, write_file

MiB = 1024 * 1024


class Recorder(NullProgress):
    def __init__(self) -> None:
        self.outcomes: dict[str, FileOutcome] = {}

    def file_done(self, outcome: FileOutcome) -> None:
        self.outcomes[outcome.relpath] = outcome


def sync(cfg: StorageConfig, src: Path, state_dir: Path, rec: Recorder | None = None, **kw) -> RunSummary:
    state = StateDB(state_dir)
    try:
        opts = SyncOptions(source=src, **kw)
        return SyncEngine(cfg, state, open_container(blob_service(cfg), cfg), opts, rec).run()
    finally:
        state.close()


def content_matches_names(container: ContainerClient) -> list[str]:
    names = []
    for b in container.list_blobs():
        sha = b.name.split("/")[2]
        got = container.get_blob_client(b.name).download_blob().readall()
        assert hashlib.sha256(got).hexdigest() == sha, f"{b.name} holds other bytes than its name promises"
        names.append(b.name)
    return names


# -- blocks: a reused staged block is the content it names ----------------------------------------------
def test_blocks_staged_from_edited_bytes_are_never_committed(cfg, container, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    original = det_bytes(16, 10 * MiB + 12345)  # 11 blocks of 1 MiB
    path = write_file(src, "video/big.MOV", original)
    mtime = path.stat().st_mtime_ns
    small = {"block_size": MiB, "small_file_max": MiB, "max_workers": 2}

    real_submit = Transfer._submit
    calls = [0]

    def edit_while_staging(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == 1:  # block 0 is read and on its way: an editor saves block 8 in place
            with open(path, "r+b") as f:
                f.seek(8 * MiB + 100)
                f.write(b"\xff" * 4096)
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(Transfer, "_submit", edit_while_staging)
    rec = Recorder()
    s1 = sync(cfg, src, tmp_path / "state", rec, **small)
    monkeypatch.setattr(Transfer, "_submit", real_submit)

    o = rec.outcomes["video/big.MOV"]
    assert o.kind == Kind.SKIPPED and "nothing committed" in o.detail, o
    assert (s1.uploaded, s1.failed) == (0, 0)
    assert not list(container.list_blobs())

    # The file is put back exactly as it was, with a new mtime: the next run must commit the original bytes.
    path.write_bytes(original)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    s2 = sync(cfg, src, tmp_path / "state", **small)

    sha = hashlib.sha256(original).hexdigest()
    assert content_matches_names(container) == [f"{cfg.prefix}/{sha[:2]}/{sha}/video/big.MOV"]
    assert (s2.uploaded, s2.failed) == (1, 0)
    assert 0 < s2.bytes_uploaded < len(original)  # blocks proven by their ids were reused, not re-sent
    props = container.get_blob_client(f"{cfg.prefix}/{sha[:2]}/{sha}/video/big.MOV").get_blob_properties()
    assert bytes(props.content_settings.content_md5) == hashlib.md5(original).digest()  # reused blocks counted


def sha256_block_id(index: int, piece: bytes) -> str:
    """The id the previous version gave a block: ``c``, its number, 26 characters of its SHA-256 in base64."""
    return f"c{index:05d}" + base64.urlsafe_b64encode(hashlib.sha256(piece).digest()).decode()[:26]


def test_blocks_staged_under_an_earlier_versions_ids_are_not_reused(cfg, container, tmp_path):
    """An upload interrupted under the previous version left its blocks uncommitted, one of them with the
    same index and bytes as ours: nothing of it is reused, staging beside it is accepted (same id length),
    and the commit holds exactly our ids and the file's bytes."""
    src = tmp_path / "lib"
    data = det_bytes(17, 3 * MiB + 999)  # 4 blocks of 1 MiB
    write_file(src, "video/old.MOV", data)
    pieces = [data[i : i + MiB] for i in range(0, len(data), MiB)]
    sha = hashlib.sha256(data).hexdigest()
    blob = container.get_blob_client(f"{cfg.prefix}/{sha[:2]}/{sha}/video/old.MOV")
    blob.stage_block(sha256_block_id(0, pieces[0]), pieces[0])  # block 0 as the previous version staged it
    blob.stage_block(sha256_block_id(1, b"\0" * MiB), b"\0" * MiB)  # block 1 from other bytes
    assert len(blob.get_block_list("uncommitted")[1]) == 2

    s = sync(cfg, src, tmp_path / "state", block_size=MiB, small_file_max=MiB, max_workers=1)

    assert (s.uploaded, s.failed, s.bytes_uploaded) == (1, 0, len(data))  # every block sent: none reused
    committed, uncommitted = blob.get_block_list("all")
    ids = [b.id for b in committed]
    assert ids == [block_id(i, block_digest(p)) for i, p in enumerate(pieces)]
    assert all(len(b) == 32 and b.startswith("x") for b in ids)
    assert not uncommitted  # the commit dropped the earlier version's blocks
    assert content_matches_names(container) == [blob.blob_name]


# -- the file read is the file scanned ----------------------------------------------------------------
def _swap_before_read(monkeypatch: pytest.MonkeyPatch, victim: str, swap) -> None:  # type: ignore[no-untyped-def]
    """Run ``swap`` between the scan and the first read of ``victim`` (a deterministic interleaving)."""
    real = pipeline.hash_file

    def hash_after_swap(path: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path.endswith(victim):
            swap(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "hash_file", hash_after_swap)


def test_file_swapped_for_a_symlink_outside_the_library_is_refused(cfg, container, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    victim = write_file(src, "victim.jpg", b"library bytes")
    write_file(src, "ok.jpg", b"fine")
    secret = write_file(tmp_path / "outside", "secret.txt", b"private bytes")  # same size
    st = victim.stat()
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))

    def to_symlink(path: str) -> None:
        os.unlink(path)
        os.symlink(secret, path)

    _swap_before_read(monkeypatch, "victim.jpg", to_symlink)
    rec = Recorder()
    s = sync(cfg, src, tmp_path / "state", rec)

    o = rec.outcomes["victim.jpg"]
    assert o.kind == Kind.FAILED and "symlink" in o.detail and "\n" not in o.detail, o
    assert (s.uploaded, s.failed) == (1, 1)
    names = content_matches_names(container)
    assert [n.rsplit("/", 1)[1] for n in names] == ["ok.jpg"]
    sha_secret = hashlib.sha256(b"private bytes").hexdigest()
    assert not any(sha_secret in n for n in names)


def test_file_swapped_for_a_fifo_is_refused_without_blocking(cfg, container, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    write_file(src, "pipe.jpg", b"was a photo")
    write_file(src, "ok.jpg", b"fine")
    fifo: list[str] = []

    def to_fifo(path: str) -> None:
        os.unlink(path)
        os.mkfifo(path)
        fifo.append(path)

    _swap_before_read(monkeypatch, "pipe.jpg", to_fifo)
    rec = Recorder()
    result: list[RunSummary] = []
    runner = threading.Thread(target=lambda: result.append(sync(cfg, src, tmp_path / "state", rec)), daemon=True)
    runner.start()
    runner.join(60)
    try:
        assert not runner.is_alive(), "the run blocked opening a FIFO"
    finally:
        if runner.is_alive() and fifo:  # release the blocked open() so the test process can exit
            os.close(os.open(fifo[0], os.O_WRONLY | os.O_NONBLOCK))
            runner.join(10)
    o = rec.outcomes["pipe.jpg"]
    assert o.kind == Kind.FAILED and "FIFO" in o.detail, o
    assert (result[0].uploaded, result[0].failed) == (1, 1)


def test_file_replaced_by_another_file_with_the_same_size_and_mtime_is_not_sent(cfg, container, tmp_path, monkeypatch):
    src = tmp_path / "lib"
    victim = write_file(src, "a.jpg", b"scanned content")
    st = victim.stat()

    def replace(path: str) -> None:
        other = write_file(tmp_path, "other.jpg", b"another content")  # same size
        os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(other, path)

    _swap_before_read(monkeypatch, "a.jpg", replace)
    rec = Recorder()
    s = sync(cfg, src, tmp_path / "state", rec)
    assert rec.outcomes["a.jpg"].kind == Kind.SKIPPED and "replaced" in rec.outcomes["a.jpg"].detail
    assert s.uploaded == 0 and not list(container.list_blobs())

    monkeypatch.undo()  # the next run scans the file that is there now, and sends it
    assert sync(cfg, src, tmp_path / "state").uploaded == 1
    sha = hashlib.sha256(b"another content").hexdigest()
    assert content_matches_names(container) == [f"{cfg.prefix}/{sha[:2]}/{sha}/a.jpg"]


# -- Content-MD5 and rclone's mtime on every blob ---------------------------------------------------------
def rclone_mtime(mtime_ns: int) -> str:
    secs, ns = divmod(mtime_ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def test_every_blob_carries_content_md5_and_rclone_mtime(cfg, container, tmp_path):
    src = tmp_path / "lib"
    small, large = det_bytes(1, 300_000), det_bytes(2, 3 * MiB + 777)
    files = {
        "a/small.jpg": (small, 1_600_000_000_123_456_789),
        "a/big.MOV": (large, 1_650_000_000_000_000_001),
        "b/small copy.heic": (small, 1_700_000_000_000_000_000),  # copy, and its content type differs
        "b/big copy.MOV": (large, -14_182_940_000_000_007),  # copy of a block blob; before 1970
    }
    for rel, (data, mtime) in files.items():
        write_file(src, rel, data, mtime)
    s = sync(cfg, src, tmp_path / "state", block_size=MiB, small_file_max=MiB, max_workers=1)
    assert (s.uploaded, s.copied, s.failed) == (2, 2, 0)

    for b in container.list_blobs(include=["metadata", "copy"]):
        rel = b.name.split("/", 3)[3]
        data, mtime = files[rel]
        props = container.get_blob_client(b.name).get_blob_properties()
        assert bytes(props.content_settings.content_md5 or b"") == hashlib.md5(data).digest(), rel
        assert props.metadata["mtime"] == rclone_mtime(mtime), rel
    assert {n.rsplit("/", 1)[1] for n in content_matches_names(container)} == {p.rsplit("/", 1)[1] for p in files}
