"""Storage configuration: where the archive lives and how we authenticate, resolved from flags and env.

Flags win over environment variables. A connection string (development, Azurite) wins over an account URL;
with an account URL alone we authenticate with ``DefaultAzureCredential`` and never hold a secret.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

ENV_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_CONTAINER = "AZURE_STORAGE_CONTAINER"
ENV_TABLE = "AZURE_STORAGE_TABLE"
ENV_TABLE_ENDPOINT = "AZURE_STORAGE_TABLE_ENDPOINT"
ENV_PREFIX = "AZPHOTOSYNC_PREFIX"
ENV_SOURCE_ID = "AZPHOTOSYNC_SOURCE_ID"

DEFAULT_CONTAINER = "photos-archive"
DEFAULT_TABLE = "azphotosyncindex"
DEFAULT_PREFIX = "photos"

_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

NO_CREDENTIALS_HINT = (
    f"no storage configured: set {ENV_ACCOUNT_URL} (and sign in with `az login` or run with a managed "
    f"identity), or {ENV_CONNECTION_STRING} for Azurite, or pass --emulator to try it locally"
)


def validate_container_name(name: str) -> str:
    """Container names: 3-63 chars of a-z, 0-9 and single hyphens, starting and ending alphanumeric."""
    if not _CONTAINER_RE.match(name or ""):
        raise ConfigError(
            f"invalid container name {name!r}: use 3-63 lower-case letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return name


def validate_table_name(name: str) -> str:
    """Table names: 3-63 alphanumeric characters, starting with a letter."""
    if not _TABLE_RE.match(name or ""):
        raise ConfigError(f"invalid table name {name!r}: use 3-63 letters and digits, starting with a letter")
    return name


def default_source_id() -> str:
    """The host name, lower-cased and reduced to the characters a source id may hold."""
    host = socket.gethostname().split(".")[0].lower()
    clean = re.sub(r"[^a-z0-9._-]", "-", host).strip("-._") or "default"
    return clean[:63]


SOURCE_ID_FILE = "source-id"  # in the state dir, beside index.db: survives a damaged or lost index


def remembered_source_id(state_dir: Path) -> str | None:
    """The source id remembered in ``state_dir`` (a plain file, so that ``restore`` and ``index rebuild``
    find it even when ``index.db`` is damaged); ``None`` when there is none or it is not valid."""
    try:
        text = (Path(state_dir) / SOURCE_ID_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _SOURCE_ID_RE.match(text) else None


def remember_source_id(state_dir: Path, source_id: str) -> None:
    """Write the source id file atomically (a torn write must not leave a half id)."""
    path = Path(state_dir) / SOURCE_ID_FILE
    tmp = path.with_name(f".{SOURCE_ID_FILE}.tmp")
    tmp.write_text(source_id + "\n", encoding="ascii")
    os.replace(tmp, path)


def default_prefix(source_id: str) -> str:
    """``photos/<source-id>``: each device writes its own blobs and Table partitions, so two devices never
    touch each other's rows; give several devices the same ``--prefix`` to share (and dedupe) one tree."""
    return f"{DEFAULT_PREFIX}/{source_id}"


def validate_source_id(value: str) -> str:
    if not _SOURCE_ID_RE.match(value or ""):
        raise ConfigError(
            f"invalid source id {value!r}: use 1-63 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return value


def table_endpoint_from_blob_url(account_url: str) -> str:
    """Derive the Table endpoint from a blob endpoint (``.blob.`` -> ``.table.``)."""
    if ".blob." not in account_url:
        raise ConfigError(f"cannot derive the table endpoint from {account_url!r}: set {ENV_TABLE_ENDPOINT}")
    return account_url.replace(".blob.", ".table.", 1)


@dataclass(frozen=True)
class StorageConfig:
    """Where the archive lives. ``connection_string`` is only for development (Azurite)."""

    container: str
    table: str
    prefix: str
    source_id: str
    account_url: str | None = None
    connection_string: str | None = None
    table_endpoint: str | None = None

    @property
    def uses_credential(self) -> bool:
        return self.connection_string is None

    def describe(self) -> str:
        """A human description with no secret in it."""
        where = self.account_url or "connection string (development)"
        return f"{where} container={self.container} prefix={self.prefix} source-id={self.source_id}"


def resolve_storage_config(
    *,
    account_url: str | None = None,
    connection_string: str | None = None,
    container: str | None = None,
    table: str | None = None,
    table_endpoint: str | None = None,
    prefix: str | None = None,
    source_id: str | None = None,
    stored_source_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StorageConfig:
    """Merge flags (arguments) over environment variables and validate everything that can be checked
    without a network call."""
    env = os.environ if env is None else env
    conn = connection_string or env.get(ENV_CONNECTION_STRING) or None
    url = account_url or env.get(ENV_ACCOUNT_URL) or None
    if account_url and not connection_string:
        conn = None  # an explicit --account-url means "use the credential", even if env has a string
    if not conn and not url:
        raise ConfigError(NO_CREDENTIALS_HINT)
    if url and not url.startswith(("https://", "http://")):
        raise ConfigError(f"invalid account URL {url!r}: expected https://<account>.blob.core.windows.net")
    from .blobname import normalize_prefix
    from .errors import UnstorableNameError

    sid = validate_source_id(source_id or env.get(ENV_SOURCE_ID) or stored_source_id or default_source_id())
    try:
        pfx = normalize_prefix(prefix or env.get(ENV_PREFIX) or default_prefix(sid))
    except UnstorableNameError as exc:
        raise ConfigError(str(exc)) from None
    return StorageConfig(
        container=validate_container_name(container or env.get(ENV_CONTAINER) or DEFAULT_CONTAINER),
        table=validate_table_name(table or env.get(ENV_TABLE) or DEFAULT_TABLE),
        prefix=pfx,
        source_id=sid,
        account_url=url.rstrip("/") if url else None,
        connection_string=conn,
        table_endpoint=table_endpoint or env.get(ENV_TABLE_ENDPOINT) or None,
    )
