"""``azphotosync verify``: the cloud's verification, run here — same sync_core steps, same partition
fan-out (a thread pool instead of Durable activities), same report."""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError
from rich.console import Console
from rich.markup import escape

from sync_core.config import ENV_DEEP_BUDGET, ENV_REPORTS_CONTAINER, ENV_RUNS_TABLE
from sync_core.errors import ConfigError, first_line
from sync_core.index.table_mirror import open_table
from sync_core.local.state import StateDB
from sync_core.sizes import format_size, parse_size
from sync_core.storage.clients import open_container, table_service
from sync_core.verify.partition import partitions_for, unit_digits
from sync_core.verify.reports import (
    DEFAULT_REPORTS_CONTAINER,
    DEFAULT_RUNS_TABLE,
    iso,
    report_is_clean,
)
from sync_core.verify.run import Verifier, VerifySettings
from sync_core.verify.verdicts import PROBLEM_VERDICTS, Verdict

from .console import human_bytes
from .options import state_dir, storage_config

EXIT_OK, EXIT_PROBLEMS = 0, 1


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        parents=parents,
        help="check every blob against the index table now (what the cloud does nightly)",
        description="Compare the container with the index table partition by partition, record verdicts in "
        "the table (the next sync re-uploads what is damaged), re-create rows for blobs that lost theirs, "
        "re-hash a rotating share of the blobs (--deep-budget), and write the report.",
    )
    p.add_argument(
        "--deep-budget",
        metavar="SIZE",
        default=os.environ.get(ENV_DEEP_BUDGET, "0"),
        help=f"bytes to download and re-hash this run, e.g. 500MB or 2GiB (env {ENV_DEEP_BUDGET}; default 0: "
        "metadata checks only; downloads may cost egress)",
    )
    p.add_argument(
        "--all-prefixes",
        action="store_true",
        help="verify every prefix that has rows in the table, not only this device's (--prefix)",
    )
    p.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="units verified in parallel (default 4 for 16 units of up to 10,000 rows each, 8 for 256 partitions)",
    )
    p.add_argument(
        "--reports-container",
        default=os.environ.get(ENV_REPORTS_CONTAINER, DEFAULT_REPORTS_CONTAINER),
        help=f"where the report is stored (env {ENV_REPORTS_CONTAINER}; default {DEFAULT_REPORTS_CONTAINER})",
    )
    p.add_argument(
        "--runs-table",
        default=os.environ.get(ENV_RUNS_TABLE, DEFAULT_RUNS_TABLE),
        help=f"table of run summaries (env {ENV_RUNS_TABLE}; default {DEFAULT_RUNS_TABLE})",
    )
    p.add_argument("--json", action="store_true", help="print the report document alone on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_workers is not None and not 1 <= args.max_workers <= 64:
        raise ConfigError("--max-workers must be between 1 and 64")
    budget = parse_size(args.deep_budget, what="--deep-budget")
    try:  # for the source id remembered there (it names the default prefix) and the library's size
        state: StateDB | None = StateDB(state_dir(args), readonly=True)
    except ConfigError:
        state = None
    local_blobs = 0
    try:
        cfg = storage_config(args, state)
        if state is not None:
            local_blobs = state.totals()[2]
    finally:
        if state is not None:
            state.close()
    settings = VerifySettings(
        cfg=cfg,
        deep_budget=budget,
        reports_container=args.reports_container,
        runs_table=args.runs_table,
        prefixes=(cfg.prefix,),
        discover=bool(args.all_prefixes),
    )
    v = Verifier(settings, pool_size=2 * (args.max_workers or 8) + 4)
    open_container(v.clients.blobs, cfg)  # one-line errors for a missing container or missing rights
    open_table(table_service(cfg), cfg)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    plan = v.plan()
    rows_hint = max(local_blobs, plan.get("previous_rows") or 0) or None
    digits = unit_digits(rows_hint)
    partitions = partitions_for(plan["prefixes"], digits=digits)
    workers = args.max_workers or (4 if digits == 1 else 8)  # big units: fewer at once bounds memory
    started = datetime.now(UTC).replace(microsecond=0)
    run_id = uuid.uuid4().hex[:12]
    if not args.json:
        err.print(
            f"verifying {len(plan['prefixes'])} prefix(es), "
            + (f"{len(partitions)} units of 16 partitions" if digits == 1 else f"{len(partitions)} partitions")
            + f" in {escape(cfg.describe())}"
            + (f"; deep-verifying up to {format_size(budget)}" if budget else "")
        )
    summary, problems = v.run_units(plan, partitions, run_id=run_id, started_at=iso(started), workers=workers)
    found = [p.to_dict() for p in problems]
    try:
        report = v.publish(run_id=run_id, started_at=iso(started), summary=summary, problems=found)
    except AzureError as exc:  # no rights on the reports container/runs table: still show the result
        err.print(f"[yellow]report not stored[/yellow]: {escape(_not_stored_reason(exc, args))}")
        report = v.report(run_id=run_id, started_at=iso(started), summary=summary, problems=found)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(Console(highlight=False, soft_wrap=True), report)
    return EXIT_OK if report_is_clean(report) else EXIT_PROBLEMS


def _not_stored_reason(exc: AzureError, args: argparse.Namespace) -> str:
    """Why the report was not stored, in one line. The agent's identity, as infra/ deploys it, may read
    the reports but not write them (they are the cloud's): then say what would let it, and that the
    verdicts themselves are in the index table."""
    if isinstance(exc, HttpResponseError) and exc.status_code == 403:
        return (
            f"this identity may not write verification reports (to store them from here, grant it 'Storage Blob "
            f"Data Contributor' on container {args.reports_container!r} and 'Storage Table Data Contributor' on "
            f"table {args.runs_table!r}); the verdicts are recorded in the index table"
        )
    return first_line(exc)


def tier_lines(report: Mapping[str, Any]) -> list[str]:
    """What tiering meant for the deep re-hash: rows it could not read, and what its reads cost."""
    lines = []
    if int(report.get("deep_archived") or 0):
        lines.append(f"{report['deep_archived']} blob(s) not deep-verifiable while archived (quick-verified)")
    cost = report.get("deep_read_cost") or {}
    if cost.get("amount"):
        amount = f"{cost['amount']:.2f} {cost.get('currency', '')}".strip()
        lines.append(f"deep re-hash read charges about {amount} ({cost['prices']})")
    elif cost.get("error"):
        lines.append(f"deep re-hash read charges unknown: {cost['error']}")
    return lines


def print_report(out: Console, report: dict) -> None:
    """A verification report for people (``status`` shows the latest one the same way)."""
    c = report["counts"]
    out.print(
        f"verification {report['run_id']} started {report['started_at']}: {report['rows']} row(s) in "
        f"{report['partitions']} partition(s); deep-verified {report['deep_verified']} blob(s), "
        f"{human_bytes(report['deep_bytes'])}"
    )
    out.print("  " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items()))
    for line in tier_lines(report):
        out.print("  " + escape(line))
    for p in report["problems"]:
        style = "green" if p["verdict"] == Verdict.ORPHAN_REPAIRED else "red"
        out.print(f"[{style}]{p['verdict']:<15}[/{style}] {escape(p['blob_name'])}: {escape(p['detail'])}")
    for e in report.get("errors", []):
        out.print(f"[red]error[/red] {escape(e)}")
    failed = int(report.get("partitions_failed") or 0)
    if failed or report.get("errors"):
        units = f"{failed} unit(s)" if failed else "some units"
        out.print(f"[red]verification incomplete[/red]: {units} not verified; they are checked again next run")
    if report_is_clean(report):
        out.print("everything verified" + (" (rows re-created for orphans)" if c.get(Verdict.ORPHAN_REPAIRED) else ""))
    elif any(c.get(v) for v in PROBLEM_VERDICTS):
        out.print("[red]problems found[/red]: the next sync re-uploads damaged blobs it still has locally")
