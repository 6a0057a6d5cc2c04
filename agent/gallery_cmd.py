"""``azphotosync gallery``: the private web gallery on this computer (loopback only unless told otherwise)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import threading
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from rich.console import Console
from rich.markup import escape

from sync_core.config import (
    DEFAULT_THUMBNAILS_CONTAINER,
    ENV_THUMBNAILS_CONTAINER,
    StorageConfig,
    thumbnails_container_name,
)
from sync_core.errors import ConfigError, first_line
from sync_core.index.table_mirror import open_table
from sync_core.local.state import StateDB
from sync_core.storage.clients import table_service

from .options import open_storage, state_dir

DEFAULT_PORT = 8765
ENV_BASE_URL = "GALLERY_BASE_URL"


@dataclass
class Archive:
    cfg: StorageConfig
    table: TableClient
    data: ContainerClient
    thumbnails: ContainerClient


def thumbnails_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--thumbnails-container",
        default=thumbnails_container_name(),
        help=f"container of the renditions and the gallery catalog (env {ENV_THUMBNAILS_CONTAINER}; "
        f"default {DEFAULT_THUMBNAILS_CONTAINER})",
    )


def keep_catalog_current(blobs: BlobServiceClient, refresh: Callable[[ContainerClient], object]) -> bool:
    """``refresh(thumbnails container)`` after a command changed what the gallery lists. The catalog is
    derived data: a failure is one note on stderr and ``False``, never a failed command (the next run
    rebuilds it)."""
    try:
        refresh(blobs.get_container_client(thumbnails_container_name()))
    except AzureError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"note: gallery catalog not refreshed: {escape(first_line(exc))}"
        )
        return False
    return True


def open_archive(args: argparse.Namespace) -> Archive:
    """The data container, index table and thumbnails container (created only on the emulator)."""
    try:  # the source id remembered there names the default prefix
        state: StateDB | None = StateDB(state_dir(args), readonly=True)
    except ConfigError:
        state = None
    try:
        storage = open_storage(args, state=state)
    finally:
        if state is not None:
            state.close()
    table = open_table(table_service(storage.cfg), storage.cfg, create=bool(args.emulator))
    thumbnails = storage.service.get_container_client(args.thumbnails_container)
    if args.emulator:
        with contextlib.suppress(ResourceExistsError):
            thumbnails.create_container()
    return Archive(storage.cfg, table, storage.container, thumbnails)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "gallery",
        parents=parents,
        help="browse the archive in a private web gallery on this computer",
        description="Serve the gallery (timeline, folders, albums, viewer with each item's last verification) "
        "on 127.0.0.1. It reads the compact catalog, built here when missing (--refresh rebuilds it).",
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    p.add_argument("--open", action="store_true", help="open the gallery in the default browser")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be a non-loopback address; every visitor must then sign in with the printed link",
    )
    p.add_argument("--refresh", action="store_true", help="rebuild the catalog from the index table first")
    thumbnails_option(p)
    p.set_defaults(func=run)


def prepare(args: argparse.Namespace) -> tuple[Any, str]:
    """The app and the URL to print (with the sign-in key when remote); usage errors before any I/O."""
    from gallery.app import create_app
    from gallery.auth import LocalAuth
    from sync_core.derived.catalog import catalog_blob_name, refresh_catalog

    if not 0 <= args.port <= 65535:
        raise ConfigError("--port must be between 0 and 65535")
    if not _is_loopback(args.host) and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host} would serve the private library to the network: add --allow-remote (sign-in required)"
        )
    archive = open_archive(args)
    try:
        missing = not archive.thumbnails.get_blob_client(catalog_blob_name(archive.cfg.prefix)).exists()
    except ResourceNotFoundError as exc:
        raise ConfigError(f"thumbnails container {args.thumbnails_container!r} does not exist") from exc
    if args.refresh or missing:
        n = refresh_catalog(archive.table, archive.thumbnails, archive.cfg.prefix)
        print(f"catalog built: {n} items")
    auth = LocalAuth(allow_remote=args.allow_remote)
    app = create_app(table=archive.table, data=archive.data, thumbnails=archive.thumbnails,
                     prefix=archive.cfg.prefix, auth=auth)  # fmt: skip
    app.catalog.get()  # loaded before the URL is shown: the first page view does not wait for it
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{{port}}/"
    if auth.signin_key:
        url += f"signin?key={auth.signin_key}"
    return app, url


def run(args: argparse.Namespace) -> int:
    import uvicorn

    app, url = prepare(args)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", lifespan="off"))

    def announce() -> None:
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            print(f"gallery: {url.format(port=port)}  (Ctrl-C to stop)", flush=True)
            if args.open:
                webbrowser.open(url.format(port=port))

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    return 0
