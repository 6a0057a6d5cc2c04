"""``azphotosync status``: is all well? Local index figures, the last sync, the Table mirror's lag, the
cloud's latest verification report and the rows it flagged for this device — and an exit code to match
(0 all well, 1 something needs attention, listed)."""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.core.exceptions import AzureError
from rich.console import Console
from rich.markup import escape

from sync_core.config import ENV_REPORTS_CONTAINER, StorageConfig
from sync_core.errors import ConfigError, first_line, redact
from sync_core.index.table_index import P_BLOB_NAME, P_RELPATH, P_VERIFY_DETAIL, P_VERIFY_STATUS
from sync_core.index.table_mirror import flagged_rows, open_table
from sync_core.local.exclude import ExcludeRules
from sync_core.local.state import StateDB
from sync_core.storage.clients import access_checked, blob_service, open_container, table_service
from sync_core.storage.listing import list_pages
from sync_core.storage.tiering import ENV_PRICES, TIERS, PriceTable, add_tier_bytes, estimate, merge_tier_bytes
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import ALWAYS_CHANGING_RUNS, always_changing
from sync_core.verify.reports import (
    DEFAULT_REPORTS_CONTAINER,
    read_latest_report,
    report_is_clean,
)
from sync_core.verify.verdicts import Verdict

from .console import describe_left_out, human_bytes
from .lock import live_holder
from .options import state_dir, storage_config

# What the last sync's exit code means (docs/CONTRACTS.md), as shown in "last sync ... (<state>)".
OUTCOMES = {0: "ok", 1: "problems", 2: "configuration error", 3: "locked out", 4: "crashed", 130: "interrupted"}
MAX_LISTED = 20  # flagged rows and failures shown one per line; the counts are always complete


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        parents=parents,
        help="show whether all is well: local index, last sync, mirror lag, cloud verification",
        description="Show the local index figures, the last sync (and its failures), the Table mirror's lag, "
        "the latest cloud verification report and the rows the cloud flagged for this device. Exit 0 when all "
        "is well, 1 when something needs attention (listed under 'attention').",
    )
    p.add_argument(
        "--source",
        metavar="DIR",
        help="also count files new or changed since the last sync (one stat per file, nothing is read)",
    )
    p.add_argument("--all-files", action="store_true", help="with --source: count every file, as sync --all-files")
    p.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="with --source: as sync --exclude (repeatable)"
    )
    p.add_argument("--local", action="store_true", help="local figures only: no request to Azure")
    p.add_argument(
        "--reports-container",
        default=os.environ.get(ENV_REPORTS_CONTAINER, DEFAULT_REPORTS_CONTAINER),
        help=f"where verification reports are stored (env {ENV_REPORTS_CONTAINER}; default "
        f"{DEFAULT_REPORTS_CONTAINER})",
    )
    p.add_argument(
        "--stale-days",
        type=float,
        default=3.0,
        help="flag a last sync or verification older than this many days (default 3)",
    )
    p.add_argument(
        "--tiers",
        action="store_true",
        help="list this device's prefix once now for its bytes per access tier (default: the figures the latest "
        "verification's listing recorded, which cost no request)",
    )
    p.add_argument(
        "--prices",
        metavar="FILE",
        help=f"price table for the monthly estimate (env {ENV_PRICES}; default: the built-in list prices)",
    )
    p.add_argument("--json", action="store_true", help="print the status as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.stale_days <= 0:
        raise ConfigError("--stale-days must be more than 0")
    if args.source and not Path(args.source).expanduser().is_dir():
        raise ConfigError(f"--source {args.source!r} is not a folder; point it at your library's root")
    args.price_table = None if args.local else PriceTable.load(args.prices)  # a bad file: one line, exit 2
    state = StateDB(state_dir(args), readonly=True)
    try:
        doc = gather(args, state)
    finally:
        state.close()
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        render(Console(highlight=False, soft_wrap=True), doc)
    return int(doc["exit_code"])


# -- gathering -------------------------------------------------------------------------------------------
def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age_days(iso_text: str | None, now: float) -> float | None:
    if not iso_text:
        return None
    try:
        when = datetime.fromisoformat(iso_text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (now - when.timestamp()) / 86400


def gather(args: argparse.Namespace, state: StateDB) -> dict[str, Any]:
    now = time.time()
    attention: list[str] = []
    files, size, blobs = state.totals()
    doc: dict[str, Any] = {
        "state_dir": str(state.state_dir),
        "source_id": state.get_meta("source_id"),
        "local": {
            "files": files,
            "bytes": size,
            "blobs": blobs,
            "mirror_pending": state.count_mirror_pending(),
        },
    }
    doc["last_sync"] = _last_sync(state, now, args.stale_days, attention)
    if args.source:
        rules = ExcludeRules(all_files=args.all_files, globs=tuple(args.exclude))
        doc["local"].update(_pending_uploads(Path(args.source).expanduser(), state, rules))
    if doc["local"]["mirror_pending"]:
        why = _mirror_reason(doc["last_sync"])
        doc["local"]["mirror_reason"] = why
        attention.append(
            f"{doc['local']['mirror_pending']} row(s) not yet in the Table index"
            + (f" ({why})" if why else "")
            + ": the cloud cannot verify them until they are mirrored (`azphotosync index mirror` or the next sync)"
        )
    if not args.local:
        doc.update(_cloud(args, state, now, attention))
    doc["attention"] = attention
    doc["exit_code"] = 1 if attention else 0
    return doc


def _last_sync(state: StateDB, now: float, stale_days: float, attention: list[str]) -> dict[str, Any] | None:
    row = state.last_run("sync")
    if row is None:
        attention.append("no sync has run with this state dir yet")
        return None
    started, finished, code, summary_json = row
    try:
        summary = json.loads(summary_json) if summary_json else {}
    except ValueError:
        summary = {}
    failures = summary.get("failures", []) if isinstance(summary, dict) else []
    # Rows written before messages were redacted may still hold a secret: never show it again.
    failures = [{k: redact(str(v)) for k, v in f.items()} for f in failures if isinstance(f, dict)]
    info: dict[str, Any] = {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "exit_code": code,
        "uploaded": summary.get("uploaded", 0),
        "failed": summary.get("failed", 0),
        "skipped": summary.get("skipped", 0),
        "left_out": summary.get("left_out", {}),
        "failures": failures[:MAX_LISTED],
        "problems": summary.get("problems", 0),
        "index_unavailable": summary.get("index_unavailable", ""),
        "mirror_error": summary.get("mirror_error", ""),
    }
    if finished is None:
        holder = live_holder(state.state_dir, "sync")
        info["state"] = "running" if holder else "did not finish"
        if not holder:
            attention.append(
                f"the last sync (started {info['started_at']}) did not finish: it was killed or the machine "
                "stopped; the next sync resumes"
            )
    else:
        info["state"] = OUTCOMES.get(code, "problems") if code is not None else "problems"
    if info["failed"]:
        attention.append(f"the last sync ({info['finished_at']}) failed {info['failed']} file(s); retried next sync")
    elif code not in (0, None):
        attention.append(f"the last sync ({info['finished_at']}) ended with exit code {code} ({info['state']})")
    changing = _always_changing(state, running=info["state"] == "running")
    if changing:
        info["always_changing"] = changing[:MAX_LISTED]
        attention.append(
            f"{len(changing)} file(s) changed while being read in each of the last {ALWAYS_CHANGING_RUNS} syncs "
            f"and are not backed up: {', '.join(changing[:5])}{', …' if len(changing) > 5 else ''}"
        )
    days = (now - started) / 86400
    if info["state"] == "running":
        info["running_hours"] = round(days * 24, 1)
        if days > stale_days:  # long for a daily run; a first backup of a large library over a slow link may be
            attention.append(
                f"a sync has been running for {days * 24:.0f} hours (since {info['started_at']}): a first backup "
                "of a large library can take that long; if its progress has stopped, stop it (the next run resumes)"
            )
    elif days > stale_days:
        attention.append(f"no sync since {info['started_at']}: is the timer running?")
    return info


def _mirror_reason(last_sync: dict[str, Any] | None) -> str:
    """Why rows wait for the Table, as the last sync saw it (empty when it did not say)."""
    if not last_sync:
        return ""
    return str(last_sync.get("index_unavailable") or last_sync.get("mirror_error") or "")


def _always_changing(state: StateDB, *, running: bool) -> list[str]:
    rows = state.recent_summaries("sync", ALWAYS_CHANGING_RUNS + 1)[1 if running else 0 :]
    docs: list[dict[str, Any]] = []
    for text in rows:
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}
        docs.append(doc if isinstance(doc, dict) else {})
    return always_changing(docs)


def _pending_uploads(source: Path, state: StateDB, rules: ExcludeRules) -> dict[str, Any]:
    """New or changed files by the planner's stat comparison (a dry run: nothing is read or sent)."""
    summary = SyncEngine(None, state, None, SyncOptions(source=source, dry_run=True, rules=rules)).run()
    return {"pending_files": summary.would_upload, "pending_bytes": summary.would_upload_bytes}


def _cloud(args: argparse.Namespace, state: StateDB, now: float, attention: list[str]) -> dict[str, Any]:
    """Three independent checks, each with its own one-line error: the data container, the latest
    verification report, the flagged rows. A refused check (an identity without that role) says what to
    grant and leaves the others to report."""
    out: dict[str, Any] = {"verification": None, "flagged": None, "cloud_error": None}
    try:
        cfg = storage_config(args, state)
    except ConfigError as exc:
        out["cloud_error"] = f"cloud checks skipped: {exc}"
        return out
    out.update({"prefix": cfg.prefix, "container": cfg.container, "table": cfg.table})
    out["source_id"] = cfg.source_id  # the effective one (flag, env, remembered or host name)
    service = blob_service(cfg, pool_size=4)
    try:
        open_container(service, cfg)
    except ConfigError as exc:
        out["cloud_error"] = first_line(exc)
        attention.append(f"cloud checks failed: {out['cloud_error']}")
        if "authentication failed" in out["cloud_error"] or "cannot reach" in out["cloud_error"]:
            return out  # the other checks would only say the same again
    out["verification_error"] = out["flagged_error"] = None
    try:
        out["verification"] = _verification(service, args.reports_container, now, args.stale_days, attention)
    except (ConfigError, AzureError, ValueError) as exc:
        out["verification_error"] = first_line(exc)
        attention.append(out["verification_error"])
    out["tiers"] = _tiers(args, cfg, service, out["verification"])
    try:
        out["flagged"] = _flagged(cfg, attention)
    except (ConfigError, AzureError, ValueError) as exc:
        out["flagged_error"] = f"cannot read the rows the cloud flagged: {first_line(exc)}"
        attention.append(out["flagged_error"])
    return out


def _verification(
    service: Any, reports_container: str, now: float, stale_days: float, attention: list[str]
) -> dict[str, Any] | None:
    with access_checked(
        service.url,
        what=f"verification reports in container {reports_container!r}",
        missing=f"no verification reports container {reports_container!r}",
        denied=f"cannot read verification reports: grant this identity 'Storage Blob Data Reader' on container "
        f"{reports_container!r}",
    ):
        report = read_latest_report(service, reports_container)
    if report is None:
        return None
    counts = {k: int(v) for k, v in (report.get("counts") or {}).items()}
    clean = report_is_clean(report)
    info = {
        "run_id": report.get("run_id"),
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "rows": report.get("rows"),
        "deep_verified": report.get("deep_verified"),
        "deep_archived": int(report.get("deep_archived") or 0),  # quick-verified, not re-hashed while archived
        "tier_bytes": {k: dict(v) for k, v in (report.get("tier_bytes") or {}).items()},
        "counts": counts,
        "problems": len(report.get("problems") or []),
        "errors": [redact(str(e)) for e in report.get("errors") or []],
        "clean": clean,
    }
    info["partitions_failed"] = int(report.get("partitions_failed") or 0)
    bad = {k: v for k, v in counts.items() if v and k not in (Verdict.OK, Verdict.ORPHAN_REPAIRED)}
    if bad:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))
        attention.append(f"the latest cloud verification ({info['finished_at']}) found problems: {detail}")
    if info["partitions_failed"] or info["errors"]:
        units = f"{info['partitions_failed']} unit(s)" if info["partitions_failed"] else "some units"
        detail = "; ".join(info["errors"])[:200]
        attention.append(
            f"the latest cloud verification ({info['finished_at']}) is incomplete: {units} not verified ({detail})"
        )
    age = _age_days(info["finished_at"] or info["started_at"], now)
    if age is not None and age > stale_days:
        attention.append(f"no cloud verification since {info['finished_at']}: is the Function App's timer running?")
    return info


def _tiers(args: argparse.Namespace, cfg: StorageConfig, service: Any, verification: dict[str, Any] | None) -> dict:
    """Bytes per access tier under this device's prefix and their monthly cost: from the latest verification's
    listing (no request), or from one listing of the prefix now with ``--tiers``."""
    out: dict[str, Any] = {"source": None, "as_of": None, "bytes_by_tier": {}, "estimate": None, "error": None}
    by_tier: dict[str, int] = {}
    if getattr(args, "tiers", False):
        try:
            with access_checked(
                service.url,
                what=f"blobs in container {cfg.container!r}",
                missing=f"no container {cfg.container!r}",
                denied=f"cannot list container {cfg.container!r}: grant this identity 'Storage Blob Data Reader'",
            ):
                container = service.get_container_client(cfg.container)
                for page in list_pages(container, cfg.prefix + "/", metadata=False):
                    add_tier_bytes(by_tier, page)
        except (ConfigError, AzureError) as exc:
            out["error"] = f"cannot list the prefix for its tiers: {first_line(exc)}"
            return out
        out.update(source="listing", as_of=_iso(time.time()))
    elif verification and cfg.prefix in verification.get("tier_bytes", {}):
        merge_tier_bytes(by_tier, verification["tier_bytes"][cfg.prefix])
        out.update(source="verification", as_of=verification.get("finished_at"))
    else:
        return out  # no figures yet: said, not a problem
    out["bytes_by_tier"] = {t: by_tier[t] for t in TIERS if by_tier.get(t)}
    out["estimate"] = estimate(by_tier, getattr(args, "price_table", None) or PriceTable.load()).to_dict()
    return out


def _flagged(cfg: StorageConfig, attention: list[str]) -> dict[str, Any]:
    table = open_table(table_service(cfg, pool_size=4), cfg)
    rows = flagged_rows(table, cfg.prefix, cfg.source_id)
    listed = [
        {
            "path": r.get(P_RELPATH),
            "verdict": r.get(P_VERIFY_STATUS),
            "detail": r.get(P_VERIFY_DETAIL) or "",
            "blob_name": r.get(P_BLOB_NAME),
        }
        for r in rows[:MAX_LISTED]
    ]
    if rows:
        attention.append(f"{len(rows)} blob(s) flagged by the cloud as damaged: the next sync re-uploads them")
    return {"count": len(rows), "rows": listed}


# -- rendering -----------------------------------------------------------------------------------------
def _render_tiers(console: Console, t: dict[str, Any] | None) -> None:
    if t is None:
        return
    if t.get("error"):
        console.print(f"  tiers     [red]{escape(t['error'])}[/red]")
        return
    if not t.get("estimate"):
        console.print("  tiers     not known until a verification lists the prefix (or `status --tiers`)")
        return
    est = t["estimate"]
    where = "a listing now" if t["source"] == "listing" else f"the verification of {t['as_of']}"
    parts = "  ".join(f"{tier} {human_bytes(n)}" for tier, n in t["bytes_by_tier"].items())
    console.print(f"  tiers     {parts or 'nothing stored'} (from {where})")
    cur = est["currency"]
    console.print(
        f"  cost      about {est['monthly_total']:.2f} {cur} a month (all Hot: {est['monthly_if_all_hot']:.2f} "
        f"{cur}); reading it all once about {est['read_all_once']:.2f} {cur}"
    )
    console.print(f"            {escape(est['prices'])}")


def render(console: Console, doc: dict[str, Any]) -> None:
    loc = doc["local"]
    who = doc.get("source_id") or "(not set yet)"
    console.print(f"[bold]azphotosync status[/bold]  source id {escape(str(who))}  state {escape(doc['state_dir'])}")
    if doc.get("container"):
        console.print(
            f"  archive   container {escape(doc['container'])}, prefix {escape(doc['prefix'])}, "
            f"table {escape(doc['table'])}"
        )
    console.print(
        f"  local     {loc['files']} file(s), {human_bytes(loc['bytes'])} backed up; "
        f"{loc['blobs']} blob(s) incl. past versions"
    )
    if "pending_files" in loc:
        console.print(f"  pending   {loc['pending_files']} file(s), {human_bytes(loc['pending_bytes'])} new or changed")
    why = f" ({escape(loc['mirror_reason'])})" if loc.get("mirror_reason") else ""
    console.print(f"  mirror    {loc['mirror_pending']} row(s) waiting for the Table index{why}")
    last = doc["last_sync"]
    if last is None:
        console.print("  last sync never")
    else:
        console.print(
            f"  last sync {last['started_at']} ({last['state']}): uploaded {last['uploaded']}, "
            f"failed {last['failed']}, skipped {last['skipped']}"
        )
        if last["left_out"]:
            console.print(f"            left out {escape(describe_left_out(last['left_out']))}")
        for f in last["failures"]:
            console.print(f"            [red]failed[/red] {escape(str(f.get('path')))}: {escape(str(f.get('error')))}")
    if doc.get("cloud_error"):
        console.print(f"  cloud     {escape(doc['cloud_error'])}")
    if "verification_error" in doc:  # the cloud was reached
        v = doc["verification"]
        if doc.get("verification_error"):
            console.print(f"  verified  [red]{escape(doc['verification_error'])}[/red]")
        elif v is None:
            console.print("  verified  no cloud verification report yet (deploy infra/ or run `azphotosync verify`)")
        else:
            counts = "  ".join(f"{k} {n}" for k, n in v["counts"].items() if n)
            console.print(f"  verified  {v['finished_at']}: {v['rows']} row(s); {counts or 'nothing checked'}")
            if v.get("deep_archived"):
                console.print(f"            {v['deep_archived']} blob(s) not deep-verifiable while archived")
            if v.get("partitions_failed") or v.get("errors"):
                units = v.get("partitions_failed") or "some"
                console.print(f"            [red]incomplete[/red]: {units} unit(s) not verified")
        _render_tiers(console, doc.get("tiers"))
        fl = doc.get("flagged")
        if doc.get("flagged_error"):
            console.print(f"  flagged   [red]{escape(doc['flagged_error'])}[/red]")
        elif fl is not None:
            console.print(f"  flagged   {fl['count']} row(s) of this source id")
            for r in fl["rows"]:
                console.print(f"            [red]{escape(str(r['verdict']))}[/red] {escape(str(r['path']))}")
    if doc["attention"]:
        console.print("[bold red]attention[/bold red]")
        for line in doc["attention"]:
            console.print(f"  - {escape(line)}")
    else:
        console.print("[bold green]all well[/bold green]")
