"""Azure SDK clients, created once per run and shared by every worker.

Retries come from the SDK pipeline's retry policy (exponential backoff with jitter), not from loops of
our own. The HTTP connection pool is sized for the worker count so parallel uploads reuse connections.

Nothing waits for ever: every request has a connect and a read timeout, every retry sequence ends within
:data:`RETRY_SEQUENCE_SECONDS` (plus the attempt under way), and once the run has found the service
unreachable (:class:`~sync_core.storage.concurrency.OutageWatch`) requests are not retried at all.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry

from sync_core.config import StorageConfig, credential_refused, table_endpoint_from_blob_url
from sync_core.errors import ConfigError, first_line
from sync_core.storage.concurrency import THROTTLE
from sync_core.storage.direct_http import DirectTransport
from sync_core.storage.lean_http import CONNECT_TIMEOUT, READ_TIMEOUT, LeanAdapter, LeanSession
from sync_core.storage.sdk_internals import fast_signing

# Short first backoff with jitter: a transient fault should cost seconds, not the SDK default's ~15 s.
RETRY_TOTAL = 8
RETRY_FIRST_BACKOFF = 0.5  # seconds; doubles per retry, +-50 % jitter
RETRY_MAX_BACKOFF = 30.0  # seconds; also caps a server's Retry-After
RETRY_SEQUENCE_SECONDS = 120.0  # no retry starts after this long since the first attempt of a request


def _transport_failure(error: AzureError | None) -> bool:
    """No answer at all: the connection failed or timed out, or the answer never came."""
    return isinstance(error, (ServiceRequestError, ServiceResponseError))


def _stamp(settings: dict[str, Any]) -> dict[str, Any]:
    settings["started"] = time.monotonic()
    return settings


def _refuse_in_outage() -> None:
    """Once the run knows the service is unreachable, a new request fails at once instead of waiting."""
    if THROTTLE.unreachable():
        raise ServiceRequestError("storage is not answering: request not sent")


def _retry_allowed(settings: dict[str, Any], error: AzureError | None, *, report: bool = True) -> bool:
    """The bounds on top of the retry counts: the sequence's overall time, and a known outage. ``report``:
    count a failure without an answer towards the outage (blob requests, whose answers reset the count)."""
    if _transport_failure(error):
        assert error is not None
        if report:
            THROTTLE.on_transport_failure(error)
        if THROTTLE.unreachable():
            return False
    return time.monotonic() - settings.get("started", time.monotonic()) < RETRY_SEQUENCE_SECONDS


class BlobRetry(ExponentialRetry):
    """The storage SDK's ``ExponentialRetry`` with a capped, proportionally jittered backoff that also
    honours ``Retry-After``: the SDK's own storage policies ignore that header (azure-core's generic
    ``RetryPolicy`` reads it, the storage ones do not), so a throttled service would be asked again too soon.
    """

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        base = min(RETRY_MAX_BACKOFF, self.initial_backoff * self.increment_base ** settings["count"])
        backoff = random.uniform(0.5 * base, 1.5 * base)
        history = settings.get("history") or []
        response = history[-1].http_response if history else None
        if response is not None:
            backoff = max(backoff, _retry_after_seconds(response.headers.get("Retry-After")))
        return min(backoff, RETRY_MAX_BACKOFF)

    def send(self, request: Any) -> Any:
        _refuse_in_outage()
        return super().send(request)

    def configure_retries(self, request: Any) -> dict[str, Any]:
        return _stamp(super().configure_retries(request))

    def increment(
        self, settings: dict[str, Any], request: Any, response: Any = None, error: AzureError | None = None
    ) -> bool:
        return super().increment(settings, request, response, error) and _retry_allowed(settings, error)


class TableRetry(RetryPolicy):
    """azure-core's retry policy (with its overall ``timeout``) that also stops retrying in a known outage."""

    def send(self, request: Any) -> Any:
        _refuse_in_outage()
        return super().send(request)

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        return _stamp(super().configure_retries(options))

    def increment(self, settings: dict[str, Any], response: Any = None, error: AzureError | None = None) -> bool:
        # Not counted towards an outage: the Table's answers are not reported, so they could not reset it.
        return super().increment(settings, response, error) and _retry_allowed(settings, error, report=False)


def _retry_after_seconds(value: str | None) -> float:
    """``Retry-After`` as seconds (the service sends delta-seconds; an HTTP date is also allowed)."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def blob_retry_policy() -> ExponentialRetry:
    # Each kind of failure (connection, read, status) gets enough attempts to ride out a bad minute.
    return BlobRetry(
        initial_backoff=RETRY_FIRST_BACKOFF,  # type: ignore[arg-type]  # the SDK annotates int, uses float
        increment_base=2,
        retry_total=RETRY_TOTAL,
        random_jitter_range=0,
        retry_connect=RETRY_TOTAL,
        retry_read=RETRY_TOTAL,
        retry_status=RETRY_TOTAL,
    )


# Downloads (restore, deep verify) are read in pieces of this size, not azure-core's default 4 KiB: each
# piece costs a Python iteration and a GIL round trip, and one piece is all a download holds in memory.
# Larger pieces cost more CPU again (their allocation); docs/benchmarks.md, "Downloads".
DOWNLOAD_PIECE = 1024 * 1024


def make_transport(pool_size: int) -> DirectTransport:
    """A requests transport whose connection pool fits ``pool_size`` concurrent requests (a
    :class:`~sync_core.storage.lean_http.LeanSession`: requests' objects without its per-request bookkeeping),
    which sends our own fast paths' requests with ``http.client`` (:mod:`~sync_core.storage.direct_http`)."""
    session = LeanSession()
    verify: dict[str, Any] = {}
    if not urllib.request.getproxies():
        # With trust_env, requests re-reads the proxy variables, ~/.netrc and the CA-bundle variables on
        # every request (a sizeable share of a Put Blob's CPU: docs/benchmarks.md). Without a proxy only
        # the CA bundle can matter: read it once. (A ~/.netrc entry for the storage host would even replace
        # the SDK's own Authorization header.) With a proxy configured, requests keeps applying it and NO_PROXY
        # per request.
        session.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            verify["connection_verify"] = bundle  # azure-core passes it with every request
    adapter = LeanAdapter(pool_connections=4, pool_maxsize=max(10, pool_size))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return DirectTransport(
        pool_size=max(10, pool_size),
        session=session,
        session_owner=True,
        connection_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        connection_data_block_size=DOWNLOAD_PIECE,
        **verify,
    )


_credential: TokenCredential | None = None


def default_credential() -> TokenCredential:
    """One ``DefaultAzureCredential`` per process (it caches tokens)."""
    global _credential
    if _credential is None:
        from azure.identity import DefaultAzureCredential

        _credential = DefaultAzureCredential()
    return _credential


# The largest content sent from memory in one Put Blob: a file up to this size is read once, hashed and sent
# from that buffer (larger ones are streamed twice: hashed, then staged as blocks).
SINGLE_PUT_MAX = 8 * 1024 * 1024


def blob_service(
    cfg: StorageConfig, *, pool_size: int = 16, credential: TokenCredential | None = None, **kwargs: Any
) -> BlobServiceClient:
    """The blob service client for ``cfg``: connection string (dev) or account URL + token credential."""
    common: dict[str, Any] = {
        "retry_policy": blob_retry_policy(),
        "raw_response_hook": THROTTLE,  # every attempt's answer feeds the adaptive concurrency
        "transport": make_transport(pool_size),
        "max_single_put_size": SINGLE_PUT_MAX,
        "max_block_size": SINGLE_PUT_MAX,
        **kwargs,
    }
    with client_config_checked():
        if cfg.connection_string:
            # An account key signs every request: with our cheaper policy when this SDK passes the check
            # (the key as the SDK reads it from the string; a throwaway client, no request sent).
            key = BlobServiceClient.from_connection_string(cfg.connection_string).credential
            signing = fast_signing(key)
            return BlobServiceClient.from_connection_string(cfg.connection_string, credential=signing, **common)
        assert cfg.account_url
        return BlobServiceClient(cfg.account_url, credential=credential or default_credential(), **common)


@contextmanager
def client_config_checked() -> Iterator[None]:
    """Creating a client checks the connection string or URL (without a request); what it refuses there is
    a configuration error (exit 2), not an internal one."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(f"storage configuration not usable: {first_line(exc)}") from exc


def error_code(exc: HttpResponseError) -> str | None:
    """The service's error code: parsed by the SDK when it could read the body, else from the header every
    storage answer carries (the Table SDK leaves ``error_code`` empty on some write paths)."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("x-ms-error-code")


@contextmanager
def access_checked(
    url: str, *, missing: str, denied: str, what: str, credential: str = "identity"
) -> Iterator[None]:
    """The start-up check of a container or a table: the service's answers as one-line :class:`ConfigError`
    messages that say what to do (``missing``: 404; ``denied``: 403) for the ``credential`` in use
    (:attr:`StorageConfig.credential_kind`): a refused key or SAS is named, not a role to grant."""
    try:
        yield
    except ResourceNotFoundError as exc:
        raise ConfigError(missing) from exc
    except ClientAuthenticationError as exc:
        raise ConfigError(
            credential_refused(
                credential,
                first_line(exc),
                f"authentication failed ({first_line(exc)}): sign in again (`az login`) or check the managed "
                "identity",
            )
        ) from exc
    except HttpResponseError as exc:
        if exc.status_code == 403:
            if error_code(exc) == "AuthorizationPermissionMismatch" and credential == "account key":
                raise ConfigError(denied) from exc  # a key may do everything: this is a role refusing
            raise ConfigError(credential_refused(credential, first_line(exc), denied)) from exc
        raise ConfigError(f"cannot use {what}: {first_line(exc)}") from exc
    except AzureError as exc:  # connection refused, DNS, TLS: config problems at start-up
        raise ConfigError(f"cannot reach storage at {url}: {first_line(exc)}") from exc


def open_container(service: BlobServiceClient, cfg: StorageConfig, *, create: bool = False) -> ContainerClient:
    """Return the container client after checking the container exists (creating it only when asked)."""
    container = service.get_container_client(cfg.container)
    with access_checked(
        service.url,
        credential=cfg.credential_kind,
        what=f"container {cfg.container!r}",
        missing=f"container {cfg.container!r} does not exist: create it (az storage container create "
        f"--name {cfg.container} --auth-mode login) or pass --create-container",
        denied=f"access to container {cfg.container!r} denied: grant this identity 'Storage Blob Data "
        "Contributor' on the container",
    ):
        if create:
            try:
                container.create_container()
            except HttpResponseError as exc:
                if getattr(exc, "error_code", None) != "ContainerAlreadyExists" and exc.status_code != 409:
                    raise
        else:
            # A listing of at most one blob works with data-plane rights scoped to the container alone.
            next(iter(container.list_blobs(results_per_page=1).by_page()), None)
    return container


def table_retry_policy() -> RetryPolicy:
    """Throttling (503/500) and connection resets are retried by the pipeline, with short jittered backoff."""
    return TableRetry(
        retry_total=RETRY_TOTAL, retry_backoff_factor=0.5, retry_backoff_max=30, timeout=RETRY_SEQUENCE_SECONDS
    )


def table_service(
    cfg: StorageConfig, *, pool_size: int = 8, credential: TokenCredential | None = None, **kwargs: Any
) -> TableServiceClient:
    """The Table service client: endpoint from the connection string, from ``cfg.table_endpoint``, or
    derived from the blob account URL; same credential as the blobs."""
    common: dict[str, Any] = {"retry_policy": table_retry_policy(), "transport": make_transport(pool_size), **kwargs}
    with client_config_checked():
        if cfg.connection_string:
            return TableServiceClient.from_connection_string(cfg.connection_string, **common)
        assert cfg.account_url
        endpoint = cfg.table_endpoint or table_endpoint_from_blob_url(cfg.account_url)
        return TableServiceClient(endpoint, credential=credential or default_credential(), **common)


@dataclass
class ArchiveClients:
    """The blob and Table service clients of one archive, made once and shared by every worker of a run,
    and the data container and index table they reach (the verifier and the renditions run each hold one)."""

    cfg: StorageConfig
    pool_size: int = 16
    blobs: BlobServiceClient = field(init=False)
    tables: TableServiceClient = field(init=False)

    def __post_init__(self) -> None:
        self.blobs = blob_service(self.cfg, pool_size=self.pool_size)
        self.tables = table_service(self.cfg, pool_size=self.pool_size)

    @property
    def container(self) -> ContainerClient:
        return self.blobs.get_container_client(self.cfg.container)

    @property
    def table(self) -> TableClient:
        return self.tables.get_table_client(self.cfg.table)
