"""The steps of one renditions run — plan, one index partition, merge — shared by the Durable activities
(one partition per activity) and ``azphotosync thumbnails`` (a thread pool in one process).

A partition's rows are read with one query; a row whose facts are recorded (made, or failed with a
reason) costs nothing more, so a rerun makes nothing and a file that cannot be decoded is never retried
unless forced. Identical content shares one set of renditions: the largest rendition carries the
original's size as blob metadata, so a second row with the same SHA-256 needs one HEAD, not a decode.
Renditions are uploaded create-only; an existing one is never rewritten.

Settings (docs/thumbnails-and-albums.md): ``AZURE_STORAGE_*`` for the archive,
``AZURE_STORAGE_THUMBNAILS_CONTAINER`` (default ``thumbnails``), ``THUMBNAILS_UNIT_SECONDS`` (the time one
partition may take before the rest waits for the next run), ``THUMBNAILS_DECODE_SLOTS`` (decodes at once
per process) and the verifier's ``VERIFY_PREFIXES``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from sync_core.config import (
    DEFAULT_THUMBNAILS_CONTAINER,
    StorageConfig,
    resolve_storage_config,
    thumbnails_container_name,
)
from sync_core.derived.blob_reader import BlobReader
from sync_core.derived.catalog import refresh_catalog
from sync_core.derived.decoders import DecodeError, Limits, decode, kind_of
from sync_core.derived.facts import MediaFacts, write_facts
from sync_core.derived.renditions import LARGEST, render, rendition_name
from sync_core.errors import ConfigError, first_line
from sync_core.index.table_index import (
    P_BLOB_NAME,
    P_RENDITION_STATE,
    P_SHA256,
    P_SIZE,
    P_VERIFY_STATUS,
    RENDITION_FAILED,
    RENDITION_MADE,
    encode_key,
)
from sync_core.index.table_query import odata_string, query_pages
from sync_core.storage.clients import ArchiveClients
from sync_core.verify.partition import indexed_prefixes, partition_id, plain, split_partition
from sync_core.verify.run import ENV_PREFIXES, parse_prefixes
from sync_core.verify.verdicts import DAMAGE_VERDICTS

ENV_UNIT_SECONDS = "THUMBNAILS_UNIT_SECONDS"
DEFAULT_UNIT_SECONDS = 20 * 60.0  # under the Functions timeout (host.json: 30 min)
ENV_DECODE_SLOTS = "THUMBNAILS_DECODE_SLOTS"
# Decodes at once per process, whatever the number of partitions (activities) in flight: host.json lets 8
# activities run per instance, and eight decodes at the pixel limit would not fit a 2 GB instance.
DEFAULT_DECODE_SLOTS = 2
MAX_FAILURES = 50  # failure lines a summary carries (the rows hold them all)
_SELECT = ["PartitionKey", "RowKey", P_BLOB_NAME, P_SIZE, P_SHA256, P_VERIFY_STATUS, P_RENDITION_STATE]
# Outcome counters of a summary, in the order they are shown.
COUNTS = ("made", "shared", "failed", "done_before", "not_media", "damaged", "missing", "deferred")


@dataclass(frozen=True)
class ThumbnailSettings:
    cfg: StorageConfig
    container: str = DEFAULT_THUMBNAILS_CONTAINER
    prefixes: tuple[str, ...] = ()  # always covered; others are discovered when ``discover``
    discover: bool = True
    force: bool = False  # look again at rows whose facts are recorded (failed ones are retried)
    unit_seconds: float = DEFAULT_UNIT_SECONDS
    decode_slots: int = DEFAULT_DECODE_SLOTS
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ThumbnailSettings:
        env = os.environ if env is None else env
        try:
            seconds = float(env.get(ENV_UNIT_SECONDS) or DEFAULT_UNIT_SECONDS)
        except ValueError as exc:
            raise ConfigError(f"{ENV_UNIT_SECONDS} must be a number of seconds") from exc
        try:
            slots = max(1, int(env.get(ENV_DECODE_SLOTS) or DEFAULT_DECODE_SLOTS))
        except ValueError as exc:
            raise ConfigError(f"{ENV_DECODE_SLOTS} must be a whole number") from exc
        return cls(
            cfg=resolve_storage_config(env=env, source_id="thumbnails"),
            container=thumbnails_container_name(env),
            prefixes=parse_prefixes(env.get(ENV_PREFIXES, "")),
            unit_seconds=seconds,
            decode_slots=slots,
        )


@dataclass
class _Row:
    pk: str
    rk: str
    name: str
    sha: str
    size: int


@dataclass
class Thumbnailer:
    """Clients for one settings object, created once and shared by every partition (thread-safe)."""

    settings: ThumbnailSettings
    pool_size: int = 16
    clock: Any = time.monotonic  # tests move time on to see a partition stop at its deadline
    clients: ArchiveClients = field(init=False)

    def __post_init__(self) -> None:
        self._decoding = threading.BoundedSemaphore(max(1, self.settings.decode_slots))
        self.clients = ArchiveClients(self.settings.cfg, self.pool_size)

    @property
    def thumbs(self) -> ContainerClient:
        return self.clients.blobs.get_container_client(self.settings.container)

    # -- step 1 -----------------------------------------------------------------------------------------
    def plan(self) -> dict[str, Any]:
        """The prefixes to cover; creates the renditions container when it is missing (emulator, first run)."""
        found: list[str] = []
        if self.settings.discover:
            found = indexed_prefixes(self.clients.table, self.settings.cfg.table)
        try:
            self.thumbs.get_container_properties()
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self.thumbs.create_container()
        return {"prefixes": sorted(set(found) | set(self.settings.prefixes))}

    # -- last step --------------------------------------------------------------------------------------
    def refresh_catalog(self, prefix: str) -> dict[str, Any]:
        """The gallery's catalog of ``prefix`` rebuilt with the rendition facts this run recorded."""
        return {"prefix": prefix, "items": refresh_catalog(self.clients.table, self.thumbs, prefix)}

    # -- step 2 -----------------------------------------------------------------------------------------
    def partition(self, partition: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Make what is missing for one index partition (``<prefix>/<xx>``); returns its summary and the
        failures found this time (blob name, reason). An Azure error after the client's retries is raised:
        the activity is retried, and what was recorded before it is not done again."""
        prefix, shard = split_partition(partition)
        if len(shard) != 2:
            raise ValueError(f"renditions run over the 256 partitions <prefix>/<xx>, not {partition!r}")
        deadline = self.clock() + self.settings.unit_seconds
        counts: Counter[str] = Counter()
        failures: list[dict[str, str]] = []
        outcomes: dict[str, tuple[MediaFacts | None, str]] = {}  # per SHA-256: identical content is decoded once
        rows = 0
        query = "PartitionKey eq " + odata_string(encode_key(partition_id(prefix, shard)))
        for page in query_pages(self.clients.table, query, select=_SELECT):
            for entity in page:
                rows += 1
                row, skip = self._candidate(entity)
                if skip:
                    counts[skip] += 1
                    continue
                assert row is not None
                if self.clock() > deadline:
                    counts["deferred"] += 1
                    continue
                if row.sha in outcomes:  # identical content met again: its renditions are shared
                    facts, how = outcomes[row.sha][0], "shared"
                else:
                    facts, how = self._make(row)
                    outcomes[row.sha] = (facts, how)
                if facts is None:  # the blob is gone: nothing recorded, the next run looks again
                    counts["missing"] += 1
                    continue
                if write_facts(self.clients.table, row.pk, row.rk, facts):
                    counts[how if facts.made else "failed"] += 1
                    if not facts.made:
                        failures.append({"blob_name": row.name, "reason": facts.detail})
        summary = {"partition": partition, "rows": rows, "counts": {k: counts[k] for k in COUNTS}}
        summary["failures"] = failures[:MAX_FAILURES]
        return summary, failures

    def _candidate(self, entity: Mapping[str, Any]) -> tuple[_Row | None, str | None]:
        """The row to work on, or the counter that says why not."""
        name = str(plain(entity.get(P_BLOB_NAME)) or "")
        sha = str(plain(entity.get(P_SHA256)) or "").lower()
        if kind_of(name) is None or len(sha) != 64:
            return None, "not_media"
        if plain(entity.get(P_RENDITION_STATE)) in (RENDITION_MADE, RENDITION_FAILED) and not self.settings.force:
            return None, "done_before"
        if plain(entity.get(P_VERIFY_STATUS)) in DAMAGE_VERDICTS:  # the agent re-uploads it first
            return None, "damaged"
        size = int(plain(entity.get(P_SIZE)) or 0)
        return _Row(entity["PartitionKey"], entity["RowKey"], name, sha, size), None

    def _make(self, row: _Row) -> tuple[MediaFacts | None, str]:
        """The renditions of one content: made now (``made``), found made (``shared``), or failed with a
        reason; no facts when the blob is gone."""
        now = datetime.now(UTC)
        existing = self._existing(row.sha)
        if existing is not None:
            return MediaFacts(RENDITION_MADE, width=existing[0], height=existing[1], duration=existing[2], at=now), (
                "shared"
            )
        if row.size == 0:
            return MediaFacts(RENDITION_FAILED, "empty file (0 bytes)", at=now), "failed"
        kind = kind_of(row.name)
        assert kind is not None
        blob = self.clients.container.get_blob_client(row.name)
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return None, "missing"
        try:
            with self._decoding, BlobReader(blob, props.size, etag=props.etag) as reader:
                decoded = decode(kind, reader, target=LARGEST, limits=self.settings.limits)
                webps = render(decoded.image)
                facts = MediaFacts(
                    RENDITION_MADE, width=decoded.width, height=decoded.height, duration=decoded.duration, at=now
                )
                del decoded  # the decoded picture is freed before the slot is
        except DecodeError as exc:
            return MediaFacts(RENDITION_FAILED, str(exc), at=now), "failed"
        except ResourceNotFoundError:
            return None, "missing"
        except AzureError:
            raise
        except Exception as exc:  # a codec library's own failure: recorded, never a crash of the run
            return MediaFacts(
                RENDITION_FAILED, f"cannot render: {type(exc).__name__}: {first_line(exc)}", at=now
            ), "failed"
        for size, body in webps.items():  # the largest last: its existence says the set is complete
            meta = _facts_metadata(facts) if size == LARGEST else None
            self._upload(rendition_name(row.sha, size), body, meta)
        return facts, "made"

    def _existing(self, sha: str) -> tuple[int | None, int | None, float | None] | None:
        """The original's facts from the largest rendition's metadata, when the set exists."""
        try:
            props = self.thumbs.get_blob_client(rendition_name(sha, LARGEST)).get_blob_properties()
        except ResourceNotFoundError:
            return None
        md = {k.lower(): v for k, v in (props.metadata or {}).items()}
        width, height, duration = md.get("width"), md.get("height"), md.get("duration")
        return (
            int(width) if width and width.isdigit() else None,
            int(height) if height and height.isdigit() else None,
            float(duration) if duration else None,
        )

    def _upload(self, name: str, body: bytes, metadata: dict[str, str] | None) -> None:
        try:
            self.thumbs.upload_blob(
                name, body, overwrite=False, metadata=metadata, content_settings=_WEBP, max_concurrency=1
            )
        except ResourceExistsError:  # made meanwhile by another run: the same content, kept as it is
            pass
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise


def _facts_metadata(facts: MediaFacts) -> dict[str, str]:
    md = {"width": str(facts.width or ""), "height": str(facts.height or "")}
    if facts.duration is not None:
        md["duration"] = f"{facts.duration:.3f}"
    return md


def _content_settings() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="image/webp", cache_control="public, max-age=31536000, immutable")


_WEBP = _content_settings()


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Partition summaries (or merged ones) added up — the orchestration's and the command's result."""
    counts: Counter[str] = Counter()
    rows = units = 0
    failures: list[dict[str, str]] = []
    errors: list[str] = []
    for s in summaries:
        units += int(s.get("partitions", 1))  # a merged summary counts the partitions it holds
        rows += int(s.get("rows") or 0)
        counts.update({k: int(v) for k, v in (s.get("counts") or {}).items()})
        failures.extend(s.get("failures") or [])
        errors.extend(s.get("errors") or [])
    return {
        "partitions": units,
        "rows": rows,
        "counts": {k: counts[k] for k in COUNTS},
        "failures": failures[:MAX_FAILURES],
        "errors": errors,
    }


def run_all(thumbnailer: Thumbnailer, partitions: list[str], *, workers: int = 2) -> tuple[dict[str, Any], list]:
    """Every partition in a thread pool (decoders release the GIL); returns the merged summary and every
    failure. A partition that fails after the client's retries is reported and the others go on."""

    def one(p: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        try:
            return thumbnailer.partition(p)
        except AzureError as exc:
            return {"partition": p, "rows": 0, "counts": {}, "errors": [f"{p}: {first_line(exc)}"]}, []

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="thumbnails") as pool:
        results = list(pool.map(one, partitions))
    failures = [f for _, fs in results for f in fs]
    return merge_summaries(s for s, _ in results), failures
