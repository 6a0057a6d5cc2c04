"""The one door to the Azure SDKs' private names: nothing else in the project may touch them.

The fast paths (:mod:`~sync_core.storage.put_blob`, :mod:`~sync_core.storage.download`,
:mod:`~sync_core.storage.listing`, :mod:`~sync_core.index.table_query`, :mod:`~sync_core.index.table_batch`)
send their own requests through a client's own pipeline, so its credential, retry policy, throttle hook and
connection pool all apply, and raise what the SDK would by handing a failed response to the SDK's own error
mapping. Neither the pipeline's place (``client._client._client``) nor the error mappings are public API, so
a new SDK release may move them.

Whether this SDK keeps them where we look is decided once, here at import, on throwaway clients (no request
is sent). When it does not, the accessors below answer ``None`` and every caller takes its public-API
fallback (``upload_blob``, ``download_blob``, ``list_blobs``, ``query_entities``, ``submit_transaction``);
tests check that the fast path and the fallback give the same result. pyproject.toml caps the SDK majors, so
a breaking layout needs a deliberate upgrade.

A sender asks for :class:`~sync_core.storage.direct_http.DirectTransport`'s direct path only when the client's
pipeline ends in one (seen through the SDKs' ``TransportWrapper``, which passes the keyword on): any other
transport would hand the unknown keyword to requests, which refuses it.

A client built with an account key signs its requests with :class:`FastSharedKeyPolicy` (the SDK's
``SharedKeyCredentialPolicy`` with :mod:`~sync_core.storage.signing`'s cheaper string to sign), handed to the
SDK as the credential: its ``_create_pipeline`` takes a ``SharedKeyCredentialPolicy`` as the pipeline's own
credential policy, and the clients a service client derives get it with the credential. At import, on
throwaway clients and requests (none sent), the policy must sign exactly as the SDK's own and land in the
pipelines; otherwise :func:`fast_signing` answers ``None`` and the SDK's policy signs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import cmp_to_key, partial
from typing import Any, NoReturn

from azure.core.credentials import AzureSasCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    StreamClosedError,
    StreamConsumedError,
    map_error,
)
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from azure.core.utils import CaseInsensitiveDict
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from sync_core.storage.direct_http import DIRECT, DirectTransport
from sync_core.storage.signing import HeaderOrder, decode_key, signature, split_headers, split_url

Send = Callable[..., Any]  # PipelineClient.send_request(request, *, stream=False)

try:  # the SDK's own error mapping, so a failed get or put raises exactly what download_blob or upload_blob raises
    from azure.storage.blob._shared.response_handlers import process_storage_error
except ImportError:  # pragma: no cover - another SDK layout: the fallback is used
    process_storage_error = None  # type: ignore[assignment]

try:  # a create-only put's 412 as upload_blob reports it
    from azure.storage.blob._upload_helpers import _convert_mod_error
except ImportError:  # pragma: no cover - another SDK layout: the fallback is used
    _convert_mod_error = None  # type: ignore[assignment]

try:  # the SDK's own error mapping, so a failed page raises exactly what query_entities raises
    from azure.data.tables._error import _process_table_error
except ImportError:  # pragma: no cover - another SDK layout: the fallback is used
    _process_table_error = None

try:  # the SDK's shared-key signing: the policy we refine, its header collation (to check ours against)
    from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy as _SharedKeyPolicy
    from azure.storage.blob._shared.authentication import compare as _sdk_compare
    from azure.storage.blob._shared.authentication import table_lv0 as _primary
    from azure.storage.blob._shared.authentication import table_lv4 as _secondary
except ImportError:  # pragma: no cover - another SDK layout: the SDK's policy signs
    _SharedKeyPolicy = None  # type: ignore[assignment,misc]

try:  # the SDK's policy canonicalizes the resource differently on aiohttp (yarl's URL)
    from azure.core.pipeline.transport import AioHttpTransport as _AioHttp
except ImportError:  # pragma: no cover - no aiohttp
    _AioHttp = None  # type: ignore[assignment,misc]

# The inner clients' wrappers around a shared transport: they hand ``send``'s keywords on unchanged.
_WRAPPERS: tuple[type, ...] = ()
try:
    from azure.storage.blob._shared.base_client import TransportWrapper as _BlobWrapper

    _WRAPPERS += (_BlobWrapper,)
except ImportError:  # pragma: no cover - another SDK layout: requests' path
    pass
try:
    from azure.data.tables._base_client import TransportWrapper as _TableWrapper

    _WRAPPERS += (_TableWrapper,)
except ImportError:  # pragma: no cover - another SDK layout: requests' path
    pass

# What the generated operations (``BlockBlobOperations.upload``, ``TableOperations.query_entities``) map before
# the storage error handling.
_ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}


def _sender(client: Any) -> Send | None:
    """``client``'s ``send_request``, asking for the direct path when its transport is ours."""
    send = getattr(getattr(getattr(client, "_client", None), "_client", None), "send_request", None)
    if not callable(send):
        return None
    return partial(send, **{DIRECT: True}) if isinstance(transport_of(client), DirectTransport) else send


def transport_of(client: Any) -> Any:
    """The transport at the end of ``client``'s pipeline, unwrapped (``None`` if it is not where we look)."""
    pipeline = getattr(getattr(getattr(client, "_client", None), "_client", None), "_pipeline", None)
    transport = getattr(pipeline, "_transport", None)
    while _WRAPPERS and isinstance(transport, _WRAPPERS):
        transport = getattr(transport, "_transport", None)
    return transport


def _put_size(container: Any) -> int:
    try:
        return int(getattr(getattr(container, "_config", None), "max_single_put_size", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _probe_blob() -> bool:
    try:
        probe = ContainerClient.from_container_url("https://probe.blob.core.windows.net/probe")
    except Exception:  # pragma: no cover - another SDK: take the public API
        return False
    return _sender(probe) is not None and _put_size(probe) > 0


def _probe_table() -> bool:
    try:
        probe = TableClient("https://probe.table.core.windows.net", "probe", credential=AzureSasCredential("sv=0"))
    except Exception:  # pragma: no cover - another SDK: take the public API
        return False
    return _sender(probe) is not None


# Decided once, at import. Tests set them to False to run the public-API fallbacks.
BLOB_PIPELINE: bool = _probe_blob()  # a ContainerClient's pipeline and single-put size are where we read them
BLOB_PUT_ERRORS: bool = process_storage_error is not None and _convert_mod_error is not None
BLOB_GET_ERRORS: bool = process_storage_error is not None
TABLE_PIPELINE: bool = _probe_table()  # a TableClient's pipeline is where we read it
TABLE_ERRORS: bool = _process_table_error is not None


def _store(headers: Any) -> Any:
    """azure-core's own ``{lower-cased name: (name, value)}`` behind a ``CaseInsensitiveDict``, or ``None``."""
    return getattr(headers, "_store", None) if type(headers) is CaseInsensitiveDict else None


def _store_probe() -> bool:
    headers = CaseInsensitiveDict({"X-Ms-A": "1", "b": ""})
    headers["x-ms-a"] = "2"
    store = _store(headers)
    return type(store) is dict and [(k, (n, v)) for k, (n, v) in store.items()] == [
        (n.lower(), (n, v)) for n, v in headers.items()
    ]


# Whether a CaseInsensitiveDict's headers can be read from its store (C-speed) rather than through its items().
HEADER_STORE: bool = _store_probe()


def header_entries(headers: Any) -> Any:
    """``headers`` as ``(lower-cased name, (name, value))`` pairs, from their store when we can read it."""
    store = _store(headers) if HEADER_STORE else None
    if type(store) is dict:
        return store.items()
    return [(name.lower(), (name, value)) for name, value in headers.items()]


def _on_aiohttp(transport: Any) -> bool:
    """The SDK's test for its aiohttp path: the transport, or one or two wrappers around it, is aiohttp's."""
    for _ in range(3):
        if _AioHttp is not None and isinstance(transport, _AioHttp):
            return True
        transport = getattr(transport, "_transport", None)
    return False


_PolicyBase: Any = _SharedKeyPolicy if _SharedKeyPolicy is not None else object


class FastSharedKeyPolicy(_PolicyBase):
    """The SDK's ``SharedKeyCredentialPolicy`` signing the same string with less CPU: one pass over the
    headers and one URL parse, the ``x-ms-*`` headers ordered by cached sort keys instead of a comparison
    function, the account key decoded once. Whatever the fast path cannot reproduce for certain (repeated or
    non-ASCII ``x-ms-*`` names, aiohttp's resource, a key that does not decode) is left to the SDK's own
    methods, so failures raise as the SDK raises (``AzureSigningError`` for a bad key)."""

    def __init__(self, account_name: str, account_key: str, order: HeaderOrder) -> None:
        super().__init__(account_name, account_key)
        self._order = order
        self._decoded: tuple[object, bytes] = (None, b"")  # (the account_key it came from, its bytes)

    def _key_bytes(self) -> bytes:
        source, key = self._decoded
        if source is not self.account_key:  # first use, or account_key replaced
            key = decode_key(self.account_key)
            self._decoded = (self.account_key, key)
        return key

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if _on_aiohttp(request.context.transport):
            super().on_request(request)
            return
        http = request.http_request
        standard, ms = split_headers(header_entries(http.headers))
        headers = self._order.canonical_headers(ms)
        if headers is None:
            headers = self._get_canonicalized_headers(request)
        path, query = split_url(http.url)
        text = http.method + "\n" + standard + headers + "/" + self.account_name + path + query
        try:
            signed = signature(self._key_bytes(), text)
        except Exception:
            self._add_authorization_header(request, text)  # the SDK's: raises its AzureSigningError
            return
        http.headers["Authorization"] = "SharedKey " + self.account_name + ":" + signed


# Names whose order exercises every branch of the collation: zero-weight characters at either level, prefixes,
# digits, punctuation, and the secondary weights of ' and -.
_PROBE_NAMES = [
    "x-ms-date", "x-ms-version", "x-ms-blob-type", "x-ms-blob-content-type", "x-ms-client-request-id",
    "x-ms-meta-", "x-ms-meta-a", "x-ms-meta-a-", "x-ms-meta-a-b", "x-ms-meta-a--b", "x-ms-meta-ab", "x-ms-meta-a_b",
    "x-ms-meta-a'b", "x-ms-meta-a'", "x-ms-meta-a1", "x-ms-meta-a10", "x-ms-meta-a9", "x-ms-meta-z", "x-ms-meta-~",
    "x-ms-meta-!", "x-ms-meta-a.b", "x-ms-meta-a+b", "x-ms-meta-a|b", "x-ms-meta-a^b", "x-ms-meta-a`b", "x-msmeta",
]  # fmt: skip
_PROBE_KEY = "cHJvYmUga2V5IG9mIHRoZSBzaWduaW5nIGNoZWNr"


def _probe_requests() -> list[HttpRequest]:
    put = {name: str(i) for i, name in enumerate(_PROBE_NAMES)}
    put |= {"Content-Length": "3", "Content-Type": "image/jpeg", "If-None-Match": "*", "X-MS-Upper": "not signed"}
    get = {"x-ms-range": "bytes=0-9", "Range": "bytes=0-9", "If-Match": '"0x1"', "Content-Length": "0"}
    url = "https://probe.blob.core.windows.net/c"
    return [
        HttpRequest("PUT", url + "/a%20b/%C3%A9.jpg?sv=2024&sig=a%2Bb%3D", headers=put),
        HttpRequest("GET", url + "?restype=container&comp=list&Prefix=p%2F", headers=get),
    ]


def _signs_with(client: Any, policy: object) -> bool:
    policies = getattr(getattr(client, "_pipeline", None), "_impl_policies", None) or []
    return client.credential is policy and any(getattr(p, "_policy", None) is policy for p in policies)


def _probe_signing() -> HeaderOrder | None:
    """The header order when our policy signs exactly as the SDK's and a client built with it as its credential
    (and the clients it derives) sign with it; ``None`` otherwise."""
    if _SharedKeyPolicy is None:  # pragma: no cover - another SDK layout
        return None
    try:
        order = HeaderOrder(_primary, _secondary)
        if sorted(_PROBE_NAMES, key=order.key) != sorted(_PROBE_NAMES, key=cmp_to_key(_sdk_compare)):
            return None
        ours, theirs = FastSharedKeyPolicy("probe", _PROBE_KEY, order), _SharedKeyPolicy("probe", _PROBE_KEY)
        for http in _probe_requests():
            request = PipelineRequest(http, PipelineContext(None))
            theirs.on_request(request)
            expected = http.headers.pop("Authorization")
            ours.on_request(request)
            if http.headers.get("Authorization") != expected:
                return None
        service = BlobServiceClient("https://probe.blob.core.windows.net", credential=ours)
        container = service.get_container_client("c")
        clients = (service, container, container.get_blob_client("b"), service.get_blob_client("c", "b"))
        return order if all(_signs_with(client, ours) for client in clients) else None
    except Exception:  # pragma: no cover - another SDK: its own policy signs
        return None


_ORDER: HeaderOrder | None = _probe_signing()
FAST_SIGNING: bool = _ORDER is not None  # our policy signs as the SDK's and reaches every derived client


def fast_signing(credential: object) -> Any | None:
    """A :class:`FastSharedKeyPolicy` to pass as ``credential`` instead of ``credential``, the SDK's own
    shared-key policy (what a client from a connection string with an account key holds), or ``None``: any
    other credential (a SAS, a token), or this SDK failed the check at import."""
    if not FAST_SIGNING or _ORDER is None or type(credential) is not _SharedKeyPolicy:
        return None
    return FastSharedKeyPolicy(credential.account_name, credential.account_key, _ORDER)  # type: ignore[attr-defined]


def blob_sender(container: ContainerClient) -> Send | None:
    """``send_request`` of ``container``'s own pipeline, or ``None`` (use the public API)."""
    return _sender(container) if BLOB_PIPELINE else None


def put_blob_parts(container: ContainerClient) -> tuple[Send, int] | None:
    """The pipeline and the single-put size (larger bodies the SDK splits into blocks) for a direct Put Blob
    that fails as ``upload_blob`` fails, or ``None`` (use ``upload_blob``)."""
    if not BLOB_PUT_ERRORS:
        return None
    send = blob_sender(container)
    size = _put_size(container)
    return (send, size) if send is not None and size > 0 else None


def get_blob_sender(container: ContainerClient) -> Send | None:
    """The pipeline for a direct Get Blob that fails as ``download_blob`` fails, or ``None`` (use
    ``download_blob``)."""
    return blob_sender(container) if BLOB_GET_ERRORS else None


def table_sender(table: TableClient) -> Send | None:
    """``send_request`` of ``table``'s own pipeline, or ``None`` (use the public API)."""
    return _sender(table) if TABLE_PIPELINE else None


def table_query_sender(table: TableClient) -> Send | None:
    """The pipeline for a direct Query Entities that fails as ``query_entities`` fails, or ``None``."""
    return table_sender(table) if TABLE_ERRORS else None


def raise_put_blob_error(response: Any) -> NoReturn:
    """What ``upload_blob(overwrite=False)`` raises for ``response``: the generated operation's ``map_error`` +
    ``HttpResponseError``, then ``process_storage_error`` with the 412-to-``ResourceExistsError`` conversion of
    a create-only put. Only called when :func:`put_blob_parts` gave a sender."""
    assert process_storage_error is not None and _convert_mod_error is not None
    storage_error, convert = process_storage_error, _convert_mod_error

    def process(error: HttpResponseError) -> None:
        try:
            storage_error(error)
        except ResourceModifiedError as mod_error:
            convert(mod_error)
            raise

    _raise_mapped(response, process)


def raise_get_blob_error(response: Any) -> NoReturn:
    """What ``download_blob`` raises for a failed first answer ``response`` (a streamed one: its error body
    is read here, as the generated operation reads it): the generated operation's ``map_error`` +
    ``HttpResponseError``, then ``process_storage_error``. Only called when :func:`get_blob_sender` gave a
    sender."""
    assert process_storage_error is not None
    with contextlib.suppress(StreamConsumedError, StreamClosedError):
        response.read()
    _raise_mapped(response, process_storage_error)


def raise_table_query_error(response: Any) -> NoReturn:
    """What the generated ``query_entities`` and the SDK's paged iterator raise for ``response``. Only called
    when :func:`table_query_sender` gave a sender."""
    assert _process_table_error is not None
    _raise_mapped(response, _process_table_error)


def _raise_mapped(response: Any, process: Callable[[HttpResponseError], object]) -> NoReturn:
    """The generated operations' error path: ``map_error`` + ``HttpResponseError``, then the SDK's own
    processing of it (``process``), which always raises."""
    try:
        map_error(status_code=response.status_code, response=response, error_map=_ERROR_MAP)
        raise HttpResponseError(response=response)
    except HttpResponseError as error:
        process(error)
    raise AssertionError("unreachable")  # the SDK's error processing always raises
