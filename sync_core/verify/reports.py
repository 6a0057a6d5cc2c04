"""Verification reports: one JSON document per run in the reports container, plus a summary row per run.

Layout (docs/CONTRACTS.md): ``reports/<YYYYmmddTHHMMSSZ>-<run id>.json`` (create-only, never replaced),
a copy at ``reports/latest.json`` (replaced only by a report that started later, under an etag
condition, so a slow older run never hides a newer one) and a row in the runs table (PartitionKey
``run``, RowKey = inverted start time so the newest sorts first).

While a cloud run is in flight, each partition's problems wait in ``staging/<run id>/…`` blobs, because
the orchestration passes only ids and counts between functions; the report step gathers them and then
removes those scratch blobs (they are the verifier's own, never user data).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from sync_core.config import ENV_REPORTS_CONTAINER, ENV_RUNS_TABLE
from sync_core.errors import redact
from sync_core.storage.tiering import read_cost_figure
from sync_core.verify.summary import Summary
from sync_core.verify.verdicts import ALL_VERDICTS, PROBLEM_VERDICTS

REPORT_SCHEMA = 1
DEFAULT_REPORTS_CONTAINER = "azphotosync-reports"
DEFAULT_RUNS_TABLE = "azphotosyncruns"
LATEST_NAME = "reports/latest.json"
RUNS_PARTITION = "run"
_MD_STARTED = "startedat"  # metadata on latest.json: which run it holds
_JSON = ContentSettings(content_type="application/json")
_MAX_MS = 10**13 - 1  # inverted-timestamp base: 13 digits last until the year 2286


def reports_container_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ENV_REPORTS_CONTAINER) or DEFAULT_REPORTS_CONTAINER


def runs_table_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ENV_RUNS_TABLE) or DEFAULT_RUNS_TABLE


def iso(ts: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: the form every report timestamp uses."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def report_blob_name(started_at: str, run_id: str) -> str:
    return f"reports/{parse_iso(started_at):%Y%m%dT%H%M%SZ}-{run_id}.json"


def runs_row_key(started_at: str, run_id: str) -> str:
    ms = int(parse_iso(started_at).timestamp() * 1000)
    return f"{_MAX_MS - ms:013d}-{run_id}"


# -- reading ------------------------------------------------------------------------------------------
def read_latest_report(blob_service: BlobServiceClient, reports_container: str) -> dict[str, Any] | None:
    """The newest report document, or ``None`` when no run has written one yet (or the container does
    not exist). Raises ``ValueError`` if ``latest.json`` is not a report (written by something else)."""
    blob = blob_service.get_blob_client(reports_container, LATEST_NAME)
    try:
        data = blob.download_blob().readall()
    except ResourceNotFoundError:
        return None
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ValueError(f"{reports_container}/{LATEST_NAME} is not valid JSON") from exc
    if not isinstance(doc, dict) or "schema" not in doc:
        raise ValueError(f"{reports_container}/{LATEST_NAME} is not a verification report")
    return doc


# -- writing ------------------------------------------------------------------------------------------
def _ensure_container(container: ContainerClient) -> None:
    """Create the reports container if we may; with data-plane rights scoped to an existing container
    (as deployed by infra/), creating is neither needed nor allowed, so refusals are ignored."""
    try:
        container.create_container()
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code not in (403, 409):
            raise


def _upload_json(container: ContainerClient, name: str, body: bytes, **kwargs: Any) -> None:
    try:
        container.upload_blob(name, body, content_settings=_JSON, **kwargs)
    except ResourceNotFoundError:  # container missing: create it once and retry
        _ensure_container(container)
        container.upload_blob(name, body, content_settings=_JSON, **kwargs)


def write_report(blob_service: BlobServiceClient, reports_container: str, report: Mapping[str, Any]) -> str:
    """Store ``report``; returns the dated blob name. Safe to repeat (an activity retry): the dated blob
    is create-only and ``latest.json`` only moves forward."""
    container = blob_service.get_container_client(reports_container)
    name = report_blob_name(report["started_at"], report["run_id"])
    body = json.dumps(report, indent=2, sort_keys=False).encode("utf-8")
    with contextlib.suppress(ResourceExistsError):  # already stored by an earlier attempt of this step
        _upload_json(container, name, body, overwrite=False)
    _advance_latest(container, report["started_at"], body)
    return name


def _advance_latest(container: ContainerClient, started_at: str, body: bytes) -> None:
    blob = container.get_blob_client(LATEST_NAME)
    for _ in range(5):  # a concurrent writer moved it: look again
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            props = None
        if props is not None:
            held = (props.metadata or {}).get(_MD_STARTED, "")
            if held and parse_iso(held) > parse_iso(started_at):
                return  # a newer run's report is already there
            cond: dict[str, Any] = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
        else:
            cond = {"match_condition": MatchConditions.IfMissing}
        try:
            _upload_json(container, LATEST_NAME, body, overwrite=True, metadata={_MD_STARTED: started_at}, **cond)
            return
        except (ResourceExistsError, ResourceNotFoundError):
            continue
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                continue
            raise


def write_run_row(table_service: TableServiceClient, runs_table: str, report: Mapping[str, Any], blob: str) -> None:
    """One summary row per run (an upsert: a retried step writes the same row again)."""
    table = table_service.get_table_client(runs_table)
    counts = report.get("counts", {})
    entity: dict[str, Any] = {
        "PartitionKey": RUNS_PARTITION,
        "RowKey": runs_row_key(report["started_at"], report["run_id"]),
        "RunId": report["run_id"],
        "StartedAt": parse_iso(report["started_at"]),
        "FinishedAt": parse_iso(report["finished_at"]),
        "Container": report.get("container", ""),
        "IndexTable": report.get("table", ""),
        "Partitions": int(report.get("partitions", 0)),
        "PartitionsFailed": int(report.get("partitions_failed", 0)),
        "Clean": report_is_clean(report),
        "Rows": int(report.get("rows", 0)),
        "DeepVerified": int(report.get("deep_verified", 0)),
        "DeepBytes": EntityProperty(int(report.get("deep_bytes", 0)), EdmType.INT64),
        "Problems": len(report.get("problems", [])),
        "Errors": len(report.get("errors", [])),
        "Report": blob,
        **{_camel(k): int(v) for k, v in counts.items()},
    }
    try:
        table.upsert_entity(entity)
    except ResourceNotFoundError:
        with contextlib.suppress(ResourceExistsError):
            table_service.create_table(runs_table)
        table.upsert_entity(entity)


def _camel(verdict: str) -> str:
    return "Count" + "".join(part.capitalize() for part in verdict.split("_"))


# -- staging (cloud runs only) ----------------------------------------------------------------------------
def _staging_prefix(run_id: str) -> str:
    return f"staging/{run_id}/"


def stage_problems(
    blob_service: BlobServiceClient, reports_container: str, run_id: str, partition: str, problems: list[dict]
) -> None:
    """Park one partition's problems until the report step gathers them (replaces an earlier attempt's)."""
    if not problems:
        return
    container = blob_service.get_container_client(reports_container)
    key = sha256(partition.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    body = json.dumps({"partition": partition, "problems": problems}).encode("utf-8")
    _upload_json(container, f"{_staging_prefix(run_id)}{key}.json", body, overwrite=True)


def collect_staged(blob_service: BlobServiceClient, reports_container: str, run_id: str) -> list[dict]:
    """Every staged problem of ``run_id``, in partition order."""
    container = blob_service.get_container_client(reports_container)
    parts: list[tuple[str, list[dict]]] = []
    try:
        for b in container.list_blobs(name_starts_with=_staging_prefix(run_id)):
            doc = json.loads(container.download_blob(b.name).readall())
            parts.append((doc["partition"], doc["problems"]))
    except ResourceNotFoundError:
        return []
    return [p for _, probs in sorted(parts, key=lambda x: x[0]) for p in probs]


def clear_staged(blob_service: BlobServiceClient, reports_container: str, run_id: str) -> None:
    container = blob_service.get_container_client(reports_container)
    try:
        for b in container.list_blobs(name_starts_with=_staging_prefix(run_id)):
            with contextlib.suppress(ResourceNotFoundError):
                container.delete_blob(b.name)
    except ResourceNotFoundError:
        return


# -- the document ---------------------------------------------------------------------------------------
def build_report(
    *,
    run_id: str,
    started_at: str,
    finished_at: str,
    container: str,
    table: str,
    summary: Summary,
    problems: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The report document (docs/CONTRACTS.md) from a run's summary and the problem list."""
    counts = {v: int(summary.get("counts", {}).get(v, 0)) for v in ALL_VERDICTS}
    return {
        "schema": REPORT_SCHEMA,
        "run_id": run_id,
        "started_at": started_at,
        "finished_at": finished_at,
        "container": container,
        "table": table,
        "prefixes": list(summary.get("prefixes", [])),
        "partitions": int(summary.get("partitions", 0)),
        "partitions_failed": int(summary.get("partitions_failed", 0)),
        "rows": int(summary.get("rows", 0)),
        "deep_budget": int(summary.get("deep_budget", 0)),
        "deep_verified": int(summary.get("deep_verified", 0)),
        "deep_bytes": int(summary.get("deep_bytes", 0)),
        "candidate_bytes": int(summary.get("candidate_bytes", 0)),
        "prefix_bytes": {k: int(v) for k, v in sorted(summary.get("prefix_bytes", {}).items())},
        "deep_archived": int(summary.get("deep_archived", 0)),
        "deep_bytes_by_tier": dict(summary.get("deep_bytes_by_tier", {})),
        "deep_read_cost": read_cost_figure(summary.get("deep_bytes_by_tier", {})),
        "tier_bytes": {k: dict(v) for k, v in sorted(summary.get("tier_bytes", {}).items())},
        "skipped_changed": int(summary.get("skipped_changed", 0)),
        "requests": dict(summary.get("requests", {})),
        "counts": counts,
        "problems": [
            {"blob_name": p["blob_name"], "verdict": p["verdict"], "detail": redact(p.get("detail", ""))}
            for p in problems
        ],
        "errors": [redact(e) for e in summary.get("errors", [])],
    }


def report_is_clean(report: Mapping[str, Any]) -> bool:
    """No damage, no unrepaired orphan, no partition left unverified (a repaired orphan is fine)."""
    counts = report.get("counts", {})
    if report.get("errors") or int(report.get("partitions_failed") or 0):
        return False
    return not any(counts.get(v, 0) for v in PROBLEM_VERDICTS)
