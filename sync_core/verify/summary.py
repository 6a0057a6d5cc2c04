"""The typed values that travel between the steps of a run: the plan, a unit's job and the summary.

They are plain JSON-able dicts (``TypedDict``) because Durable Functions passes them between activities as
JSON; the CLI passes the very same values between the same steps in-process.

A :class:`Summary` describes one unit, a batch, a prefix or the whole run: partition summaries are added
up by :func:`merge_summaries` (pure and order-independent, so the orchestrator may call it), units that
could not be verified enter as :func:`failed_summary`, and :func:`run_summary` completes the total with
the plan's facts for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from sync_core.storage.tiering import merge_tier_bytes

_COUNTERS = (
    "rows", "blobs", "problems", "deep_verified", "deep_bytes", "candidate_bytes", "skipped_changed", "deep_archived",
)  # fmt: skip


class Plan(TypedDict):
    """What the plan step decided: the prefixes, and the totals the deep-verify shares are computed from."""

    prefixes: list[str]
    deep_budget: int
    deep_reference: int | None  # the previous run's verifiable bytes over these prefixes
    previous_rows: int | None  # the previous run's row count (sizes the CLI's units)


class RunJob(TypedDict):
    """What every unit of a run shares (ids and numbers only)."""

    run_id: str
    started_at: str  # ISO, the run's start: stamps LastVerified
    deep_budget: int
    deep_reference: int | None
    partitions_total: int  # units in the whole run (an even deep-verify split without a reference)


class Job(RunJob):
    """One unit's work: what the verify step needs."""

    partition: str  # ``<prefix>/<xx>`` or ``<prefix>/<x>``


class Summary(TypedDict):
    """Ids and counts of a unit, a batch, a prefix or the run (the report's figures)."""

    partition: NotRequired[str]  # a single unit's id
    partitions: int  # units verified
    partitions_failed: int  # units that could not be verified (checked again next run)
    rows: int
    blobs: int
    counts: dict[str, int]  # verdict -> rows or blobs
    problems: int
    deep_verified: int
    deep_bytes: int
    candidate_bytes: int  # bytes of rows that passed quick verify: the deep-verify pool
    skipped_changed: int  # rows or blobs that changed during the run: checked again next run
    prefix_bytes: dict[str, int]  # candidate bytes per prefix: the next run's deep-verify reference
    requests: dict[str, int]  # listing_pages, query_pages, property_calls (one blob each), writes
    deep_archived: int  # blobs that passed quick verify but cannot be re-hashed while archived
    deep_bytes_by_tier: dict[str, int]  # bytes re-hashed, per access tier (what the reads cost)
    tier_bytes: dict[str, dict[str, int]]  # prefix -> tier -> bytes listed (status's cost estimate)
    errors: list[str]
    prefixes: list[str]  # set by run_summary
    deep_budget: int  # set by run_summary


def run_job(plan: Plan, *, run_id: str, started_at: str, partitions_total: int) -> RunJob:
    return {
        "run_id": run_id,
        "started_at": started_at,
        "deep_budget": plan["deep_budget"],
        "deep_reference": plan["deep_reference"],
        "partitions_total": partitions_total,
    }


def unit_job(run: Mapping[str, Any], partition: str) -> Job:
    """``run``'s job for one unit (``run`` may carry more keys, e.g. the orchestrator's ``prefix``)."""
    return {
        "run_id": run["run_id"],
        "started_at": run["started_at"],
        "deep_budget": run["deep_budget"],
        "deep_reference": run["deep_reference"],
        "partitions_total": run["partitions_total"],
        "partition": partition,
    }


def empty_summary() -> Summary:
    return {
        "partitions": 0, "partitions_failed": 0, "rows": 0, "blobs": 0, "counts": {}, "problems": 0,
        "deep_verified": 0, "deep_bytes": 0, "candidate_bytes": 0, "skipped_changed": 0, "prefix_bytes": {},
        "requests": {}, "deep_archived": 0, "deep_bytes_by_tier": {}, "tier_bytes": {}, "errors": [],
        "prefixes": [], "deep_budget": 0,
    }  # fmt: skip


def failed_summary(where: str, error: str, partitions: int = 1) -> Summary:
    """``partitions`` units that could not be verified, and why: never counted among the verified ones."""
    out = empty_summary()
    out["partitions_failed"] = partitions
    out["errors"] = [f"{where}: {error}"]
    return out


def merge_summaries(summaries: Iterable[Mapping[str, Any]]) -> Summary:
    """Fan-in: add up unit (or batch) summaries. Pure and order-independent (the orchestrator uses it).

    A mapping without ``partitions`` counts as one unit verified."""
    out = empty_summary()
    counts: dict[str, int] = {}
    requests: dict[str, int] = {}
    for s in summaries:
        out["partitions"] += int(s.get("partitions", 1))
        out["partitions_failed"] += int(s.get("partitions_failed", 0))
        for k in _COUNTERS:
            out[k] += int(s.get(k, 0))  # type: ignore[literal-required]
        for k, v in s.get("counts", {}).items():
            counts[k] = counts.get(k, 0) + int(v)
        for k, v in s.get("requests", {}).items():
            requests[k] = requests.get(k, 0) + int(v)
        out["errors"].extend(s.get("errors", []))
        for k, v in s.get("prefix_bytes", {}).items():
            out["prefix_bytes"][k] = out["prefix_bytes"].get(k, 0) + int(v)
        merge_tier_bytes(out["deep_bytes_by_tier"], s.get("deep_bytes_by_tier", {}))
        for k, v in s.get("tier_bytes", {}).items():
            merge_tier_bytes(out["tier_bytes"].setdefault(k, {}), v)
    out["counts"] = {k: counts[k] for k in sorted(counts)}
    out["requests"] = requests
    return out


def run_summary(plan: Plan, summaries: Iterable[Mapping[str, Any]]) -> Summary:
    """The whole run's summary, as the publish step expects it: the units' total plus the plan's facts."""
    out = merge_summaries(summaries)
    out["prefixes"] = list(plan["prefixes"])
    out["deep_budget"] = int(plan["deep_budget"])
    return out
