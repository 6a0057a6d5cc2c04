"""Put one file's content into the container under its contract name, never overwriting anything.

Three ways to get there, cheapest first:

* **adopt** — a blob of that name already exists. Its name contains the SHA-256, so it should hold the
  same bytes; we check its size and SHA-256 metadata and record it without sending anything.
* **copy** — the same content is already stored under another name (a duplicate, a rename, a moved
  folder): a server-side Copy Blob inside the account, carrying the new file's own metadata.
* **upload** — create-only (``If-None-Match: *``). Small files in one Put Blob from memory; large files as
  blocks with deterministic ids, so an interrupted upload resumes by staging only the missing blocks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings

from .blobmeta import K_SHA256, BlobMeta, build_metadata
from .hasher import FileChangedError
from .put_blob import put_sender

Action = Literal["uploaded", "copied", "present"]

COPY_POLL_SECONDS = 0.5
# Files above the single-put size go as blocks: 4 MiB x 8 in flight beat 8 MiB x 4 (docs/benchmarks.md).
BLOCK_SIZE = 4 * 1024 * 1024
BLOCKS_IN_FLIGHT = 8
COPY_TIMEOUT_SECONDS = 3600


class BlobConflictError(Exception):
    """A blob with our contract name exists but does not hold the content its name promises."""


def normalize_etag(etag: str) -> str:
    """ETags as blob listings report them (unquoted); write responses quote them. One form everywhere."""
    return etag.strip('"')


@dataclass(frozen=True, slots=True)
class StoreResult:
    action: Action
    etag: str
    bytes_sent: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", normalize_etag(self.etag))


class BufferBudget:
    """Bounds the bytes held in memory for uploads across all workers (in whole blocks)."""

    def __init__(self, slots: int):
        self._sem = threading.BoundedSemaphore(max(1, slots))

    def __enter__(self) -> BufferBudget:
        self._sem.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


def block_id(sha256: str, block_size: int, index: int) -> str:
    """Deterministic, fixed-length block id: same file + same block size => same ids on every run.

    The SDK base64-encodes it on the wire; 32 characters stay well inside the service's 64-byte limit."""
    return f"{sha256[:16]}-{block_size:08x}-{index:06d}"


class Transfer:
    """Stores files into one container. Thread-safe: one instance serves every worker."""

    def __init__(
        self,
        container: ContainerClient,
        *,
        block_size: int = BLOCK_SIZE,
        block_pool: ThreadPoolExecutor | None = None,
        budget: BufferBudget | None = None,
        blocks_in_flight: int = BLOCKS_IN_FLIGHT,
        read_hook: Callable[[int], None] | None = None,
    ):
        self.container = container
        self.block_size = block_size
        self.block_pool = block_pool
        self.budget = budget or BufferBudget(8)
        self.blocks_in_flight = max(1, blocks_in_flight)
        self.read_hook = read_hook  # called with the byte count of every read (bandwidth limiting)
        self._put = put_sender(container)  # small files: Put Blob without the SDK's per-call layers

    # -- the three ways ----------------------------------------------------------------------------
    def adopt_existing(self, name: str, meta: BlobMeta) -> StoreResult | None:
        """If ``name`` exists, check it holds ``meta``'s content and return it; ``None`` if absent."""
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        got_sha = (props.metadata or {}).get(K_SHA256)
        if props.size != meta.size or got_sha != meta.sha256:
            raise BlobConflictError(
                f"blob {name!r} exists with size {props.size} and sha256 {got_sha!r}, not the expected "
                f"{meta.size} / {meta.sha256}; left untouched — run `azphotosync verify`"
            )
        return StoreResult("present", props.etag, 0)

    def copy_from(self, source_name: str, name: str, meta: BlobMeta, content_type: str) -> StoreResult | None:
        """Server-side copy of a blob we know holds the same bytes. ``None`` if the source is gone."""
        dest = self.container.get_blob_client(name)
        src = self.container.get_blob_client(source_name)
        try:
            result = dest.start_copy_from_url(
                src.url, metadata=build_metadata(meta), match_condition=MatchConditions.IfMissing
            )
        except ResourceNotFoundError:
            return None
        except ResourceExistsError:
            return self.adopt_existing(name, meta)
        except HttpResponseError as exc:
            if exc.status_code == 412:  # If-None-Match failed: the name exists already
                return self.adopt_existing(name, meta)
            raise
        status = result.get("copy_status")
        deadline = time.monotonic() + COPY_TIMEOUT_SECONDS
        while status == "pending" and time.monotonic() < deadline:
            time.sleep(COPY_POLL_SECONDS)
            status = dest.get_blob_properties().copy.status
        if status != "success":
            raise HttpResponseError(f"server-side copy of {source_name!r} ended with status {status!r}")
        props = dest.get_blob_properties()
        if props.size != meta.size:
            raise BlobConflictError(f"copied blob {name!r} has size {props.size}, expected {meta.size}")
        if props.content_settings.content_type != content_type:
            settings = ContentSettings(content_type=content_type)
            props = dest.set_http_headers(settings, etag=props.etag, match_condition=MatchConditions.IfNotModified)
            return StoreResult("copied", props["etag"], 0)
        return StoreResult("copied", props.etag, 0)

    def upload(self, name: str, path: str, meta: BlobMeta, content_type: str, data: bytes | None) -> StoreResult:
        """Create-only upload; adopts the blob instead if it turns out to exist."""
        md = build_metadata(meta)
        try:
            if data is not None:
                if self.read_hook:
                    self.read_hook(len(data))
                if self._put is not None and len(data) <= self._put.max_size:
                    return StoreResult("uploaded", self._put.put(name, data, md, content_type), len(data))
                settings = ContentSettings(content_type=content_type)
                blob = self.container.get_blob_client(name)
                resp = blob.upload_blob(data, overwrite=False, metadata=md, content_settings=settings)
                return StoreResult("uploaded", resp["etag"], len(data))
            settings = ContentSettings(content_type=content_type)
            return self._upload_blocks(self.container.get_blob_client(name), path, meta, md, settings)
        except ResourceExistsError:
            adopted = self.adopt_existing(name, meta)
            if adopted is None:  # deleted between our write and the check: let the next run retry
                raise
            return adopted

    # -- block path --------------------------------------------------------------------------------
    def _upload_blocks(
        self, blob: BlobClient, path: str, meta: BlobMeta, md: dict[str, str], settings: ContentSettings
    ) -> StoreResult:
        size, bs = meta.size, self.block_size
        count = max(1, -(-size // bs))
        ids = [block_id(meta.sha256, bs, i) for i in range(count)]
        staged = self._uncommitted(blob)
        sent = 0
        inflight: list[Future[int]] = []
        with open(path, "rb") as f:
            for i, bid in enumerate(ids):
                length = min(bs, size - i * bs)
                if staged.get(bid) == length:
                    continue  # staged by an interrupted earlier run
                self.budget.__enter__()
                try:
                    f.seek(i * bs)
                    chunk = f.read(length)
                except BaseException:
                    self.budget.__exit__()
                    raise
                if len(chunk) != length:
                    self.budget.__exit__()
                    raise OSError("file shrank while uploading")
                if self.read_hook:
                    self.read_hook(length)
                inflight.append(self._submit(blob, bid, chunk))
                sent += length
                if len(inflight) >= self.blocks_in_flight:
                    inflight.pop(0).result()
            for fut in inflight:
                fut.result()
            # The blocks were read after the hash: if the file changed meanwhile, they may not add up to the
            # content the name promises. Leave them uncommitted (the service discards them in a week).
            st = os.fstat(f.fileno())
            if st.st_size != size or st.st_mtime_ns != meta.mtime_ns:
                raise FileChangedError("changed while it was being uploaded; nothing committed")
        resp = blob.commit_block_list(
            [BlobBlock(block_id=b) for b in ids],
            metadata=md,
            content_settings=settings,
            match_condition=MatchConditions.IfMissing,
        )
        return StoreResult("uploaded", resp["etag"], sent)

    def _submit(self, blob: BlobClient, bid: str, chunk: bytes) -> Future[int]:
        def stage() -> int:
            try:
                # Content-MD5 per block: the service rejects a block damaged in transit, and Azurite
                # stages ~2.5x faster when it need not read the block back to checksum it (bench/).
                blob.stage_block(bid, chunk, length=len(chunk), validate_content=True)
                return len(chunk)
            finally:
                self.budget.__exit__()

        if self.block_pool is None:
            fut: Future[int] = Future()
            try:
                fut.set_result(stage())
            except BaseException as exc:
                fut.set_exception(exc)
            return fut
        return self.block_pool.submit(stage)

    @staticmethod
    def _uncommitted(blob: BlobClient) -> dict[str, int]:
        """Blocks staged but not committed (from an interrupted run): id -> size."""
        try:
            _, uncommitted = blob.get_block_list("uncommitted")
        except ResourceNotFoundError:
            return {}
        return {b.id: b.size for b in uncommitted}
