"""``azphotosync restore --to DIR``: bring the current version of every backed-up file back, verified."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from azure.data.tables import TableClient
from rich.console import Console
from rich.markup import escape

from sync_core.errors import ConfigError
from sync_core.index.table_mirror import open_table
from sync_core.restore.rehydrate import PRIORITIES
from sync_core.restore.run import (
    PROBLEM_KINDS,
    RestoreEngine,
    RestoreKind,
    RestoreOptions,
    RestoreOutcome,
    RestoreSummary,
)
from sync_core.storage.clients import table_service

from .console import RunConsole, human_bytes, outcome_line
from .options import open_storage, rate_arg, remembered_state

MiB = 1024 * 1024


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "restore",
        parents=parents,
        help="restore backed-up files into a folder, SHA-256-verified",
        description="Restore the current version of every file under the prefix (this device's by default; "
        "another device's with --source-id) into DIR. Every file is checked against its SHA-256 before it is "
        "moved into place; files already there with the same content are skipped, so an interrupted restore "
        "resumes; a different local file is never replaced without --overwrite; no name can write outside DIR.",
    )
    p.add_argument("--to", required=True, metavar="DIR", help="folder to restore into (created if missing)")
    p.add_argument(
        "--path",
        action="append",
        default=[],
        metavar="GLOB",
        help="only paths matching GLOB ('*' also crosses folders), or under the folder GLOB names (repeatable)",
    )
    p.add_argument(
        "--album",
        metavar="NAME",
        help="only the files of this album (`azphotosync album list`) that are under the prefix",
    )
    p.add_argument("--overwrite", action="store_true", help="replace local files whose content differs")
    p.add_argument("--max-workers", type=int, default=8, help="parallel downloads (default 8)")
    p.add_argument(
        "--bwlimit", type=rate_arg, metavar="RATE", help="cap download bandwidth, e.g. 5MB or 2MiB (per second)"
    )
    p.add_argument(
        "--index",
        choices=("auto", "table", "listing"),
        default="auto",
        help="where the list of files comes from: the Table index, the blob listing (metadata), or the table "
        "with the listing as fallback (default auto)",
    )
    p.add_argument(
        "--rehydrate",
        choices=PRIORITIES,
        default="standard",
        help="priority of the rehydration asked for files in the Archive tier: standard (up to 15 hours) or "
        "high (about 1 hour below 10 GB, dearer); they are restored by the same restore run again later",
    )
    p.add_argument("--json", action="store_true", help="print the end summary as JSON on stdout")
    p.set_defaults(func=run)


class RestoreConsole(RunConsole):
    """A restore's progress: problems (kept, rejected, corrupt, failed) always, one line each; every other
    file under ``--verbose``."""

    def file_done(self, outcome: RestoreOutcome) -> None:
        line = None
        if outcome.kind in PROBLEM_KINDS or outcome.kind == RestoreKind.PENDING:
            colour = "yellow" if outcome.kind in (RestoreKind.KEPT, RestoreKind.PENDING) else "red"
            line = f"[{colour}]{outcome.kind.value}[/{colour}]  {escape(outcome.relpath)}: {escape(outcome.detail)}"
        elif self.verbose:
            line = outcome_line(outcome.kind.value, outcome.relpath, outcome.detail)
        self.finished(line)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.max_workers <= 64:
        raise ConfigError("--max-workers must be between 1 and 64")
    dest = Path(args.to).expanduser()
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"--to {str(dest)!r} is not a folder; give a folder to restore into")
    # The state dir, read-only: it supplies this device's remembered source id and is never changed.
    state = remembered_state(args, lambda line: print(f"azphotosync: {line}", file=sys.stderr))
    # Small download chunks keep memory at a few MiB per worker whatever the file size.
    storage = open_storage(
        args, state=state, pool_size=2 * args.max_workers + 4, max_single_get_size=8 * MiB, max_chunk_get_size=4 * MiB
    )
    if state is not None:
        state.close()
    cfg = storage.cfg
    table, table_error = None, ""
    if args.index != "listing" or args.album is not None:  # albums live in the table
        try:
            table = open_table(table_service(cfg), cfg)
        except ConfigError as exc:
            table_error = str(exc).split(": ", 1)[0]  # what is wrong, without the advice meant for sync
    only = _album_paths(table, table_error, args, cfg.prefix) if args.album is not None else None
    opts = RestoreOptions(
        dest=dest,
        patterns=tuple(args.path),
        only=only,
        source_id=args.source_id,  # filter only when asked: the prefix already selects the device by default
        overwrite=args.overwrite,
        max_workers=args.max_workers,
        bwlimit=args.bwlimit,
        index=args.index,
        rehydrate=args.rehydrate,
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    engine = RestoreEngine(storage.container, cfg.prefix, opts, table=table, table_error=table_error)
    with RestoreConsole(err, verbose=args.verbose, label="restoring") as progress:
        engine.progress = progress
        summary = engine.run()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print_restore_summary(Console(highlight=False, soft_wrap=True), summary, cfg.prefix, dest)
    return summary.exit_code


def _album_paths(table: TableClient | None, table_error: str, args: argparse.Namespace, prefix: str) -> frozenset[str]:
    """The current paths under ``prefix`` that ``--album`` stands for (albums live in the index table)."""
    from sync_core.derived.albums import AlbumStore, album_paths

    if table is None:
        raise ConfigError(f"--album needs the index table: {table_error or 'not available'}")
    sel = album_paths(AlbumStore(table, args.source_id or ""), args.album, prefix, args.source_id)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if sel.elsewhere:
        err.print(f"album {escape(sel.album.name)!r}: {sel.elsewhere} file(s) under other prefixes are not "
                  "restored here (pass their --prefix or --source-id)")  # fmt: skip
    if sel.gone:
        err.print(f"album {escape(sel.album.name)!r}: {sel.gone} file(s) are no longer current at the source "
                  "and are not restored")  # fmt: skip
    if not sel.paths:
        raise ConfigError(f"album {sel.album.name!r} has no current files under prefix {prefix!r}")
    return sel.paths


def print_restore_summary(console: Console, s: RestoreSummary, prefix: str, dest: Path) -> None:
    where = "the index table" if s.index == "table" else "the blob listing"
    console.print(f"restored {escape(prefix)} into {escape(str(dest))} (file list from {where})")
    console.print(
        f"  files {s.candidates}  restored {s.restored}  already present {s.present}  kept {s.kept}  "
        f"rejected {s.rejected}  corrupt {s.corrupt}  failed {s.failed}  pending {s.pending}"
    )
    rate = s.bytes_received / s.seconds if s.seconds else 0
    console.print(f"  received {human_bytes(s.bytes_received)} in {s.seconds:.1f} s ({human_bytes(rate)}/s)")
    if s.superseded:
        console.print(
            f"  {s.superseded} older version(s) claimed the same paths (devices sharing this prefix?); "
            "the newest upload of each was restored — --source-id picks one device"
        )
    if s.pending:
        console.print(
            f"[yellow]{s.pending} file(s) pending rehydration[/yellow] (archived; listed above); run the same "
            "restore again later"
        )
    if s.kept or s.rejected or s.corrupt or s.failed:
        console.print(
            "[red]some files were not restored[/red]: see the lines above; rerun to resume "
            "(files already restored are skipped)"
        )
