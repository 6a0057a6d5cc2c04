"""Put one file's content into the container under its contract name, never overwriting anything.

Three ways to get there, cheapest first:

* **adopt** — a blob of that name already exists. Its name contains the SHA-256, so it should hold the
  same bytes; we check its size and SHA-256 metadata and record it without sending anything.
* **copy** — the same content is already stored under another name (a duplicate, a rename, a moved
  folder): a server-side Copy Blob inside the account, carrying the new file's own metadata.
* **upload** — create-only (``If-None-Match: *``). Small files in one Put Blob from memory; large files as
  blocks whose ids name their own content (the block's XXH3-128), so an interrupted upload resumes by
  staging only the missing blocks, and a block staged from other bytes (the file was edited mid-upload,
  then put back) is never taken for the one the hash pass saw.

Every blob gets the standard Content-MD5 property whichever way it was made: the service computes it for a
single Put Blob; a block list gets the MD5 of the blocks as they are read to be staged (each proven to be
the hash pass's block), and a copy keeps its source's.

This is the agent's only upload path: a repair (:mod:`sync_core.sync.repair`) sends its bytes through
:meth:`Transfer.upload` too, replacing a damaged blob only while it keeps the etag the repair inspected.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings

from sync_core.contracts.blobmeta import K_SHA256, BlobMeta, build_metadata, normalize_etag
from sync_core.local.hasher import FileChangedError, Hashed, block_digest, open_scanned
from sync_core.storage.put_blob import put_sender
from sync_core.storage.tiering import is_archived_error

Action = Literal["uploaded", "copied", "present"]

COPY_POLL_SECONDS = 0.5
# Files above the single-put size go as blocks: 4 MiB x 8 in flight beat 8 MiB x 4 (docs/benchmarks.md).
BLOCK_SIZE = 4 * 1024 * 1024
BLOCKS_IN_FLIGHT = 8
COPY_TIMEOUT_SECONDS = 3600


class BlobConflictError(Exception):
    """A blob with our contract name exists but does not hold the content its name promises."""


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


BLOCK_ID_DIGEST_CHARS = 26  # hex characters of the block's XXH3-128: 104 bits


def block_id(index: int, digest: bytes) -> str:
    """The id of block ``index`` whose bytes have the :func:`~sync_core.local.hasher.block_digest`
    ``digest``: a staged block with this id is this content, so it may be reused by any later run that
    hashed the same block.

    Always 32 characters: the service wants one length for all the ids of a blob and refuses to stage an id
    of another length next to uncommitted ones. Earlier versions staged 32-character ids too, starting with
    ``c`` (SHA-256 ids) or a hex digit where these start with ``x``, so theirs never match and an upload
    they left unfinished is sent again in full, once. The SDK base64-encodes the id on the wire."""
    return f"x{index:05d}" + digest.hex()[:BLOCK_ID_DIGEST_CHARS]


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

    def copy_from(
        self,
        source_name: str,
        name: str,
        meta: BlobMeta,
        content_type: str,
        content_md5: Callable[[], bytes | None] | None = None,
    ) -> StoreResult | None:
        """Server-side copy of a blob we know holds the same bytes. ``None`` if the source is gone or
        archived (Copy Blob cannot read it; Cool and Cold sources copy as Hot ones do).

        The copy keeps its source's Content-MD5; only a source without one (stored by another tool) has
        ``content_md5`` called for the content's. The content type and that MD5 are set afterwards when the
        copy's differ (Set Blob Properties replaces all content headers, so both are always sent: an MD5
        left out would be cleared)."""
        dest = self.container.get_blob_client(name)
        src = self.container.get_blob_client(source_name)
        try:
            result = dest.start_copy_from_url(
                src.url, metadata=build_metadata(meta), match_condition=MatchConditions.IfMissing
            )
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if is_archived_error(exc):  # an archived source cannot be copied: the caller uploads the local file
                return None
            if isinstance(exc, ResourceExistsError):
                return self.adopt_existing(name, meta)
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
        got = props.content_settings
        md5 = got.content_md5 or (content_md5() if content_md5 is not None else None)
        if got.content_type != content_type or (md5 and bytes(got.content_md5 or b"") != md5):
            settings = ContentSettings(content_type=content_type, content_md5=md5 or None)
            props = dest.set_http_headers(settings, etag=props.etag, match_condition=MatchConditions.IfNotModified)
            return StoreResult("copied", props["etag"], 0)
        return StoreResult("copied", props.etag, 0)

    def upload(
        self,
        name: str,
        path: str,
        meta: BlobMeta,
        content_type: str,
        data: bytes | None,
        hashed: Hashed | None = None,
        *,
        replace_etag: str | None = None,
    ) -> StoreResult:
        """Create-only upload (unless ``replace_etag``); adopts the blob instead if it turns out to exist.

        ``data``: the whole content (small files); otherwise ``hashed`` (the hash pass over ``path``, with
        its block digests) says what the blocks read now must be. ``replace_etag``: replace the existing blob
        only while it still has this etag (``If-Match``; a repair), instead of creating it — a blob changed
        meanwhile raises the service's 412 and is left as it is."""
        md = build_metadata(meta)
        cond: dict[str, Any] = (
            {"match_condition": MatchConditions.IfMissing}
            if replace_etag is None
            else {"etag": replace_etag, "match_condition": MatchConditions.IfNotModified}
        )
        try:
            if data is not None:
                if self.read_hook:
                    self.read_hook(len(data))
                if replace_etag is None and self._put is not None and len(data) <= self._put.max_size:
                    # A single Put Blob: the service computes and keeps its Content-MD5.
                    return StoreResult("uploaded", self._put.put(name, data, md, content_type), len(data))
                # upload_blob may send blocks, whose list gets a Content-MD5 only if we give one.
                settings = ContentSettings(content_type=content_type, content_md5=hashlib.md5(data).digest())
                blob = self.container.get_blob_client(name)
                resp = blob.upload_blob(
                    data, overwrite=replace_etag is not None, metadata=md, content_settings=settings, **cond
                )
                return StoreResult("uploaded", resp["etag"], len(data))
            if hashed is None or hashed.block_size != self.block_size or not hashed.blocks:
                raise ValueError("a block upload needs the hash pass's block digests at the transfer's block size")
            return self._upload_blocks(self.container.get_blob_client(name), path, md, content_type, hashed, cond)
        except ResourceExistsError:
            adopted = self.adopt_existing(name, meta) if replace_etag is None else None
            if adopted is None:  # deleted between our write and the check: let the next run retry
                raise
            return adopted

    # -- block path --------------------------------------------------------------------------------
    def _upload_blocks(
        self,
        blob: BlobClient,
        path: str,
        md: dict[str, str],
        content_type: str,
        hashed: Hashed,
        cond: dict[str, Any],
    ) -> StoreResult:
        """Stage the blocks the service lacks, each proven to hash as in the hash pass, then commit the ids
        of the hash pass (under ``cond``): the committed blob is exactly the content that was hashed.

        Every block is read in order, the ones staged by an earlier run too (and checked against the hash
        pass here), so the whole file's MD5 is computed on this thread while the block pool sends: the
        Content-MD5 of the committed list is that of the content that was hashed."""
        size, bs = hashed.size, self.block_size
        count = max(1, -(-size // bs))
        if len(hashed.blocks) != count:
            raise FileChangedError("changed since it was hashed; nothing committed")
        ids = [block_id(i, d) for i, d in enumerate(hashed.blocks)]
        staged = self._uncommitted(blob)
        sent = 0
        md5 = hashlib.md5()
        inflight: list[Future[int]] = []
        with open_scanned(path, size, hashed.mtime_ns, inode=hashed.inode, dev=hashed.dev) as f:
            for i, bid in enumerate(ids):
                length = min(bs, size - i * bs)
                reuse = staged.get(bid) == length  # staged by an earlier run from bytes that hashed the same
                if not reuse:
                    self.budget.__enter__()
                try:
                    chunk = f.read(length)
                    if len(chunk) != length:
                        raise FileChangedError("changed while it was being uploaded; nothing committed")
                    md5.update(chunk)
                except BaseException:
                    if not reuse:
                        self.budget.__exit__()
                    raise
                if reuse:
                    if block_digest(chunk) != hashed.blocks[i]:
                        raise FileChangedError("changed while it was being uploaded; nothing committed")
                    continue
                if self.read_hook:
                    self.read_hook(length)
                inflight.append(self._submit(blob, bid, chunk, hashed.blocks[i]))
                sent += length
                if len(inflight) >= self.blocks_in_flight:
                    inflight.pop(0).result()
            for fut in inflight:
                fut.result()
            # Every block matched the hash pass; a changed size or mtime still means the file is being
            # written: leave the blocks uncommitted (reusable, since their ids name their content).
            st = os.fstat(f.fileno())
            if st.st_size != size or st.st_mtime_ns != hashed.mtime_ns:
                raise FileChangedError("changed while it was being uploaded; nothing committed")
        settings = ContentSettings(content_type=content_type, content_md5=md5.digest())
        resp = blob.commit_block_list(
            [BlobBlock(block_id=b) for b in ids], metadata=md, content_settings=settings, **cond
        )
        return StoreResult("uploaded", resp["etag"], sent)

    def _submit(self, blob: BlobClient, bid: str, chunk: bytes, digest: bytes) -> Future[int]:
        """Stage ``chunk`` as ``bid`` if its block digest is still ``digest`` (on the block pool, if any)."""

        def stage() -> int:
            try:
                if block_digest(chunk) != digest:
                    raise FileChangedError("changed while it was being uploaded; nothing committed")
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
