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
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
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
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from sync_core.storage.direct_http import DIRECT, DirectTransport

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
