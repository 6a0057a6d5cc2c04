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

from sync_core.errors import ConfigError

# The environment variables the agent and the Function App read (flags win), named here only.
ENV_ACCOUNT_URL = "AZURE_STORAGE_ACCOUNT_URL"
ENV_CONNECTION_STRING = "AZURE_STORAGE_CONNECTION_STRING"
ENV_CONTAINER = "AZURE_STORAGE_CONTAINER"
ENV_TABLE = "AZURE_STORAGE_TABLE"
ENV_TABLE_ENDPOINT = "AZURE_STORAGE_TABLE_ENDPOINT"
ENV_PREFIX = "AZPHOTOSYNC_PREFIX"
ENV_SOURCE_ID = "AZPHOTOSYNC_SOURCE_ID"
ENV_STATE_DIR = "AZPHOTOSYNC_STATE_DIR"
ENV_PRICES = "AZPHOTOSYNC_PRICES"  # a storage price table of one's own (``status``)
ENV_DEEP_BUDGET = "VERIFY_DEEP_BUDGET"  # bytes a verification run re-hashes
ENV_PREFIXES = "VERIFY_PREFIXES"  # the prefixes the cloud verifies (default: all it finds)
ENV_REPORTS_CONTAINER = "VERIFY_REPORTS_CONTAINER"
ENV_RUNS_TABLE = "VERIFY_RUNS_TABLE"
ENV_THUMBNAILS_CONTAINER = "AZURE_STORAGE_THUMBNAILS_CONTAINER"  # renditions and the gallery's catalog
# The storage settings of a Function App (it has no flags): what a cached client depends on.
STORAGE_ENV = (ENV_ACCOUNT_URL, ENV_CONNECTION_STRING, ENV_CONTAINER, ENV_TABLE, ENV_TABLE_ENDPOINT)

DEFAULT_CONTAINER = "photos-archive"
DEFAULT_TABLE = "azphotosyncindex"
DEFAULT_PREFIX = "photos"
DEFAULT_THUMBNAILS_CONTAINER = "thumbnails"

_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_SOURCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

NO_CREDENTIALS_HINT = (
    f"no storage configured: set {ENV_ACCOUNT_URL} (and sign in with `az login` or run with a managed "
    f"identity), or {ENV_CONNECTION_STRING} for Azurite, or pass --emulator to try it locally"
)


def thumbnails_container_name(env: Mapping[str, str] | None = None) -> str:
    """The container of the renditions and the gallery's catalog (here, not with the renditions code: a sync
    that keeps the catalog current must not import the image libraries to learn a name)."""
    env = os.environ if env is None else env
    return env.get(ENV_THUMBNAILS_CONTAINER) or DEFAULT_THUMBNAILS_CONTAINER


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


def write_source_id_file(state_dir: Path, source_id: str) -> None:
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


_CONN_KEYS = {
    "defaultendpointsprotocol", "accountname", "accountkey", "sharedaccesssignature", "endpointsuffix",
    "blobendpoint", "tableendpoint", "queueendpoint", "fileendpoint", "dfsendpoint", "blobsecondaryendpoint",
    "tablesecondaryendpoint", "queuesecondaryendpoint", "usedevelopmentstorage", "developmentstorageproxyuri",
}  # fmt: skip


def parse_connection_string(conn: str) -> dict[str, str]:
    """``Key=value;…`` as a dict with lower-case keys; a string that is not one is a :class:`ConfigError`
    (the message never repeats the string: it holds a secret)."""
    fields: dict[str, str] = {}
    for part in conn.strip().split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in _CONN_KEYS:
            raise ConfigError(
                f"{ENV_CONNECTION_STRING} is malformed (expected Key=value pairs separated by ';', e.g. "
                "DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…): copy it again from the portal"
            )
        fields[key] = value.strip()
    dev = fields.get("usedevelopmentstorage", "").lower() == "true"
    if not dev and not (fields.get("accountkey") or fields.get("sharedaccesssignature")):
        raise ConfigError(f"{ENV_CONNECTION_STRING} has neither an AccountKey nor a SharedAccessSignature")
    if not dev and not (fields.get("blobendpoint") or fields.get("accountname")):
        raise ConfigError(f"{ENV_CONNECTION_STRING} names no blob endpoint: add AccountName or BlobEndpoint")
    return fields


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
    def credential_kind(self) -> str:
        """What the service checks: "account key", "SAS" or "identity" (a token): an error that refuses it
        must name that, not the role an identity would need."""
        if self.connection_string is None:
            return "identity"
        fields = parse_connection_string(self.connection_string)
        return "SAS" if fields.get("sharedaccesssignature") and not fields.get("accountkey") else "account key"

    def describe(self) -> str:
        """A human description with no secret in it."""
        where = self.account_url or "connection string (development)"
        return f"{where} container={self.container} prefix={self.prefix} source-id={self.source_id}"


def credential_refused(kind: str, detail: str, otherwise: str) -> str:
    """The one-line message for a request the service refused as unauthenticated or forbidden: it names the
    credential in use (``otherwise`` is the identity's message: a role to grant, a sign-in to renew)."""
    if kind == "account key":
        return (
            f"the storage account key was refused ({detail}): check AccountKey in {ENV_CONNECTION_STRING} "
            "(the portal's Access keys), or the account and endpoint it names"
        )
    if kind == "SAS":
        return (
            f"the shared access signature (SAS) was refused ({detail}): it may have expired, or lack a "
            "permission or service this needs; create a new one (services b,t; permissions r,w,l,c,a,u)"
        )
    return otherwise


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
    if conn:
        parse_connection_string(conn)
    elif url and not url.startswith("https://"):
        # A token (DefaultAzureCredential) is only ever sent over https; the SDK would refuse it mid-run.
        raise ConfigError(
            f"invalid account URL {url!r}: expected https://<account>.blob.core.windows.net (a token is only sent "
            f"over https; for Azurite use {ENV_CONNECTION_STRING} or --emulator)"
        )
    from sync_core.contracts.blobname import normalize_prefix
    from sync_core.errors import UnstorableNameError

    sid = validate_source_id(source_id or env.get(ENV_SOURCE_ID) or stored_source_id or default_source_id())
    try:
        pfx = normalize_prefix(prefix or env.get(ENV_PREFIX) or default_prefix(sid))
    except UnstorableNameError as exc:
        raise ConfigError(str(exc)) from exc
    return StorageConfig(
        container=validate_container_name(container or env.get(ENV_CONTAINER) or DEFAULT_CONTAINER),
        table=validate_table_name(table or env.get(ENV_TABLE) or DEFAULT_TABLE),
        prefix=pfx,
        source_id=sid,
        account_url=url.rstrip("/") if url else None,
        connection_string=conn,
        table_endpoint=table_endpoint or env.get(ENV_TABLE_ENDPOINT) or None,
    )
