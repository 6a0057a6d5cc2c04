"""``azphotosync thumbnails``: the cloud's renditions run, here — same sync_core steps, same partitions
(a thread pool instead of Durable activities), same facts in the index."""

from __future__ import annotations

import argparse
import json

from azure.core.exceptions import AzureError
from rich.console import Console
from rich.markup import escape

from sync_core.derived.thumbnail_run import (
    Thumbnailer,
    ThumbnailSettings,
    run_all,
)
from sync_core.errors import ConfigError, first_line
from sync_core.index.table_mirror import open_table
from sync_core.local.state import StateDB
from sync_core.storage.clients import open_container, table_service
from sync_core.verify.partition import partitions_for

from .gallery_cmd import thumbnails_option
from .options import state_dir, storage_config

EXIT_OK, EXIT_FAILED = 0, 1


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "thumbnails",
        parents=parents,
        help="make the missing thumbnails (WebP renditions) and record sizes in the index table",
        description="For every photo and video in the index table, make the two WebP renditions it lacks "
        "(320 and 1600 px, no metadata) in the thumbnails container and record the pixel size, a video's "
        "duration and the outcome in its row. Files that cannot be decoded are recorded with the reason and "
        "not tried again unless --force. What the cloud does on THUMBNAILS_SCHEDULE.",
    )
    thumbnails_option(p)
    p.add_argument("--all-prefixes", action="store_true", help="every prefix in the index, not only this device's")
    p.add_argument("--force", action="store_true", help="look again at files already done, retrying failed ones")
    p.add_argument("--max-workers", type=int, default=2, help="partitions worked on in parallel (default 2)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON alone on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.max_workers <= 32:
        raise ConfigError("--max-workers must be between 1 and 32")
    try:  # for the source id remembered there (it names the default prefix)
        state: StateDB | None = StateDB(state_dir(args), readonly=True)
    except ConfigError:
        state = None
    try:
        cfg = storage_config(args, state)
    finally:
        if state is not None:
            state.close()
    settings = ThumbnailSettings(
        cfg=cfg,
        container=args.thumbnails_container,
        prefixes=(cfg.prefix,),
        discover=bool(args.all_prefixes),
        force=bool(args.force),
        decode_slots=args.max_workers,
    )
    t = Thumbnailer(settings, pool_size=2 * args.max_workers + 4)
    open_container(t.clients.blobs, cfg)  # one-line errors for a missing container or missing rights
    open_table(table_service(cfg), cfg)
    plan = t.plan()
    partitions = partitions_for(plan["prefixes"])
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not args.json:
        err.print(f"making renditions for {len(plan['prefixes'])} prefix(es) into {escape(settings.container)}")
    summary, failures = run_all(t, partitions, workers=args.max_workers)
    for prefix in plan["prefixes"]:  # the gallery's catalog shows what this run made
        try:
            t.refresh_catalog(prefix)
        except AzureError as exc:
            summary["errors"].append(f"catalog of {prefix}: {first_line(exc)}")
    summary["failures"] = failures
    summary["container"] = settings.container
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        out = Console(highlight=False, soft_wrap=True)
        c = summary["counts"]
        out.print(f"{summary['rows']} row(s) in {summary['partitions']} partition(s)")
        out.print("  " + "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items()))
        for f in failures:
            out.print(f"[red]failed[/red] {escape(f['blob_name'])}: {escape(f['reason'])}")
        for e in summary["errors"]:
            out.print(f"[red]error[/red] {escape(e)}")
    return EXIT_FAILED if failures or summary["errors"] else EXIT_OK
