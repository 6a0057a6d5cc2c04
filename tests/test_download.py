"""sync_core.storage.download: the streamed Get Blob gives exactly what download_blob gives (real Azurite).

The same bytes from any offset and for hostile names, the same exceptions (404, 412 on If-Match, 416 past
the end, 409 BlobArchived), raised before any byte; a body broken off mid-way resumed from where it broke,
pinned to the version being read, never truncated; the client's pipeline (retries, throttle hook) still in
the way; and restore and deep verification on top of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ResourceModifiedError, ServiceResponseError
from azure.data.tables import TableServiceClient
from azure.storage.blob import ContainerClient

from agent.emulator import Azurite
from sync_core.config import StorageConfig
from sync_core.restore.run import RestoreEngine, RestoreOptions
from sync_core.storage import download, sdk_internals
from sync_core.storage.clients import DOWNLOAD_PIECE
from sync_core.storage.concurrency import THROTTLE
from sync_core.storage.direct_http import DirectTransport
from sync_core.storage.download import Downloads
from sync_core.storage.sdk_internals import transport_of
from sync_core.storage.tiering import is_archived_error
from sync_core.verify.partition import verify_partition
from tests.conftest import container_via, det_bytes, write_file
from tests.faultproxy import FaultPlan, FaultProxy, Request
from tests.test_put_blob import NAMES, _Counts, _error
from tests.test_restore import PREFIX, sync, tree
from tests.test_tiers import ArchiveProxy

MiB = 1 << 20


class CutProxy(FaultProxy):
    """Relays only ``cuts[0]`` body bytes of the next GET of a blob whose name ends with ``only``, then drops
    the connection (one cut per GET, in order)."""

    def __init__(self, upstream_port: int):
        super().__init__(upstream_port)
        self.cuts: list[int] = []
        self.only = ""

    def _body_limit(self, req: Request, status: int) -> int | None:
        if req.method == "GET" and not req.comp and status in (200, 206) and req.path.endswith(self.only):
            return self.cuts.pop(0) if self.cuts else None
        return None



@pytest.fixture
def cut_proxy(azurite: Azurite) -> Iterator[CutProxy]:
    with CutProxy(azurite.blob_port) as p:
        yield p



def _both(c: ContainerClient, monkeypatch: pytest.MonkeyPatch) -> tuple[Downloads, Downloads]:
    """The direct way and the ``download_blob`` way, for the same client."""
    fast = Downloads(c)
    monkeypatch.setattr(sdk_internals, "BLOB_GET_ERRORS", False)
    public = Downloads(c)
    monkeypatch.undo()
    assert fast.direct and not public.direct
    return fast, public


def _put(c: ContainerClient, name: str, data: bytes) -> str:
    """Write ``name`` (replacing it); its new ETag."""
    return str(c.get_blob_client(name).upload_blob(data, overwrite=True)["etag"])


def _raised(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(AzureError) as info:
        call()
    return info.value


def _read(pieces: Iterable[memoryview | bytes]) -> bytes:
    """All of a download, each piece copied in its turn (a piece is valid only until the next is asked for)."""
    return b"".join([bytes(piece) for piece in pieces])


def _gets(proxy: FaultProxy, name_end: str) -> list[Request]:
    return [
        e.request
        for e in proxy.exchanges()
        if e.request.method == "GET" and not e.request.comp and e.request.path.endswith(name_end)
    ]


# -- same bytes, same exceptions --------------------------------------------------------------------------
def test_the_same_bytes_from_every_offset_for_every_name(client: ContainerClient, monkeypatch: pytest.MonkeyPatch):
    fast, public = _both(client, monkeypatch)
    sizes = [0, 1, DOWNLOAD_PIECE - 1, DOWNLOAD_PIECE + 1, 3 * MiB + 5]
    for i, name in enumerate(NAMES):
        size = sizes[i % len(sizes)]
        data = det_bytes(i, size)
        etag = _put(client, name, data)
        for offset in sorted({0, 1, size // 2, size - 1} & set(range(size))) or [0]:
            for version in (None, etag):
                got = [[bytes(p) for p in d.open(name, offset=offset, etag=version)] for d in (fast, public)]
                assert b"".join(got[0]) == b"".join(got[1]) == data[offset:], (name, offset, version)
                # Handed on as it arrives: no piece larger than the transport's, whatever the blob's size.
                assert max(map(len, got[0]), default=0) <= DOWNLOAD_PIECE


@pytest.mark.parametrize("size", [0, 1, DOWNLOAD_PIECE - 1, DOWNLOAD_PIECE, DOWNLOAD_PIECE + 1, 3 * MiB + 5])
def test_direct_pieces_are_views_of_one_buffer_each_valid_until_the_next(
    client: ContainerClient, container: ContainerClient, monkeypatch: pytest.MonkeyPatch, size: int
):
    fast, public = _both(client, monkeypatch)
    data = det_bytes(30, size)
    _put(client, "v/a.mov", data)
    got, buffers, last = bytearray(), set(), None
    for piece in fast.open("v/a.mov"):
        assert isinstance(piece, memoryview)
        if last is not None:  # the buffer the next piece was read into: the last view was released first
            with pytest.raises(ValueError, match="released"):
                bytes(last)
        got += piece
        buffers.add(id(piece.obj))
        last = piece
    assert got == data and len(buffers) == (1 if size else 0)
    # download_blob's way, and the pipeline of a client whose transport is requests' (not ours): bytes, as before.
    plain = Downloads(container)
    assert plain.direct and not isinstance(transport_of(container), DirectTransport)
    for other in (public, plain):
        assert _read(other.open("v/a.mov")) == data and all(type(p) is bytes for p in other.open("v/a.mov"))


def test_the_same_exceptions_before_any_byte(client: ContainerClient, monkeypatch: pytest.MonkeyPatch):
    fast, public = _both(client, monkeypatch)
    _put(client, "x/a b#.jpg", det_bytes(1, 5000))
    _put(client, "x/empty.jpg", b"")
    cases: list[tuple[str, dict[str, Any]]] = [
        ("x/missing.jpg", {}),
        ("x/a b#.jpg", {"etag": '"0x8D0000000000000"'}),  # another version: 412 on If-Match
        ("x/a b#.jpg", {"offset": 9000}),  # past the end
        ("x/empty.jpg", {"offset": 1}),
    ]
    statuses = []
    for name, kwargs in cases:
        direct = _raised(lambda d=fast, n=name, k=kwargs: d.open(n, **k))
        sdk = _raised(lambda d=public, n=name, k=kwargs: d.open(n, **k))
        assert _error(direct) == _error(sdk), (name, kwargs)
        statuses.append(getattr(direct, "status_code", None))
    assert statuses == [404, 412, 416, 416]
    assert isinstance(_raised(lambda: fast.open("x/a b#.jpg", etag='"0x1"')), ResourceModifiedError)


def test_an_archived_blob_is_refused_the_same_way(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, monkeypatch: pytest.MonkeyPatch
):
    _put(client, "cold/a.jpg", b"archived bytes")
    with ArchiveProxy(azurite.blob_port) as proxy:
        proxy.archived.add("cold/a.jpg")
        fast, public = _both(container_via(proxy.blob_url, azurite, cfg), monkeypatch)
        direct, sdk = _raised(lambda: fast.open("cold/a.jpg")), _raised(lambda: public.open("cold/a.jpg"))
    assert _error(direct) == _error(sdk)
    assert is_archived_error(direct) and is_archived_error(sdk)


# -- a body broken off mid-way ------------------------------------------------------------------------------
def test_a_broken_body_is_resumed_where_it_broke_for_the_same_version(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, cut_proxy: CutProxy
):
    data = det_bytes(7, 3 * MiB + 11)
    etag = _put(client, "cut/a.mov", data)
    downloads = Downloads(container_via(cut_proxy.blob_url, azurite, cfg))
    cut_proxy.cuts = [1000, DOWNLOAD_PIECE + 5]
    assert _read(downloads.open("cut/a.mov", offset=7)) == data[7:]
    gets = _gets(cut_proxy, "/cut/a.mov")
    assert [g.headers.get("x-ms-range") for g in gets] == [
        "bytes=7-",
        f"bytes={7 + 1000}-",
        f"bytes={7 + 1000 + DOWNLOAD_PIECE + 5}-",
    ]
    assert [g.headers.get("if-match") for g in gets] == [None, etag, etag]  # the version being read


def test_a_blob_replaced_before_the_resume_is_not_mixed_in(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, cut_proxy: CutProxy
):
    _put(client, "cut/b.mov", det_bytes(8, 2 * MiB))
    downloads = Downloads(container_via(cut_proxy.blob_url, azurite, cfg))
    cut_proxy.cuts = [DOWNLOAD_PIECE + 100]
    pieces = downloads.open("cut/b.mov")
    first = bytes(next(pieces))
    _put(client, "cut/b.mov", det_bytes(9, 2 * MiB))
    with pytest.raises(ResourceModifiedError):
        _read(pieces)
    assert first == det_bytes(8, 2 * MiB)[:DOWNLOAD_PIECE]


def test_a_body_that_keeps_breaking_fails_instead_of_ending_short(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, cut_proxy: CutProxy
):
    _put(client, "cut/c.mov", det_bytes(10, MiB))
    downloads = Downloads(container_via(cut_proxy.blob_url, azurite, cfg))
    cut_proxy.cuts = [10] * 20
    got = bytearray()
    with pytest.raises((ServiceResponseError, ResourceModifiedError)) as info:
        for piece in downloads.open("cut/c.mov"):
            got += piece
    assert not isinstance(info.value, ResourceModifiedError)
    assert len(_gets(cut_proxy, "/cut/c.mov")) == download.RESUMES + 1 and len(got) < MiB


# -- the pipeline -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["busy", "reset"])
def test_a_failed_first_attempt_is_retried_and_the_throttle_hook_sees_it(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, fault: str
):
    data = det_bytes(11, 70_000)
    _put(client, "retry/a b#?.jpg", data)
    with FaultProxy(azurite.blob_port) as proxy:
        downloads = Downloads(container_via(proxy.blob_url, azurite, cfg))
        proxy.set_plan(FaultPlan(**{fault: 1.0}, retry_after=0, first_n=1, only=lambda r: r.method == "GET"))
        counts = _Counts()
        with THROTTLE.listening(counts):
            assert _read(downloads.open("retry/a b#?.jpg")) == data
        gets = [e for e in proxy.exchanges() if e.request.method == "GET" and not e.request.comp]
    assert [e.status for e in gets] == [{"busy": 503, "reset": None}[fault], 200]
    assert gets[1].request.path.endswith("/retry/a%20b%23%3F.jpg")
    assert counts.throttles == (0 if fault == "reset" else 1) and counts.successes == 1


# -- restore and deep verification on top ---------------------------------------------------------------------
def test_restore_and_deep_verification_ride_out_broken_bodies(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, cut_proxy: CutProxy, tmp_path: Path
):
    src = tmp_path / "src"
    files = {"a.mov": det_bytes(12, 2 * MiB + 3), "b.jpg": det_bytes(13, 40_000), "c.png": b""}
    for rel, data in files.items():
        write_file(src, rel, data, mtime_ns=1_600_000_000_000_000_000)
    sync(src, tmp_path / "state")
    via = container_via(cut_proxy.blob_url, azurite, cfg)

    cut_proxy.cuts, cut_proxy.only = [5000, MiB], "/a.mov"
    s = RestoreEngine(via, PREFIX, RestoreOptions(dest=tmp_path / "dest", index="listing")).run()
    assert (s.exit_code, s.restored, s.bytes_received) == (0, 3, sum(map(len, files.values())))
    assert tree(tmp_path / "dest") == tree(src)
    assert len(_gets(cut_proxy, "/a.mov")) == 3 and cut_proxy.cuts == []

    rows = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(cfg.table)
    cut_proxy.cuts = [7000, 3]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    results = [
        verify_partition(via, rows, f"{PREFIX}/{x:x}", now=now, deep_budget=10**9, partitions_total=16)
        for x in range(16)
    ]
    assert len(_gets(cut_proxy, "/a.mov")) == 3 + 3 and cut_proxy.cuts == []
    assert sum(r.deep_verified for r in results) >= 2  # the empty blob's unit may have no bytes to spend
    assert sum(r.deep_bytes for r in results) == sum(map(len, files.values()))
    assert all(r.problems == [] and not r.error for r in results)


def test_restore_and_deep_verification_are_exact_around_the_piece_size(
    azurite: Azurite, cfg: StorageConfig, client: ContainerClient, tmp_path: Path
):
    src = tmp_path / "src"
    sizes = [0, 1, DOWNLOAD_PIECE - 1, DOWNLOAD_PIECE, DOWNLOAD_PIECE + 1, 3 * MiB + 5]
    for i, size in enumerate(sizes):
        write_file(src, f"s{i}.mov", det_bytes(40 + i, size), mtime_ns=1_600_000_000_000_000_000)
    sync(src, tmp_path / "state")
    s = RestoreEngine(client, PREFIX, RestoreOptions(dest=tmp_path / "dest", index="listing")).run()
    assert (s.exit_code, s.restored, s.bytes_received) == (0, len(sizes), sum(sizes))
    assert tree(tmp_path / "dest") == tree(src)
    rows = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(cfg.table)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    results = [
        verify_partition(client, rows, f"{PREFIX}/{x:x}", now=now, deep_budget=10**9, partitions_total=16)
        for x in range(16)
    ]
    assert sum(r.deep_bytes for r in results) == sum(sizes) and sum(r.deep_verified for r in results) >= len(sizes) - 1
    assert all(r.problems == [] and not r.error for r in results)


@pytest.mark.parametrize("direct", [True, False])
def test_restore_takes_either_way(
    client: ContainerClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, direct: bool
):
    src = tmp_path / "src"
    for i, rel in enumerate(["a.mov", "sub/b c#.jpg", "empty.png"]):
        write_file(src, rel, det_bytes(20 + i, (MiB + 7) // (i + 1) if i < 2 else 0), mtime_ns=1_600_000_000 * 10**9)
    sync(src, tmp_path / "state")
    monkeypatch.setattr(sdk_internals, "BLOB_GET_ERRORS", direct)
    engine = RestoreEngine(client, PREFIX, RestoreOptions(dest=tmp_path / "dest", index="listing"))
    assert engine._downloads.direct is direct
    assert engine.run().exit_code == 0
    assert tree(tmp_path / "dest") == tree(src)
