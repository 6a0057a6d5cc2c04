"""Create-only Put Blob from memory, sent through the container client's own pipeline.

A 1 KiB file costs one Put Blob, and the SDK's ``upload_blob`` spends more client CPU on it than the
request itself needs: a ``BlobClient`` built per name, the upload option helpers, the generated
operation's serializer and its response deserializer (``docs/benchmarks.md``: 1.2 ms of CPU per put,
about half of what the agent spends per tiny file, and on 2 cores taken from the service). We send the
same request — same URL quoting, same headers, ``If-None-Match: *`` — as an ``HttpRequest`` through the
container client's pipeline, as :mod:`sync_core.storage.listing` does for List Blobs: its credential, retry
policy, throttle hook (``raw_response_hook``) and connection pool all apply. A failed put raises the
exception the SDK would (same class, message and ``error_code``), by handing the response to the SDK's
own error mapping. If the client lacks the internals we rely on (another SDK version), :func:`put_sender`
returns ``None`` and the caller uses ``upload_blob``; tests check both give the same blob.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
    map_error,
)
from azure.core.rest import HttpRequest
from azure.storage.blob import ContainerClient

try:  # the SDK's own error mapping, so a failed put raises exactly what upload_blob raises
    from azure.storage.blob._shared.response_handlers import process_storage_error
    from azure.storage.blob._upload_helpers import _convert_mod_error
except ImportError:  # pragma: no cover - another SDK layout: put_sender() returns None
    process_storage_error = None  # type: ignore[assignment]
    _convert_mod_error = None  # type: ignore[assignment]

# What the generated ``BlockBlobOperations.upload`` maps before the storage error handling.
_ERROR_MAP: dict[int, type[HttpResponseError]] = {
    401: ClientAuthenticationError,
    404: ResourceNotFoundError,
    409: ResourceExistsError,
    304: ResourceNotModifiedError,
}


class PutBlob:
    """Sends create-only Put Blob requests for one container. Thread-safe (holds no per-request state)."""

    def __init__(self, container: ContainerClient, send: Callable[..., Any]):
        self._send = send
        base, sep, query = container.url.partition("?")
        self._prefix = base + "/"
        self._query = sep + query
        self._version = container.api_version
        # Larger bodies the SDK would split into blocks: those stay with upload_blob.
        self.max_size = int(getattr(getattr(container, "_config", None), "max_single_put_size", 0) or 0)

    def url(self, name: str) -> str:
        """The URL the SDK's ``BlobClient`` uses (its quoting, ``quote(name, safe='~/')``; a SAS kept last)."""
        return f"{self._prefix}{quote(name, safe='~/')}{self._query}"

    def put(self, name: str, data: bytes, metadata: Mapping[str, str], content_type: str | None) -> str:
        """Create ``name`` holding ``data``; the new blob's ETag (quoted, as the service sends it).

        Raises what ``upload_blob(data, overwrite=False, ...)`` raises: ``ResourceExistsError`` when the
        name exists (409, or 412 on the ``If-None-Match``), other ``HttpResponseError``/``AzureError``s."""
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "Content-Length": str(len(data)),
            "If-None-Match": "*",
            "x-ms-version": self._version,
            "Content-Type": "application/octet-stream",
            "Accept": "application/xml",
        }
        if content_type is not None:
            headers["x-ms-blob-content-type"] = content_type
        for key, value in metadata.items():  # as the SDK's add_metadata_headers
            headers[f"x-ms-meta-{key.strip()}"] = value.strip() if value else value
        response = self._send(HttpRequest("PUT", self.url(name), headers=headers, content=data))
        if response.status_code != 201:
            _raise_sdk_error(response)
        return str(response.headers.get("ETag") or "")


def _raise_sdk_error(response: Any) -> NoReturn:
    """The generated operation's ``map_error`` + ``HttpResponseError``, then ``upload_block_blob``'s
    ``process_storage_error`` with the 412-to-``ResourceExistsError`` conversion of a create-only put."""
    try:
        map_error(status_code=response.status_code, response=response, error_map=_ERROR_MAP)
        raise HttpResponseError(response=response)
    except HttpResponseError as error:
        try:
            process_storage_error(error)
        except ResourceModifiedError as mod_error:
            _convert_mod_error(mod_error)
            raise
    raise AssertionError("unreachable")  # process_storage_error always raises


def put_sender(container: ContainerClient) -> PutBlob | None:
    """A :class:`PutBlob` for ``container``, or ``None`` when its pipeline or the SDK's error mapping is not
    where this SDK version keeps them (then ``upload_blob`` is the way)."""
    client = getattr(getattr(container, "_client", None), "_client", None)
    send = getattr(client, "send_request", None)
    if not callable(send) or process_storage_error is None or _convert_mod_error is None:
        return None
    try:
        sender = PutBlob(container, send)
    except (AttributeError, TypeError):
        return None
    return sender if sender.max_size > 0 else None
