"""``azphotosync [sync]``: back up a library (the default command, so the seed's command lines work)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from sync_core.clients import table_service
from sync_core.errors import ConfigError
from sync_core.exclude import ExcludeRules
from sync_core.pipeline import SyncEngine, SyncOptions
from sync_core.state import StateDB
from sync_core.table_mirror import open_table_if_usable

from .console import ConsoleProgress, print_summary
from .lock import StateLock
from .options import open_storage, rate_arg, state_dir, storage_config


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sync",
        parents=parents,
        help="back up new and changed files (default command)",
        description="Scan SOURCE, upload new and changed media, record them in the local index.",
    )
    p.add_argument("--source", required=True, help="root folder of the photo/video library")
    p.add_argument("--dry-run", action="store_true", help="show what would be uploaded; write nothing anywhere")
    p.add_argument("--max-workers", type=int, default=8, help="files processed in parallel (default 8)")
    p.add_argument(
        "--create-container",
        action="store_true",
        help="create the container and the index table if they do not exist",
    )
    p.add_argument("--all-files", action="store_true", help="back up every file, not only photos and videos")
    p.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="skip paths or names matching GLOB (repeatable)"
    )
    p.add_argument(
        "--allow-empty-source",
        action="store_true",
        help="accept an empty source although the index lists files (marks them deleted)",
    )
    p.add_argument(
        "--bwlimit", type=rate_arg, metavar="RATE", help="cap upload bandwidth, e.g. 5MB or 2MiB (per second)"
    )
    p.add_argument("--json", action="store_true", help="print the end summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A real run holds the state-dir lock from before the index opens until after it closes."""
    if args.dry_run:
        return _run(args)
    with StateLock(state_dir(args), "sync"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    if args.max_workers < 1 or args.max_workers > 64:
        raise ConfigError("--max-workers must be between 1 and 64")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    source = Path(args.source).expanduser()
    opts = SyncOptions(
        source=source,
        dry_run=args.dry_run,
        max_workers=args.max_workers,
        rules=ExcludeRules(all_files=args.all_files, globs=tuple(args.exclude)),
        allow_empty_source=args.allow_empty_source,
        bwlimit=args.bwlimit,
    )
    if not source.is_dir():  # fail fast, before touching storage or the state dir
        what = "does not exist" if not source.exists() else "is not a folder"
        raise ConfigError(f"source {str(source)!r} {what}; point --source at your library's root folder")
    if args.dry_run:
        state = StateDB(state_dir(args), readonly=True)
        cfg = storage_config(args, state) if _storage_configured(args) else None
        engine = SyncEngine(cfg, state, None, opts)
        where = cfg.describe() if cfg else "(storage not configured)"
    else:
        state = StateDB(state_dir(args))
        storage = open_storage(args, state=state, create=args.create_container, pool_size=2 * args.max_workers + 4)
        create_table = args.create_container or args.emulator
        table, why = open_table_if_usable(table_service(storage.cfg), storage.cfg, create=create_table)
        engine = SyncEngine(storage.cfg, state, storage.container, opts, table=table, table_unavailable=why)
        where = storage.cfg.describe()
    run_id = None if args.dry_run else state.start_run("sync")
    try:
        with ConsoleProgress(err, verbose=args.verbose) as progress:
            engine.progress = progress
            summary = engine.run()
    finally:
        if run_id is not None:
            s = engine.summary
            state.finish_run(run_id, s.exit_code, json.dumps(s.to_dict()))
        state.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(out, summary, where)
    return summary.exit_code


def _storage_configured(args: argparse.Namespace) -> bool:
    import os

    from sync_core.config import ENV_ACCOUNT_URL, ENV_CONNECTION_STRING

    return bool(
        args.emulator
        or args.account_url
        or args.connection_string
        or os.environ.get(ENV_ACCOUNT_URL)
        or os.environ.get(ENV_CONNECTION_STRING)
    )
