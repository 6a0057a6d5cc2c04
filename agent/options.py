"""Options every storage-touching command shares, and turning them into configured clients."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient, ContainerClient

from sync_core.config import (
    DEFAULT_CONTAINER,
    DEFAULT_PREFIX,
    DEFAULT_TABLE,
    ENV_ACCOUNT_URL,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER,
    ENV_STATE_DIR,
    ENV_TABLE,
    StorageConfig,
    remembered_source_id,
    resolve_storage_config,
    write_source_id_file,
)
from sync_core.errors import ConfigError
from sync_core.local.state import StateDB, damaged_error, is_damage
from sync_core.storage.bandwidth import parse_rate
from sync_core.storage.clients import blob_service, open_container

from .emulator import EmulatorError, ensure_emulator

DEFAULT_STATE_DIR = "~/.azphotosync"


def storage_options() -> argparse.ArgumentParser:
    """A parent parser with the storage, identity and state-dir options."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("storage")
    g.add_argument(
        "--account-url",
        help=f"blob endpoint https://ACCOUNT.blob.core.windows.net (env {ENV_ACCOUNT_URL}); "
        "authenticates with DefaultAzureCredential",
    )
    g.add_argument("--connection-string", help=f"development only, e.g. Azurite (env {ENV_CONNECTION_STRING}; "
                   "prefer the env var: command lines are visible to other users)")  # fmt: skip
    g.add_argument("--container", help=f"blob container (env {ENV_CONTAINER}; default {DEFAULT_CONTAINER})")
    g.add_argument("--table", help=f"index table (env {ENV_TABLE}; default {DEFAULT_TABLE})")
    g.add_argument("--table-endpoint", help="table endpoint when it cannot be derived from the account URL")
    g.add_argument("--prefix", help=f"blob name prefix inside the container (default {DEFAULT_PREFIX}/<source-id>)")
    g.add_argument(
        "--source-id",
        help="name of this device/library in the archive (default: the host name, remembered in the state dir)",
    )
    g.add_argument(
        "--emulator",
        action="store_true",
        help="use a local Azurite (started if needed, data under the state dir): try it without Azure",
    )
    g.add_argument(
        "--state-dir",
        default=os.environ.get(ENV_STATE_DIR, DEFAULT_STATE_DIR),
        help=f"where the local index lives (default {DEFAULT_STATE_DIR})",
    )
    g.add_argument("-v", "--verbose", action="store_true", help="per-file lines; tracebacks on errors")
    return p


def rate_arg(text: str) -> int:
    """argparse ``type`` for ``--bwlimit``: bytes per second, or a usage error that says what to type."""
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).expanduser()


def storage_config(
    args: argparse.Namespace, state: StateDB | None = None, *, stored_source_id: str | None = None
) -> StorageConfig:
    """Resolve flags over env; ``--emulator`` supplies a connection string to a local Azurite.

    The source id is remembered in the state dir on first use, so renaming the host later does not move
    the library to a new prefix: ``state`` (read, and written when it is writable and holds none yet), or
    ``stored_source_id`` read beforehand by a caller that opens the state dir only once the configuration
    has proven usable (:func:`remember_source_id` then)."""
    conn = args.connection_string
    if getattr(args, "emulator", False):
        try:
            conn = ensure_emulator(state_dir(args)).connection_string
        except EmulatorError as exc:
            raise ConfigError(str(exc)) from exc
        except OSError as exc:
            raise ConfigError(f"cannot start Azurite under {state_dir(args)}: {exc}") from exc
    stored = (
        state.get_meta("source_id") if state is not None else stored_source_id
    ) or remembered_source_id(state_dir(args))
    cfg = resolve_storage_config(
        account_url=None if conn else args.account_url,
        connection_string=conn,
        container=args.container,
        table=args.table,
        table_endpoint=args.table_endpoint,
        prefix=args.prefix,
        source_id=args.source_id,
        stored_source_id=stored,
    )
    if state is not None and not state.readonly:
        remember_source_id(state, cfg)
    return cfg


def remember_source_id(state: StateDB, cfg: StorageConfig) -> None:
    """Keep the source id in the state dir when it holds none yet (the first real run), in the index and in
    a plain file beside it that survives a damaged index."""
    if state.get_meta("source_id") is None:
        state.set_meta("source_id", cfg.source_id)
    kept = state.get_meta("source_id") or cfg.source_id
    if remembered_source_id(state.state_dir) != kept:
        write_source_id_file(state.state_dir, kept)


def remembered_state(args: argparse.Namespace, warn: Callable[[str], None] | None = None) -> StateDB | None:
    """The state dir, read-only, for a command that only needs what it remembers (the source id): an
    index that cannot be read (damaged, or from a newer version) is reported in one line, not fatal."""
    if warn is None:
        def warn(line: str) -> None:
            print(f"azphotosync: {line}", file=sys.stderr)

    try:
        state = StateDB(state_dir(args), readonly=True)
    except ConfigError as exc:
        warn(f"warning: {exc}")
        return None
    try:
        state.get_meta("source_id")  # a damaged page the open did not read
    except sqlite3.DatabaseError as exc:
        state.close()
        warn(f"warning: {damaged_error(state.path, exc) if is_damage(exc) else exc}")
        return None
    return state


@dataclass
class Storage:
    cfg: StorageConfig
    service: BlobServiceClient
    container: ContainerClient


def open_storage(
    args: argparse.Namespace,
    *,
    state: StateDB | None = None,
    stored_source_id: str | None = None,
    create: bool = False,
    pool_size: int = 16,
    **client_kwargs: Any,
) -> Storage:
    """``client_kwargs`` go to the blob service client (e.g. download chunk sizes for restore)."""
    cfg = storage_config(args, state, stored_source_id=stored_source_id)
    service = blob_service(cfg, pool_size=pool_size, **client_kwargs)
    container = open_container(service, cfg, create=create or bool(getattr(args, "emulator", False)))
    return Storage(cfg, service, container)
