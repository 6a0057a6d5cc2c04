"""The agent's half of the closed loop: re-upload what the cloud verifier flagged as damaged.

At the start of a run the agent reads the rows of its source id whose ``VerifyStatus`` is a damage verdict
(:data:`~sync_core.verify.verdicts.DAMAGE_VERDICTS`). For each one it looks for a local file that still has the
row's SHA-256 (found through SQLite, then re-hashed — the bytes are proven, not assumed), and puts those
bytes back under the same blob name through the sync's own :class:`~sync_core.sync.transfer.Transfer` (the
same blocks, per-block checks, Content-MD5, retries and ``--bwlimit`` bucket), conditionally:

* the blob is absent — create-only (``If-None-Match: *``);
* the blob is present — replace only the exact blob just inspected (``If-Match: <its etag>``), so a blob
  someone else changed in the meantime is never overwritten blindly.

The new etag goes into SQLite (and the Table through the mirror) and the flag is cleared by writing
``VerifyStatus = reuploaded`` with a detail line; the next verification pass gives its own verdict. Where no
local copy has those bytes any more, the loss is reported plainly and logged, and nothing is changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobProperties, ContainerClient

from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import K_SHA256, BlobMeta, normalize_etag
from sync_core.contracts.blobname import is_name_of, prefix_of
from sync_core.contracts.mediatypes import content_type
from sync_core.errors import first_line
from sync_core.index.entity import row_from_entity
from sync_core.index.flags import drop_flag
from sync_core.index.table_index import (
    P_BLOB_ETAG,
    P_BLOB_NAME,
    P_RELPATH,
    P_SHA256,
    P_VERIFY_DETAIL,
    P_VERIFY_STATUS,
)
from sync_core.index.table_mirror import flagged_rows, unavailable_reason
from sync_core.local.hasher import FileChangedError, NotScannedFileError, hash_file
from sync_core.local.state import BlobRow, StateDB
from sync_core.storage.clients import SINGLE_PUT_MAX
from sync_core.sync.progress import RunSummary
from sync_core.sync.transfer import BLOCK_SIZE, BlobConflictError, StoreResult, Transfer
from sync_core.verify.verdicts import Verdict

# Outcomes (also the ``repair_log.outcome`` values)
REUPLOADED = "reuploaded"  # bytes sent again from a local copy
RESTORED = "restored"  # the blob is (again) what we wrote: nothing sent, flag cleared
LOST = "lost"  # no local file has those bytes any more
FAILED = "failed"  # the service refused or the blob changed meanwhile; retried next run


@dataclass(frozen=True, slots=True)
class RepairItem:
    blob_name: str
    verdict: str
    outcome: str
    detail: str
    bytes_sent: int = 0


@dataclass
class RepairResult:
    flagged: int = 0
    items: list[RepairItem] = field(default_factory=list)
    new_losses: int = 0  # losses not reported by an earlier run
    error: str = ""  # the flags could not be read (the backup itself goes on)
    unavailable: str = ""  # ...because the table is gone or forbidden: reported with the waiting rows instead

    def count(self, outcome: str) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)

    @property
    def bytes_sent(self) -> int:
        return sum(i.bytes_sent for i in self.items)


class _NotThatContent(Exception):
    """The local candidate no longer hashes to the row's SHA-256."""


FlagQuery = Callable[[], list[dict[str, Any]]]  # gives the flagged rows (or raises the query's AzureError)


class Repairer:
    """Repairs the flagged rows of ``cfg.source_id`` under ``cfg.prefix`` from the files under ``source``."""

    def __init__(
        self,
        cfg: StorageConfig,
        state: StateDB,
        container: ContainerClient,
        table: TableClient,
        source: Path,
        *,
        block_size: int = BLOCK_SIZE,
        single_put_max: int = SINGLE_PUT_MAX,
        read_hook: Callable[[int], object] | None = None,
    ):
        """``block_size``, ``single_put_max`` and ``read_hook`` (the ``--bwlimit`` bucket) as for the sync's own
        uploads: a repair sends its bytes through the same :class:`~sync_core.sync.transfer.Transfer`."""
        self.cfg = cfg
        self.state = state
        self.container = container
        self.table = table
        self.source = source
        self.single_put_max = single_put_max
        self.transfer = Transfer(container, block_size=block_size, read_hook=read_hook)

    def run(self, flags: FlagQuery | None = None) -> RepairResult:
        """``flags``: the answer of a flagged-rows query started earlier (the engine sends it during its scan);
        by default the query is sent now."""
        res = RepairResult()
        try:
            rows = flags() if flags is not None else self.query_flags()
        except AzureError as exc:
            res.unavailable = unavailable_reason(self.table.table_name, exc)
            if not res.unavailable:
                res.error = f"cannot read verification flags: {first_line(exc)}"
            return res
        res.flagged = len(rows)
        for row in rows:
            item = self._repair(row)
            if item.outcome == LOST and not self.state.repair_logged(item.blob_name, LOST):
                res.new_losses += 1
            self.state.log_repair(item.blob_name, item.verdict, item.outcome, item.detail)
            res.items.append(item)
        self.state.commit()
        return res

    def query_flags(self) -> list[dict[str, Any]]:
        """The rows to repair: one Table query, safe to run on another thread before :meth:`run`."""
        return flagged_rows(self.table, self.cfg.prefix, self.cfg.source_id, tidy=True)

    # -- one row -----------------------------------------------------------------------------------
    def _repair(self, row: dict[str, Any]) -> RepairItem:
        name, verdict = str(row.get(P_BLOB_NAME, "")), str(row.get(P_VERIFY_STATUS, ""))
        sha, rel = str(row.get(P_SHA256, "")), str(row.get(P_RELPATH, ""))
        try:
            if not is_name_of(prefix_of(name, sha), name, sha, rel):
                raise ValueError("name, SHA-256 and path disagree")
            known = row_from_entity(row)
            size = known.size
        except (ValueError, KeyError, TypeError) as exc:
            if self.state.get_blob(name) is not None:  # our own row, damaged: the local index rewrites it
                self.state.set_mirror_pending([name])  # at the end of this run; the next run repairs
                return RepairItem(name, verdict, FAILED, f"row is not usable ({exc}); rewritten from the local index")
            return RepairItem(name, verdict, FAILED, f"row is not usable ({exc}); left for the verifier")
        try:
            props: BlobProperties | None = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            props = None
        except AzureError as exc:
            return RepairItem(name, verdict, FAILED, f"cannot inspect the blob: {first_line(exc)}")
        if props is not None and self._is_ours(props, name, sha, size, verdict):
            etag = normalize_etag(str(props.etag))
            detail = "the blob holds the expected size and SHA-256 metadata again; nothing sent"
            return self._cleared(row, name, verdict, etag, RESTORED, detail, 0)
        candidates = self._candidates(sha, size, rel)
        if not candidates:
            detail = f"no local file has this content any more (it was {rel!r}); the cloud copy is damaged"
            return RepairItem(name, verdict, LOST, detail)
        last = ""
        for rel_local in candidates:
            try:
                stored = self._upload(props, known, rel_local)
            except (_NotThatContent, FileChangedError, NotScannedFileError):
                last = f"{rel_local!r} no longer has this content"
                continue
            except OSError as exc:
                last = f"cannot read {rel_local!r}: {exc.strerror or exc}"
                continue
            except (ResourceExistsError, ResourceNotFoundError, BlobConflictError) as exc:
                detail = f"the blob changed while it was being repaired ({first_line(exc)}); retried next run"
                return RepairItem(name, verdict, FAILED, detail)
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    detail = "the blob changed since it was inspected; left untouched, retried next run"
                else:
                    detail = f"re-upload refused: {first_line(exc)}"
                return RepairItem(name, verdict, FAILED, detail)
            except AzureError as exc:
                return RepairItem(name, verdict, FAILED, f"re-upload failed: {first_line(exc)}")
            if stored.action == "present":  # re-created meanwhile, with this content: nothing of ours was sent
                detail = "the blob was re-created meanwhile with the expected size and SHA-256 metadata"
                return self._cleared(row, name, verdict, stored.etag, RESTORED, detail, 0)
            how = "replaced the damaged blob" if props is not None else "re-created the missing blob"
            detail = f"{how} from {rel_local!r}"
            return self._cleared(row, name, verdict, stored.etag, REUPLOADED, detail, stored.bytes_sent)
        return RepairItem(name, verdict, LOST, f"no local file has this content any more ({last})")

    def _is_ours(self, props: BlobProperties, name: str, sha: str, size: int, verdict: str) -> bool:
        """A blob reported missing that is back with the right size and SHA-256 metadata, or an etag
        "mismatch" against a stale Table row while the blob is exactly what SQLite recorded."""
        if props.size != size or (props.metadata or {}).get(K_SHA256) != sha:
            return False
        if verdict == Verdict.MISSING:
            return True
        known = self.state.get_blob(name)
        return verdict == Verdict.ETAG_MISMATCH and known is not None and known.etag == normalize_etag(str(props.etag))

    def _candidates(self, sha: str, size: int, rel: str) -> list[str]:
        """Local paths last seen with this content and size, the row's own path first."""
        rels = [f.relpath for f in self.state.files_with_sha(sha) if f.size == size]
        rels.sort(key=lambda r: r != rel)
        return [r for r in rels if (self.source / r).is_file()]

    def _upload(self, props: BlobProperties | None, known: BlobRow, rel_local: str) -> StoreResult:
        """Send the local bytes through the one transfer path, after a hash pass proved they are the row's; the
        blocks it reads are proven against that pass, so bytes changed meanwhile are never committed."""
        path = str(self.source / rel_local)
        st = os.stat(path, follow_symlinks=False)
        hashed = hash_file(
            path, st.st_size, st.st_mtime_ns, keep_up_to=self.single_put_max, block_size=self.transfer.block_size
        )
        if hashed.sha256 != known.sha256:
            raise _NotThatContent
        meta = BlobMeta(known.sha256, known.relpath, known.size, known.mtime_ns, known.source_id)
        etag = None if props is None else str(props.etag)
        ctype = content_type(known.relpath)
        return self.transfer.upload(known.blob_name, path, meta, ctype, hashed.data, hashed, replace_etag=etag)

    # -- clearing the flag -------------------------------------------------------------------------
    def _cleared(
        self, row: dict[str, Any], name: str, verdict: str, etag: str, outcome: str, detail: str, sent: int
    ) -> RepairItem:
        """Record the blob's etag locally and in the Table, and replace the verdict with ``reuploaded``."""
        if self.state.get_blob(name) is None:
            # Known to the Table only (a lost state dir): recorded as the blob just written.
            recorded = replace(row_from_entity(row), etag=etag, uploaded_at=time.time(), deleted_at=None)
            self.state.insert_blob_if_absent(recorded, mirror_pending=True)
        self.state.set_blob_etag(name, etag)
        self.state.commit()
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{detail}; by {self.cfg.source_id} at {when} after '{verdict}'"
        patch = {
            "PartitionKey": row["PartitionKey"],
            "RowKey": row["RowKey"],
            P_BLOB_ETAG: etag,
            P_VERIFY_STATUS: Verdict.REUPLOADED,
            P_VERIFY_DETAIL: text,
        }
        try:
            self.table.update_entity(patch, mode=UpdateMode.MERGE)
        except AzureError as exc:
            # The blob is whole again; the flag stays and the next run finds the blob is ours and clears it.
            return RepairItem(name, verdict, outcome, f"{detail}; flag not cleared yet ({first_line(exc)})", sent)
        drop_flag(self.table, self.cfg.source_id, row["PartitionKey"], row["RowKey"])
        return RepairItem(name, verdict, outcome, detail, sent)


def add_to_summary(res: RepairResult, summary: RunSummary) -> None:
    """Fold a repair pass into the run summary: new losses and failed repairs make the run exit 1."""
    summary.repaired += res.count(REUPLOADED) + res.count(RESTORED)
    summary.repair_lost += res.count(LOST)
    summary.repair_failed += res.count(FAILED)
    summary.bytes_uploaded += res.bytes_sent
    for i in res.items:
        if i.outcome in (LOST, FAILED) and len(summary.repair_problems) < 1000:
            summary.repair_problems.append(
                {"blob_name": i.blob_name, "verdict": i.verdict, "outcome": i.outcome, "detail": i.detail}
            )
    if res.error:
        summary.repair_problems.append({"blob_name": "", "verdict": "", "outcome": FAILED, "detail": res.error})
    summary.problems += res.new_losses + res.count(FAILED) + (1 if res.error else 0)
