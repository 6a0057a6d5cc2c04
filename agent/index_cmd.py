"""``azphotosync index rebuild|mirror``: look after the local SQLite index and its Azure Table mirror."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from sync_core.errors import ConfigError
from sync_core.index.rebuild import rebuild_index
from sync_core.index.table_mirror import TableMirror, open_table
from sync_core.local.state import DamagedIndexError, StateDB, set_aside_damaged
from sync_core.storage.clients import table_service

from .lock import StateLock
from .options import open_storage, state_dir


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "index",
        help="rebuild the local index from the cloud, or mirror it to the index table now",
        description="Maintain the local SQLite index (the state dir) and the Azure Table that mirrors it.",
    )
    actions = p.add_subparsers(dest="index_action", metavar="ACTION", required=True)
    rb = actions.add_parser(
        "rebuild",
        parents=parents,
        help="recreate a lost local index from the table, and missing table rows from blob metadata",
        description="Fill the gaps between the local index, the index table and the container for this "
        "source id, without sending any file bytes: lost local rows come back from the table, blobs with "
        "no table row get one from their metadata. Existing rows are never replaced.",
    )
    rb.add_argument(
        "--source",
        help="library root: files whose size and mtime still match are marked unchanged, so the next sync "
        "does not re-read them",
    )
    rb.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    rb.set_defaults(func=run_rebuild)
    mi = actions.add_parser(
        "mirror",
        parents=parents,
        help="write pending rows to the index table now (a sync does this at its end)",
        description="Write the local index rows the index table has not seen yet: after a failed mirror, or "
        "once the table exists (or this identity was granted Storage Table Data Contributor on it) after syncs "
        "that ran without it. No file is read.",
    )
    mi.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    mi.set_defaults(func=run_mirror)


def run_rebuild(args: argparse.Namespace) -> int:
    source = Path(args.source).expanduser() if args.source else None
    if source is not None and not source.is_dir():
        raise ConfigError(f"source {str(source)!r} is not a folder; point --source at your library's root")
    with StateLock(state_dir(args), "index rebuild"):
        try:
            state = StateDB(state_dir(args), check=True)
        except DamagedIndexError as exc:
            aside = set_aside_damaged(state_dir(args))
            print(f"azphotosync: {exc.what}; moved aside to {aside.name}, rebuilding", file=sys.stderr)
            state = StateDB(state_dir(args))
        try:
            if source is not None:
                state.bind_source(source)
            storage = open_storage(args, state=state)
            table = open_table(table_service(storage.cfg), storage.cfg, create=bool(args.emulator), claim=True)
            res = rebuild_index(storage.cfg, state, storage.container, table, source=source)
        finally:
            state.close()
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
        return res.exit_code
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"index rebuilt for {escape(storage.cfg.describe())}")
    out.print(
        f"  table rows {res.table_rows}  blobs listed {res.blobs_listed}  restored from table {res.from_table}  "
        f"from blob metadata {res.from_blobs}  files {res.files_restored} ({res.files_confirmed} confirmed "
        f"unchanged on disk)  other source ids {res.other_sources}"
    )
    out.print(f"  table rows written {res.mirror.mirrored} in {res.mirror.transactions} transaction(s)")
    for u in res.unusable:
        out.print(f"[yellow]not indexed[/yellow] {escape(u['blob_name'])}: {escape(u['error'])}")
    if res.mirror.error:
        out.print(f"[red]index table not fully written[/red] ({escape(res.mirror.error)}); run it again")
    return res.exit_code


def run_mirror(args: argparse.Namespace) -> int:
    with StateLock(state_dir(args), "index mirror"):
        state = StateDB(state_dir(args))
        try:
            storage = open_storage(args, state=state)
            table = open_table(table_service(storage.cfg), storage.cfg, create=bool(args.emulator), claim=True)
            res = TableMirror(table, state).run()
        finally:
            state.close()
    failed = bool(res.error or res.rejected)
    if args.json:
        print(json.dumps({"mirrored": res.mirrored, "transactions": res.transactions, "partitions": res.partitions,
                          "pending": res.pending, "error": res.error, "rejected": res.rejected,
                          "exit_code": int(failed)}, indent=2))  # fmt: skip
        return int(failed)
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"mirrored {res.mirrored} row(s) in {res.transactions} transaction(s); {res.pending} still pending")
    if failed:
        out.print(f"[red]mirror incomplete[/red]: {escape(res.error or str(res.rejected[:3]))}")
    return int(failed)
