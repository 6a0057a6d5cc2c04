"""``azphotosync [sync]``: back up a library (the default command, so the seed's command lines work)."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient
from rich.console import Console
from rich.markup import escape

from sync_core.errors import ConfigError
from sync_core.index.table_mirror import open_table_if_usable
from sync_core.local.exclude import ExcludeRules
from sync_core.local.state import DB_NAME, BlobRow, StateDB, damaged_error, is_damage, read_meta
from sync_core.storage.clients import table_service
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import ALWAYS_CHANGING_RUNS, RunSummary, always_changing

from .cli import EXIT_INTERNAL, exit_code_for
from .console import ConsoleProgress, print_summary
from .lock import StateLock
from .options import open_storage, rate_arg, remember_source_id, state_dir, storage_config


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
        "--source-moved",
        action="store_true",
        help="the library moved to SOURCE: bind the state dir (which remembers its library) to the new path",
    )
    p.add_argument(
        "--bwlimit", type=rate_arg, metavar="RATE", help="cap upload bandwidth, e.g. 5MB or 2MiB (per second)"
    )
    p.add_argument("--json", action="store_true", help="print the end summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """A sync; an index damaged in a page the open did not read is reported like one damaged at the open."""
    try:
        return _run(args)
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise damaged_error(state_dir(args).absolute() / DB_NAME, exc) from exc
        raise


def _run(args: argparse.Namespace) -> int:
    """Everything that can be checked is checked before the state dir is touched, so a configuration error
    (exit 2) leaves no index, no lock and no remembered source id behind. A real run then holds the
    state-dir lock from before the index opens until after it closes. A dry run never writes the state dir
    and never starts an emulator."""
    if args.max_workers < 1 or args.max_workers > 64:
        raise ConfigError("--max-workers must be between 1 and 64")
    source = Path(args.source).expanduser()
    if not source.is_dir():
        what = "does not exist" if not source.exists() else "is not a folder"
        raise ConfigError(f"source {str(source)!r} {what}; point --source at your library's root folder")
    opts = SyncOptions(
        source=source,
        dry_run=args.dry_run,
        max_workers=args.max_workers,
        rules=ExcludeRules(all_files=args.all_files, globs=tuple(args.exclude)),
        allow_empty_source=args.allow_empty_source,
        bwlimit=args.bwlimit,
    )
    if args.dry_run:
        state = StateDB(state_dir(args), readonly=True)
        _bind(state, source, args)
        cfg = storage_config(args, state) if _storage_configured(args) and not args.emulator else None
        where = cfg.describe() if cfg else "(storage not configured)"
        if args.emulator:
            where = "the local emulator (not started for a dry run)"
        return _sync(args, state, SyncEngine(cfg, state, None, opts), where)
    remembered = read_meta(state_dir(args), "source_id")
    storage = open_storage(
        args, stored_source_id=remembered, create=args.create_container, pool_size=2 * args.max_workers + 4
    )
    create_table = args.create_container or args.emulator
    table, why = open_table_if_usable(table_service(storage.cfg), storage.cfg, create=create_table, claim=True)
    with StateLock(state_dir(args), "sync"):
        state = StateDB(state_dir(args))
        try:
            state.bind_source(source, moved=args.source_moved)
            remember_source_id(state, storage.cfg)
        except BaseException:
            state.close()
            raise
        engine = SyncEngine(storage.cfg, state, storage.container, opts, table=table, table_unavailable=why)
        code = _sync(args, state, engine, storage.cfg.describe())
        if table is not None and not engine.table_unavailable:
            owed = state_dir(args) / CATALOG_OWED
            # This run's mirrored rows update the catalog in place; a refresh owed by an earlier run, a
            # repair (verdicts changed) or more rows than are kept rebuild it from the index.
            delta = engine.mirrored_rows
            whole = owed.exists() or engine.summary.repaired or delta.overflowed
            if whole or delta.rows:
                owed.touch()
                rows = None if whole else delta.rows
                refreshed = _refresh_catalog(
                    table, storage.service, storage.cfg.prefix, create=create_table, rows=rows, spool=state_dir(args)
                )
                if refreshed:
                    owed.unlink(missing_ok=True)
        return code


# Present while the gallery's catalog lags the index: rows were mirrored and the refresh has not succeeded
# yet. A run that changed nothing and owes nothing skips the refresh, which reads every current row of the
# prefix (an unchanged rerun stays independent of the library's size).
CATALOG_OWED = "catalog-owed"


def _refresh_catalog(
    table: TableClient,
    blobs: BlobServiceClient,
    prefix: str,
    *,
    create: bool,
    rows: list[BlobRow] | None,
    spool: Path,
) -> bool:
    """Keep the gallery's catalog current after the mirror (``create``: the thumbnails container too; ``rows``:
    the rows mirrored, else it is rebuilt from the index, spooled in ``spool``, the state folder); ``False``
    when the refresh failed (said in one note, and owed to the next run)."""
    from sync_core.derived.catalog import refresh_if_set_up  # imported only by a real run with a table

    from .gallery_cmd import keep_catalog_current

    return keep_catalog_current(
        blobs, lambda thumbs: refresh_if_set_up(table, thumbs, prefix, create=create, rows=rows, spool_dir=spool)
    )


def _sync(args: argparse.Namespace, state: StateDB, engine: SyncEngine, where: str) -> int:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    # The run row is written now, unfinished, and finished with the process's real outcome: a crash or an
    # interruption records its own exit code, and a run killed outright stays "did not finish".
    run_id = None if args.dry_run else state.start_run("sync")
    outcome = EXIT_INTERNAL
    changing: list[str] = []
    try:
        with ConsoleProgress(err, verbose=args.verbose) as progress:
            engine.progress = progress
            summary = engine.run()
        if run_id is not None:
            changing = _always_changing(state, summary)
            if changing:  # never backed up although each run alone ended well
                summary.problems += 1
        outcome = summary.exit_code
    except BaseException as exc:
        outcome = exit_code_for(exc)
        raise
    finally:
        try:
            if run_id is not None:
                state.finish_run(run_id, outcome, json.dumps(engine.summary.to_dict() | {"exit_code": outcome}))
        finally:
            state.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print_summary(out, summary, where)
        if changing:
            listed = ", ".join(changing[:5]) + (", …" if len(changing) > 5 else "")
            out.print(
                f"[red]{len(changing)} file(s) changed while being read in each of the last "
                f"{ALWAYS_CHANGING_RUNS} runs[/red] and are not backed up: {escape(listed)}"
            )
    return summary.exit_code


def _always_changing(state: StateDB, summary: RunSummary) -> list[str]:
    """Files this run and the previous ones all skipped as changing (the newest rows first; this run's
    own row is still unfinished, so it is replaced by ``summary``)."""
    previous = state.recent_summaries("sync", ALWAYS_CHANGING_RUNS)[1:]
    docs = [summary.to_dict()] + [_loads(s) for s in previous]
    return always_changing(docs)


def _loads(text: str | None) -> dict:
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _bind(state: StateDB, source: Path, args: argparse.Namespace) -> None:
    """A state dir indexes one library: refuse another before anything is read or written."""
    try:
        state.bind_source(source, moved=args.source_moved)
    except ConfigError:
        state.close()
        raise


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
