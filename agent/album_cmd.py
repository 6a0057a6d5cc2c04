"""``azphotosync album``: user albums (shared by every device of the archive), folders and the timeline."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from azure.data.tables import TableClient
from rich.console import Console
from rich.markup import escape

from sync_core.config import StorageConfig
from sync_core.derived.albums import AlbumStore, Member, Resolved, resolve
from sync_core.derived.folders import folders
from sync_core.derived.timeline import Dated, Item, TakenRange, current_items, taken, timeline
from sync_core.errors import ConfigError
from sync_core.index.table_mirror import open_table
from sync_core.restore.run import path_selected
from sync_core.storage.clients import blob_service, table_service

from .options import remembered_state, storage_config

HELP = "create albums and add files to them; list albums, folders and the timeline"


def _taken_arg(text: str) -> TakenRange:
    try:
        return TakenRange.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "album",
        help=HELP,
        description="Albums live in the index table, so every device of the archive sees the same ones. "
        "Adding or removing files, or deleting an album, never touches a file or a blob. Every folder of "
        "the library is an album too (--folders), and every file has its place in the timeline (--timeline).",
    )
    actions = p.add_subparsers(dest="album_action", metavar="ACTION", required=True)

    def action(name: str, help_line: str) -> argparse.ArgumentParser:
        a = actions.add_parser(name, parents=parents, help=help_line, description=help_line)
        a.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        return a

    a = action("create", "create an album (nothing happens when it exists)")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=run_create)
    for verb, help_line, func in (
        ("add", "add the files under the prefix that match --path or --taken", run_add),
        ("remove", "remove the album's files that match --path or --taken (the files stay in the archive)", run_remove),
    ):
        a = action(verb, help_line)
        a.add_argument("name", metavar="NAME")
        how = a.add_mutually_exclusive_group(required=True)
        how.add_argument("--path", action="append", metavar="GLOB",
                         help="paths matching GLOB ('*' also crosses folders), or under the folder it names "
                         "(repeatable)")  # fmt: skip
        how.add_argument("--taken", type=_taken_arg, metavar="FROM..TO",
                         help="taken in this range of days, months or years, both ends included: 2024-07..2024-08-15, "
                         "2023.. or 2024 (files without a capture date count by their modification time)")  # fmt: skip
        a.set_defaults(func=func)
    a = action("delete", "delete an album; its files stay in the archive")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=run_delete)
    a = action("list", "list the albums (or the folders, or the timeline's months)")
    what = a.add_mutually_exclusive_group()
    what.add_argument("--folders", action="store_true", help="every folder of the library under the prefix")
    what.add_argument("--timeline", action="store_true", help="the months of the timeline, newest first")
    a.set_defaults(func=run_list)
    a = action("show", "show the files of an album, a folder, or a stretch of the timeline")
    what = a.add_mutually_exclusive_group(required=True)
    what.add_argument("name", metavar="NAME", nargs="?")
    what.add_argument("--folder", metavar="PATH", help="a folder of the library ('' is its root)")
    what.add_argument("--taken", type=_taken_arg, metavar="FROM..TO", help="the timeline over this range")
    a.set_defaults(func=run_show)


# -- plumbing ------------------------------------------------------------------------------------------------
def _open(args: argparse.Namespace) -> tuple[StorageConfig, TableClient, AlbumStore]:
    state = remembered_state(args)
    try:
        cfg = storage_config(args, state)
    finally:
        if state is not None:
            state.close()
    table = open_table(table_service(cfg), cfg, create=bool(args.emulator))
    return cfg, table, AlbumStore(table, cfg.source_id)


def _refresh_catalog(cfg: StorageConfig, table: TableClient) -> None:
    """The gallery's catalog shows the albums as edited now (its items stay: no scan of the index)."""
    from sync_core.derived.catalog import refresh_albums

    from .gallery_cmd import keep_catalog_current

    keep_catalog_current(blob_service(cfg), lambda thumbs: refresh_albums(table, thumbs, cfg.prefix))


def _items(table: TableClient, cfg: StorageConfig, args: argparse.Namespace) -> list[Item]:
    """Current items under the prefix (of --source-id only when it is given, as restore does)."""
    return list(current_items(table, cfg.prefix, args.source_id))


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _emit(args: argparse.Namespace, data: dict[str, Any], lines: Iterable[str]) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        out = _out()
        for line in lines:
            out.print(line)
    return 0


def _date(d: Dated) -> str:
    return d.when.strftime("%Y-%m-%d %H:%M") + ("*" if d.source == "mtime" else " ")


_MTIME_NOTE = "(* no capture date: dated by the file's modification time)"


def _matching(items: Iterable[Item], args: argparse.Namespace) -> list[Item]:
    if args.path:
        return [i for i in items if path_selected(i.relpath, args.path)]
    return [i for i in items if taken(i).when in args.taken]


def _selector(args: argparse.Namespace) -> str:
    return f"--path {' '.join(args.path)}" if args.path else f"--taken {args.taken.text}"


# -- actions ---------------------------------------------------------------------------------------------------
def run_create(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    album, created = store.create(args.name)
    _refresh_catalog(cfg, table)
    name = escape(repr(album.name))
    line = (
        f"created album {name}" if created else f"album {name} already exists (created by {escape(album.created_by)})"
    )
    return _emit(args, {"album": album.to_dict(), "created": created}, [line])


def run_add(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    album = store.get(args.name)
    chosen = _matching(_items(table, cfg, args), args)
    if not chosen:
        raise ConfigError(f"no file under prefix {cfg.prefix!r} matches {_selector(args)}; nothing added")
    added, already = store.add(album, chosen)
    _refresh_catalog(cfg, table)
    return _emit(
        args,
        {"album": album.name, "added": added, "already": already},
        [f"added {added} file(s) to {escape(repr(album.name))} ({already} already in it)"],
    )


def run_remove(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    album = store.get(args.name)
    resolved = _resolved(table, store.members(album), cfg, args)
    gone = []
    for r in resolved:
        if args.path:
            hit = path_selected(r.member.relpath, args.path) or (
                r.item is not None and path_selected(r.item.relpath, args.path)
            )
        else:
            hit = r.item is not None and taken(r.item).when in args.taken
        if hit:
            gone.append(r.member)
    store.remove(album, gone)
    _refresh_catalog(cfg, table)
    return _emit(
        args,
        {"album": album.name, "removed": len(gone)},
        [f"removed {len(gone)} file(s) from {escape(repr(album.name))}; the files stay in the archive"],
    )


def run_delete(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    album, members = store.delete(args.name)
    _refresh_catalog(cfg, table)
    return _emit(
        args,
        {"album": album.name, "deleted": True, "members": members},
        [f"deleted album {escape(repr(album.name))} ({members} file(s) in it); no file was touched"],
    )


def run_list(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    if args.folders:
        tree = folders(_items(table, cfg, args))
        lines = [f"{len(tree)} folder(s) under {escape(cfg.prefix)}  (files in it, with its subfolders)"]
        lines += [f"  {len(f.items):6} {f.total:7}  {escape(f.path or '(library root)')}" for f in tree.values()]
        return _emit(args, {"prefix": cfg.prefix, "folders": [f.to_dict() for f in tree.values()]}, lines)
    if args.timeline:
        years = timeline(_items(table, cfg, args))
        months = [m for y in years for m in y.months]
        lines = [
            f"timeline of {escape(cfg.prefix)}: {sum(len(m.items) for m in months)} file(s) in {len(months)} month(s)"
        ]
        lines += [
            f"  {m.year:04}-{m.month:02}  {len(m.items):6}" + (f"  ({m.by_mtime} by file time)" if m.by_mtime else "")
            for m in months
        ]
        return _emit(args, {"prefix": cfg.prefix, "months": [m.to_dict(items=False) for m in months]}, lines)
    albums = store.albums(counts=True)
    lines = [f"{len(albums)} album(s)"] + [
        f"  {escape(a.name)}  {a.members} file(s)  created by {escape(a.created_by)}" for a in albums
    ]
    return _emit(args, {"albums": [a.to_dict() for a in albums]}, lines)


def _resolved(
    table: TableClient, members: list[Member], cfg: StorageConfig, args: argparse.Namespace
) -> list[Resolved]:
    """Members resolved against the current items of every prefix they reference."""
    items: list[Item] = []
    for prefix in sorted({m.prefix for m in members}):
        items += current_items(table, prefix, args.source_id if prefix == cfg.prefix else None)
    return resolve(members, items)


def run_show(args: argparse.Namespace) -> int:
    cfg, table, store = _open(args)
    if args.name is not None:
        return _show_album(args, cfg, table, store)
    items = _items(table, cfg, args)
    if args.folder is not None:
        path = args.folder.strip("/")
        tree = folders(items)
        if path not in tree:
            raise ConfigError(
                f"no folder {path!r} under prefix {cfg.prefix!r}; `azphotosync album list --folders` shows them"
            )
        dated = sorted((taken(i) for i in tree[path].items), key=lambda d: (d.when, d.item.relpath))
        title = f"folder {escape(repr(path))}: {len(dated)} file(s), {tree[path].total} with its subfolders"
        data: dict[str, Any] = {"folder": tree[path].to_dict(), "items": [d.to_dict() for d in dated]}
    else:
        dated = [d for d in (taken(i) for i in items) if d.when in args.taken]
        dated.sort(key=lambda d: (d.when, d.item.relpath))
        title = f"taken {escape(args.taken.text)}: {len(dated)} file(s)"
        data = {"taken": args.taken.text, "items": [d.to_dict() for d in dated]}
    lines = [title] + [f"  {_date(d)} {escape(d.item.relpath)}" for d in dated]
    if any(d.source == "mtime" for d in dated):
        lines.append(_MTIME_NOTE)
    return _emit(args, data, lines)


def _show_album(args: argparse.Namespace, cfg: StorageConfig, table: TableClient, store: AlbumStore) -> int:
    album = store.get(args.name)
    resolved = _resolved(table, store.members(album), cfg, args)
    shown = sorted(
        ((r, taken(r.item) if r.item is not None else None) for r in resolved),
        key=lambda rd: (rd[1] is None, rd[1].when if rd[1] else datetime.min, rd[0].member.relpath),
    )
    rows: list[dict[str, Any]] = []
    lines = [f"album {escape(repr(album.name))}: {len(resolved)} file(s)  (created by {escape(album.created_by)})"]
    for r, d in shown:
        where = "" if r.member.prefix == cfg.prefix else f"{r.member.prefix}: "
        row = {"prefix": r.member.prefix, "sha256": r.member.sha256, "member_path": r.member.relpath, "state": r.state}
        if d is None:
            lines.append(f"  {'':17} {escape(where + r.member.relpath)}  [gone: no longer current at the source]")
        else:
            row.update(d.to_dict())
            note = f"  [{r.state}: was {escape(r.member.relpath)}]" if r.state != "current" else ""
            lines.append(f"  {_date(d)} {escape(where + d.item.relpath)}{note}")
        rows.append(row)
    if any(d is not None and d.source == "mtime" for _, d in shown):
        lines.append(_MTIME_NOTE)
    return _emit(args, {"album": {**album.to_dict(), "members": len(resolved)}, "items": rows}, lines)
