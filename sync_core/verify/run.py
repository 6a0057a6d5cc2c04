"""The steps of one verification run — plan, verify a unit, publish the report — shared by the Functions
activities (one step per activity, the units fanned out by the orchestrators) and by ``azphotosync verify``
(the same steps in-process, the units in a thread pool: :meth:`Verifier.run_units`).

Settings come from the same environment variables everywhere (docs/verification.md):
``AZURE_STORAGE_*`` for the archive, ``VERIFY_DEEP_BUDGET``, ``VERIFY_REPORTS_CONTAINER``,
``VERIFY_RUNS_TABLE`` and the optional ``VERIFY_PREFIXES``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError

from sync_core.config import ENV_DEEP_BUDGET, ENV_PREFIXES, StorageConfig, resolve_storage_config
from sync_core.contracts.blobname import normalize_prefix
from sync_core.errors import ConfigError, UnstorableNameError, first_line
from sync_core.index import flags
from sync_core.index.table_mirror import check_binding
from sync_core.sizes import parse_size
from sync_core.storage.clients import ArchiveClients
from sync_core.verify import reports
from sync_core.verify.partition import PartitionResult, Problem, indexed_prefixes, verify_partition
from sync_core.verify.summary import Job, Plan, Summary, run_job, run_summary, unit_job

DEFAULT_CLOUD_DEEP_BUDGET = "2GiB"


@dataclass(frozen=True)
class VerifySettings:
    cfg: StorageConfig
    deep_budget: int
    reports_container: str
    runs_table: str
    prefixes: tuple[str, ...] = ()  # always verified, even with no rows (orphans); others are discovered
    discover: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> VerifySettings:
        """The Function App's settings (the archive's identity-based URL, or a connection string locally)."""
        env = os.environ if env is None else env
        cfg = resolve_storage_config(env=env, source_id="verifier")
        return cls(
            cfg=cfg,
            deep_budget=parse_size(env.get(ENV_DEEP_BUDGET) or DEFAULT_CLOUD_DEEP_BUDGET, what=ENV_DEEP_BUDGET),
            reports_container=reports.reports_container_name(env),
            runs_table=reports.runs_table_name(env),
            prefixes=parse_prefixes(env.get(ENV_PREFIXES, "")),
        )


def parse_prefixes(text: str | Iterable[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        return tuple(sorted({normalize_prefix(p.strip()) for p in items if p.strip()}))
    except UnstorableNameError as exc:
        raise ConfigError(f"{ENV_PREFIXES}: {exc}") from exc


@dataclass
class Verifier:
    """Clients for one settings object, created once and shared by every partition (thread-safe)."""

    settings: VerifySettings
    pool_size: int = 16
    clients: ArchiveClients = field(init=False)

    def __post_init__(self) -> None:
        self.clients = ArchiveClients(self.settings.cfg, self.pool_size)

    # -- step 1 -----------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """Which prefixes to verify and the byte total the deep-verify shares are computed against (the
        previous report's), as ids and counts."""
        found: list[str] = []
        check_binding(self.clients.table, self.settings.cfg)  # another container's table: its rows are not ours
        if self.settings.discover:
            found = indexed_prefixes(self.clients.table, self.settings.cfg.table)
        previous = None
        try:
            previous = reports.read_latest_report(self.clients.blobs, self.settings.reports_container)
        except (ValueError, ResourceNotFoundError):
            previous = None
        prefixes = sorted(set(found) | set(self.settings.prefixes))
        # The deep-verify shares are computed against the previous run's bytes over the same prefixes.
        by_prefix = (previous or {}).get("prefix_bytes") or {}
        reference = sum(int(by_prefix.get(p, 0)) for p in prefixes)
        return {
            "prefixes": prefixes,
            "deep_budget": self.settings.deep_budget,
            "deep_reference": reference or None,
            "previous_rows": int((previous or {}).get("rows") or 0) or None,
        }

    # -- step 2 -----------------------------------------------------------------------------------------
    def verify_unit(self, job: Job, *, stage: bool) -> tuple[Summary, list[Problem]]:
        """Verify one unit. With ``stage`` its problems are parked for :meth:`publish` (cloud runs, where
        only ids and counts travel between functions); without, the caller keeps them (the CLI)."""
        res = verify_partition(
            self.clients.container,
            self.clients.table,
            job["partition"],
            now=reports.parse_iso(job["started_at"]),
            deep_budget=int(job.get("deep_budget") or 0),
            deep_reference=job.get("deep_reference"),
            partitions_total=int(job.get("partitions_total") or 256),
        )
        if stage:
            problems = [p.to_dict() for p in res.problems]
            reports.stage_problems(
                self.clients.blobs, self.settings.reports_container, job["run_id"], job["partition"], problems
            )
        return res.summary(), res.problems

    def run_units(
        self, plan: Plan, partitions: Sequence[str], *, run_id: str, started_at: str, workers: int
    ) -> tuple[Summary, list[Problem]]:
        """Step 2 for every unit in a thread pool (the orchestrators' fan-out, in one process): the run's
        summary and every problem, kept in memory. A unit that fails after the client's retries is
        reported as not verified, as a failed activity is in the cloud, and the others go on."""

        run = run_job(plan, run_id=run_id, started_at=started_at, partitions_total=len(partitions))

        def one(partition: str) -> tuple[Summary, list[Problem]]:
            try:
                return self.verify_unit(unit_job(run, partition), stage=False)
            except AzureError as exc:
                return PartitionResult(partition, error=first_line(exc)).summary(), []

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify") as pool:
            results = list(pool.map(one, partitions))
        return run_summary(plan, (s for s, _ in results)), [p for _, probs in results for p in probs]

    # -- step 3 -----------------------------------------------------------------------------------------
    def publish(
        self, *, run_id: str, started_at: str, summary: Summary, problems: Iterable[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Build and store the report and the runs-table row; returns the report document. Without
        ``problems`` they are gathered from the staging blobs (and those removed afterwards). A run that
        verified every unit first marks its prefixes' flags complete (:func:`~sync_core.index.flags.mark_ready`)."""
        if not summary.get("partitions_failed") and summary.get("prefixes"):
            # Every row under these prefixes was read by this code, which flags what it finds damaged.
            flags.mark_ready(self.clients.table, summary["prefixes"])
        staged = problems is None
        if staged:
            problems = reports.collect_staged(self.clients.blobs, self.settings.reports_container, run_id)
        report = self.report(run_id=run_id, started_at=started_at, summary=summary, problems=problems or [])
        name = reports.write_report(self.clients.blobs, self.settings.reports_container, report)
        reports.write_run_row(self.clients.tables, self.settings.runs_table, report, name)
        if staged:
            reports.clear_staged(self.clients.blobs, self.settings.reports_container, run_id)
        return report

    def report(
        self, *, run_id: str, started_at: str, summary: Summary, problems: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """The report document, finished now (what :meth:`publish` stores; the CLI shows it even when it
        may not store it)."""
        return reports.build_report(
            run_id=run_id,
            started_at=started_at,
            finished_at=reports.iso(datetime.now(UTC)),
            container=self.settings.cfg.container,
            table=self.settings.cfg.table,
            summary=summary,
            problems=problems,
        )


def outcome(report: Mapping[str, Any], report_blob: str | None = None) -> dict[str, Any]:
    """The small value a run returns (orchestration output): ids and counts."""
    return {
        "run_id": report["run_id"],
        "report": report_blob or reports.report_blob_name(report["started_at"], report["run_id"]),
        "clean": reports.report_is_clean(report),
        "rows": report["rows"],
        "problems": len(report["problems"]),
        "errors": len(report.get("errors", [])),
    }


__all__ = ["Verifier", "VerifySettings", "outcome", "parse_prefixes"]
