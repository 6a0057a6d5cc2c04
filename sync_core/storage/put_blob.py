"""Create-only Put Blob from memory, sent through the container client's own pipeline.

A 1 KiB file costs one Put Blob, and the SDK's ``upload_blob`` spends more client CPU on it than the
request itself needs: a ``BlobClient`` built per name, the upload option helpers, the generated
operation's serializer and its response deserializer: about half of what the agent spends per tiny file
(figures in ``docs/benchmarks.md``). We send the
same request — same URL quoting, same headers, ``If-None-Match: *`` — as an ``HttpRequest`` through the
container client's pipeline, as :mod:`sync_core.storage.listing` does for List Blobs: its credential, retry
policy, throttle hook (``raw_response_hook``) and connection pool all apply. A failed put raises the
exception the SDK would (same class, message and ``error_code``), by handing the response to the SDK's
own error mapping (both reached through :mod:`~sync_core.storage.sdk_internals`). If this SDK version keeps
them elsewhere, :func:`put_sender` returns ``None`` and the caller uses ``upload_blob``; tests check both give
the same blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from azure.core.rest import HttpRequest
from azure.storage.blob import ContainerClient

from sync_core.storage.sdk_internals import Send, put_blob_parts, raise_put_blob_error


class PutBlob:
    """Sends create-only Put Blob requests for one container. Thread-safe (holds no per-request state)."""

    def __init__(self, container: ContainerClient, send: Send, max_size: int):
        self._send = send
        base, sep, query = container.url.partition("?")
        self._prefix = base + "/"
        self._query = sep + query
        self._version = container.api_version
        self.max_size = max_size  # larger bodies the SDK would split into blocks: those stay with upload_blob

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
            raise_put_blob_error(response)
        return str(response.headers.get("ETag") or "")


def put_sender(container: ContainerClient) -> PutBlob | None:
    """A :class:`PutBlob` for ``container``, or ``None`` when this SDK does not keep the client's pipeline or
    its error mapping where :mod:`~sync_core.storage.sdk_internals` looks (then ``upload_blob`` is the way)."""
    parts = put_blob_parts(container)
    if parts is None:
        return None
    try:
        return PutBlob(container, *parts)
    except (AttributeError, TypeError):
        return None
