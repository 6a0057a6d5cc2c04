"""AzPhotoSync in the cloud: verification, renditions and the gallery (Azure Functions v2, Durable Functions).

    timer (VERIFY_SCHEDULE) ──> singleton start ──> verify_orchestrator
        plan_verification                 prefixes to verify, deep-verify reference
        verify_prefix (one per prefix)    sub-orchestration: 256 partitions in batches of BATCH
            verify_partition              listing ⨝ partition query, verdicts, orphan repair, deep share
        publish_report                    report JSON, latest.json, runs-table row

    timer (THUMBNAILS_SCHEDULE) ──> singleton start ──> thumbnails_orchestrator
        plan_thumbnails                   prefixes to cover (creates the thumbnails container if missing)
        thumbnails_prefix (one per prefix) sub-orchestration: 256 partitions in batches of BATCH
            thumbnail_partition           the missing renditions of one partition, facts into its rows
            refresh_catalog               then the gallery's catalog of the prefix (sync_core.derived.catalog)

    gallery (HTTP, every path)  ──> the same ASGI app as `azphotosync gallery` (package ``gallery``), behind
        App Service authentication (Entra ID, infra/): the app itself answers 401 without a principal and
        403 for one not in GALLERY_ALLOWED_PRINCIPALS; share links (/s/...) are excluded from the sign-in.

Bindings only: every step is a call into :mod:`sync_core.verify.run`, :mod:`sync_core.derived.thumbnail_run`
or the ``gallery`` app. Between functions travel ids and counts, never row lists (each partition's problems
wait in staging blobs until the report step; failed renditions are in their rows).
Orchestrators are deterministic: no I/O, clock or randomness outside the context.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Generator, Sequence
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from sync_core.config import (
    ENV_DEEP_BUDGET,
    ENV_PREFIXES,
    ENV_REPORTS_CONTAINER,
    ENV_RUNS_TABLE,
    STORAGE_ENV,
    thumbnails_container_name,
)
from sync_core.derived.thumbnail_run import Thumbnailer, ThumbnailSettings
from sync_core.derived.thumbnail_run import merge_summaries as merge_thumbnail_summaries
from sync_core.errors import first_line
from sync_core.verify.partition import partitions_for
from sync_core.verify.run import Verifier, VerifySettings, outcome
from sync_core.verify.summary import (
    Job,
    Plan,
    Summary,
    failed_summary,
    merge_summaries,
    run_job,
    run_summary,
    unit_job,
)

INSTANCE_ID = "azphotosync-verify"  # fixed: at most one verification runs at a time
ORCHESTRATOR = "verify_orchestrator"
PREFIX_ORCHESTRATOR = "verify_prefix"
THUMBNAILS_INSTANCE_ID = "azphotosync-thumbnails"  # fixed: at most one renditions run at a time
THUMBNAILS_ORCHESTRATOR = "thumbnails_orchestrator"
THUMBNAILS_PREFIX_ORCHESTRATOR = "thumbnails_prefix"
BATCH = 32  # partitions in flight per prefix (host.json bounds activities per instance as well)
PREFIX_FANOUT = 4  # prefixes (sub-orchestrations) in flight
ERROR_CHARS = 300  # an error line kept in an orchestration's state: one line, bounded
ACTIVITY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=15_000, max_number_of_attempts=3)
ACTIVE = {
    df.OrchestrationRuntimeStatus.Running,
    df.OrchestrationRuntimeStatus.Pending,
    df.OrchestrationRuntimeStatus.ContinuedAsNew,
    df.OrchestrationRuntimeStatus.Suspended,
}

log = logging.getLogger("azphotosync.verify")
app = df.DFApp()


# -- starter ------------------------------------------------------------------------------------------------
@app.timer_trigger(schedule="%VERIFY_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.durable_client_input(client_name="client")
async def verify_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await start_singleton(client, past_due=timer.past_due)


@app.timer_trigger(schedule="%THUMBNAILS_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
@app.durable_client_input(client_name="client")
async def thumbnails_timer(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await start_singleton(
        client,
        past_due=timer.past_due,
        instance_id=THUMBNAILS_INSTANCE_ID,
        orchestrator=THUMBNAILS_ORCHESTRATOR,
        what="thumbnails",
    )


async def start_singleton(
    client: df.DurableOrchestrationClient,
    *,
    past_due: bool = False,
    instance_id: str = INSTANCE_ID,
    orchestrator: str = ORCHESTRATOR,
    what: str = "verification",
) -> str | None:
    """Start ``orchestrator`` under its fixed instance id unless one is still running; returns the
    instance id when started, ``None`` when skipped."""
    if past_due:
        log.warning("%s timer is past due (the app was down or busy at the scheduled time); running now", what)
    status = await client.get_status(instance_id)
    if status is not None and status.runtime_status in ACTIVE:
        log.info("%s %s is still %s; not starting another", what, instance_id, status.runtime_status.value)
        return None
    started = await client.start_new(orchestrator, instance_id=instance_id, client_input={})
    log.info("%s %s started", what, started)
    return started


# -- orchestrators --------------------------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def verify_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    run_id = str((context.get_input() or {}).get("run_id") or context.new_uuid())
    started_at = context.current_utc_datetime.strftime("%Y-%m-%dT%H:%M:%SZ")
    plan: Plan = yield context.call_activity_with_retry("plan_verification", ACTIVITY_RETRY, {"run_id": run_id})
    prefixes = plan["prefixes"]
    job = run_job(plan, run_id=run_id, started_at=started_at, partitions_total=256 * len(prefixes))
    summaries: list[Summary] = []
    for i in range(0, len(prefixes), PREFIX_FANOUT):
        group = prefixes[i : i + PREFIX_FANOUT]
        tasks = [
            context.call_sub_orchestrator_with_retry(
                PREFIX_ORCHESTRATOR, ACTIVITY_RETRY, {**job, "prefix": p}, instance_id=f"{run_id}-p{i + k}"
            )
            for k, p in enumerate(group)
        ]
        try:
            summaries.extend((yield context.task_all(tasks)))
        except Exception as exc:  # a prefix failed after its retries: report it (never as verified), keep the rest
            error = first_line(exc, limit=ERROR_CHARS)
            summaries.append(failed_summary(f"prefixes {', '.join(group)}", error, 256 * len(group)))
    summary = run_summary(plan, summaries)
    result = yield context.call_activity_with_retry(
        "publish_report", ACTIVITY_RETRY, {"run_id": run_id, "started_at": started_at, "summary": summary}
    )
    return result


@app.orchestration_trigger(context_name="context", orchestration=PREFIX_ORCHESTRATOR)
def verify_prefix(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Summary]:
    """One prefix's 256 partitions, BATCH at a time; a batch that fails after retries is reported."""
    job = context.get_input()
    partitions = partitions_for([job["prefix"]])
    summaries: list[Summary] = []
    for i in range(0, len(partitions), BATCH):
        batch = partitions[i : i + BATCH]
        tasks = [
            context.call_activity_with_retry("verify_partition", ACTIVITY_RETRY, unit_job(job, p))
            for p in batch
        ]
        try:
            summaries.extend((yield context.task_all(tasks)))
        except Exception as exc:
            error = first_line(exc, limit=ERROR_CHARS)
            summaries.append(failed_summary(f"partitions {batch[0]} … {batch[-1]}", error, len(batch)))
    return merge_summaries(summaries)


@app.orchestration_trigger(context_name="context", orchestration=THUMBNAILS_ORCHESTRATOR)
def thumbnails_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Renditions for every prefix: PREFIX_FANOUT sub-orchestrations at a time; a failed one is reported."""
    run_id = str((context.get_input() or {}).get("run_id") or context.new_uuid())
    plan = yield context.call_activity_with_retry("plan_thumbnails", ACTIVITY_RETRY, {"run_id": run_id})
    prefixes: list[str] = plan["prefixes"]

    def prefix_task(n: int, prefix: str) -> Any:
        job = {"run_id": run_id, "prefix": prefix}
        return context.call_sub_orchestrator_with_retry(
            THUMBNAILS_PREFIX_ORCHESTRATOR, ACTIVITY_RETRY, job, instance_id=f"{run_id}-t{n}"
        )

    summaries, errors = yield from _in_groups(
        context, prefixes, PREFIX_FANOUT, prefix_task, lambda g: f"prefixes {', '.join(g)}"
    )
    summary = merge_thumbnail_summaries(summaries)
    summary.update(run_id=run_id, prefixes=prefixes, errors=summary["errors"] + errors)
    return summary


@app.orchestration_trigger(context_name="context", orchestration=THUMBNAILS_PREFIX_ORCHESTRATOR)
def thumbnails_prefix(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """One prefix's 256 partitions, BATCH at a time; a batch that fails after retries is reported."""
    job = context.get_input()

    def partition_task(_: int, partition: str) -> Any:
        return context.call_activity_with_retry(
            "thumbnail_partition", ACTIVITY_RETRY, {"run_id": job["run_id"], "partition": partition}
        )

    summaries, errors = yield from _in_groups(
        context, partitions_for([job["prefix"]]), BATCH, partition_task, lambda b: f"partitions {b[0]} … {b[-1]}"
    )
    try:  # last: the gallery's catalog of this prefix with what the partitions recorded
        yield context.call_activity_with_retry(
            "refresh_catalog", ACTIVITY_RETRY, {"run_id": job["run_id"], "prefix": job["prefix"]}
        )
    except Exception as exc:
        errors.append(f"catalog of {job['prefix']}: {first_line(exc, limit=ERROR_CHARS)}")
    summary = merge_thumbnail_summaries(summaries)
    summary["errors"] = summary["errors"] + errors
    return summary


def _in_groups(
    context: df.DurableOrchestrationContext,
    items: Sequence[str],
    size: int,
    task: Callable[[int, str], Any],
    describe: Callable[[Sequence[str]], str],
) -> Generator[Any, Any, tuple[list[Any], list[str]]]:
    """``task(n, item)`` for every item, ``size`` in flight at a time (``yield from`` it in an orchestrator).
    A group that fails after its retries is reported by ``describe(group)`` and the others go on."""
    results: list[Any] = []
    errors: list[str] = []
    for i in range(0, len(items), size):
        group = items[i : i + size]
        try:
            results.extend((yield context.task_all([task(i + k, item) for k, item in enumerate(group)])))
        except Exception as exc:
            errors.append(f"{describe(group)}: {first_line(exc, limit=ERROR_CHARS)}")
    return results, errors


# -- activities (thin: sync_core does the work) --------------------------------------------------------------
@functools.cache
def _verifier(_settings_key: tuple[str, ...]) -> Verifier:
    return Verifier(VerifySettings.from_env())


def verifier() -> Verifier:
    """One set of clients per worker process (and per settings, which only change in tests)."""
    keys = (*STORAGE_ENV, ENV_DEEP_BUDGET, ENV_REPORTS_CONTAINER, ENV_RUNS_TABLE, ENV_PREFIXES)
    return _verifier(tuple(os.environ.get(k, "") for k in keys))


@app.activity_trigger(input_name="job", activity="plan_verification")
def plan_verification(job: dict[str, Any]) -> Plan:
    return verifier().plan()


@app.activity_trigger(input_name="job", activity="verify_partition")
def verify_partition(job: Job) -> Summary:
    summary, _ = verifier().verify_unit(job, stage=True)
    return summary


@app.activity_trigger(input_name="job", activity="publish_report")
def publish_report(job: dict[str, Any]) -> dict[str, Any]:
    report = verifier().publish(run_id=job["run_id"], started_at=job["started_at"], summary=job["summary"])
    return outcome(report)


@functools.cache
def _thumbnailer(_settings_key: tuple[str, ...]) -> Thumbnailer:
    return Thumbnailer(ThumbnailSettings.from_env())


def thumbnailer() -> Thumbnailer:
    """One set of clients per worker process (and per settings, which only change in tests)."""
    keys = ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_CONTAINER",
            "AZURE_STORAGE_TABLE", "AZURE_STORAGE_TABLE_ENDPOINT", "AZURE_STORAGE_THUMBNAILS_CONTAINER",
            "THUMBNAILS_UNIT_SECONDS", "THUMBNAILS_DECODE_SLOTS", "VERIFY_PREFIXES")  # fmt: skip
    return _thumbnailer(tuple(os.environ.get(k, "") for k in keys))


@app.activity_trigger(input_name="job", activity="plan_thumbnails")
def plan_thumbnails(job: dict[str, Any]) -> dict[str, Any]:
    return thumbnailer().plan()


@app.activity_trigger(input_name="job", activity="thumbnail_partition")
def thumbnail_partition(job: dict[str, Any]) -> dict[str, Any]:
    """Counts only: the failures' reasons are in the rows, not in the orchestration's history."""
    summary, _ = thumbnailer().partition(job["partition"])
    summary.pop("failures", None)
    return summary


@app.activity_trigger(input_name="job", activity="refresh_catalog")
def refresh_catalog(job: dict[str, Any]) -> dict[str, Any]:
    return thumbnailer().refresh_catalog(job["prefix"])


# -- gallery (HTTP) ------------------------------------------------------------------------------------------
@functools.cache
def _gallery(_settings_key: tuple[str, ...]) -> func.AsgiMiddleware:
    from gallery.app import create_app
    from gallery.auth import CloudAuth
    from sync_core.config import ENV_PREFIX, resolve_storage_config
    from sync_core.errors import ConfigError
    from sync_core.storage.clients import blob_service, table_service

    prefix = os.environ.get("GALLERY_PREFIX") or os.environ.get(ENV_PREFIX)
    if not prefix:  # the cloud has no source id of its own to default from
        raise ConfigError("set GALLERY_PREFIX to the library prefix the gallery shows, e.g. photos/laptop")
    cfg = resolve_storage_config(prefix=prefix, source_id="cloud")
    blobs = blob_service(cfg)
    app_ = create_app(
        table=table_service(cfg).get_table_client(cfg.table),
        data=blobs.get_container_client(cfg.container),
        thumbnails=blobs.get_container_client(thumbnails_container_name()),
        prefix=cfg.prefix,
        auth=CloudAuth(),
    )
    return func.AsgiMiddleware(app_)


def gallery_app() -> func.AsgiMiddleware:
    """One ASGI app (and set of clients) per worker process, and per settings, which only change in tests."""
    keys = ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_CONTAINER",
            "AZURE_STORAGE_TABLE", "AZURE_STORAGE_TABLE_ENDPOINT", "AZURE_STORAGE_THUMBNAILS_CONTAINER",
            "AZPHOTOSYNC_PREFIX", "GALLERY_PREFIX", "GALLERY_ALLOWED_PRINCIPALS")  # fmt: skip
    return _gallery(tuple(os.environ.get(k, "") for k in keys))


# Anonymous at the Functions level on purpose: App Service authentication in front of the app signs users in
# (a function key would be a shared secret in a browser); the app checks the principal on every request.
@app.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS, methods=["GET", "HEAD", "POST"])
async def gallery(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await gallery_app().handle_async(req, context)
