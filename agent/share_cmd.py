"""``azphotosync share``: expiring, revocable links to an album or a path glob, for people without access."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime

from sync_core.derived.albums import AlbumStore

from .gallery_cmd import DEFAULT_PORT, ENV_BASE_URL, open_archive, thumbnails_option

EXIT_OK, EXIT_NOT_FOUND = 0, 1


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "share",
        help="create, list and revoke share links to an album or a set of paths",
        description="A share link opens a read-only page of exactly its selection, without sign-in, until it "
        "expires or is revoked. The link is shown once; only a hash of its token is stored.",
    )
    actions = p.add_subparsers(dest="share_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=parents, help="create a share link (printed once)")
    what = create.add_mutually_exclusive_group(required=True)
    what.add_argument("--album", metavar="NAME", help="share a user album")
    what.add_argument("--path", metavar="GLOB", help="share the items whose path matches, e.g. '2024/Trip/*'")
    create.add_argument("--expires", default="7d", help="lifetime: 30m, 12h, 7d, 2w (default 7d, at most a year)")
    create.add_argument(
        "--base-url",
        default=os.environ.get(ENV_BASE_URL, f"http://127.0.0.1:{DEFAULT_PORT}"),
        help=f"the gallery's address the link starts with (env {ENV_BASE_URL})",
    )
    create.add_argument("--json", action="store_true", help="print the share as JSON")
    listing = actions.add_parser("list", parents=parents, help="list share links (without their tokens)")
    listing.add_argument("--json", action="store_true", help="print the shares as JSON")
    revoke = actions.add_parser("revoke", parents=parents, help="revoke a share link by its id")
    revoke.add_argument("share_id", metavar="ID", help="the id shown by `share list`")
    for q in (create, listing, revoke):
        thumbnails_option(q)
        q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gallery.shares import KIND_ALBUM, KIND_PATH, ShareNotFound, create_share, list_shares, parse_expiry
    from gallery.shares import revoke_share as revoke

    now = datetime.now(UTC)
    if args.share_action == "create":
        expires = parse_expiry(args.expires)  # a usage error before any I/O
    archive = open_archive(args)
    if args.share_action == "create":
        if args.album is not None:  # the stored name, or a one-line error naming near misses
            kind, selector = KIND_ALBUM, AlbumStore(archive.table, archive.cfg.source_id).get(args.album).name
        else:
            kind, selector = KIND_PATH, args.path
        share, token = create_share(archive.table, kind, selector, expires, now=now)
        url = f"{args.base_url.rstrip('/')}/s/{token}"
        if args.json:
            print(json.dumps({**share.as_json(now), "url": url}))
        else:
            print(f"share {share.share_id}: {kind} {selector!r} until {share.as_json(now)['expires_at']}")
            print(url)
        return EXIT_OK
    if args.share_action == "list":
        shares = [s.as_json(now) for s in list_shares(archive.table)]
        if args.json:
            print(json.dumps({"shares": shares}))
        else:
            for s in shares:
                print(f"{s['id']}  {s['state']:<8} {s['kind']:<5} {s['selector']!r}  expires {s['expires_at']}")
        return EXIT_OK
    try:
        share = revoke(archive.table, args.share_id, now=now)
    except ShareNotFound as exc:
        print(f"azphotosync: {exc}")
        return EXIT_NOT_FOUND
    print(f"share {share.share_id} revoked")
    return EXIT_OK
