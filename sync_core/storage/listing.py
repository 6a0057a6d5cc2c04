"""Blob listings for verification: every page of ``<prefix>…`` as plain :class:`BlobEntry` values.

Verification lists the whole container on every run, so the client's cost per listed blob matters as
much as the service's. The SDK's ``list_blobs`` turns each List Blobs page into generated models and then
into ``BlobProperties`` with a generic, reflective deserializer, which costs more CPU than the service spends
producing the page, and holds the GIL (figures in ``docs/benchmarks.md``). We send the same List Blobs request
through the container client's own pipeline (reached through :mod:`~sync_core.storage.sdk_internals`) — its
credential, retry policy, throttle hook and connection pool all apply — and read the fields we use
straight from the XML with ElementTree. If this SDK version keeps the pipeline elsewhere, the public
``list_blobs`` is used instead; tests check both give the same entries.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import unquote

from azure.core.exceptions import HttpResponseError, IncompleteReadError, ResourceNotFoundError, ServiceResponseError
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobProperties, ContainerClient

from sync_core.storage.sdk_internals import Send, blob_sender

LISTING_PAGE = 5000  # the service maximum


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """What one listing entry (or a properties call) tells us about a blob."""

    name: str
    size: int
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_text: str = ""  # RFC 1123, parsed only when needed (orphans are rare)
    created_at: datetime | None = None
    tier: str = ""  # the access tier as listed (empty: the account default, Hot)
    archive_status: str = ""  # e.g. ``rehydrate-pending-to-hot`` while an archived blob is coming back

    @classmethod
    def of(cls, props: BlobProperties) -> BlobEntry:
        return cls(
            props.name,
            int(props.size),
            props.etag,
            props.metadata or {},
            created_at=props.creation_time,
            tier=str(getattr(props.blob_tier, "value", props.blob_tier) or ""),
            archive_status=str(props.archive_status or ""),
        )

    @property
    def created(self) -> datetime | None:
        if self.created_at is not None:
            return self.created_at
        try:
            return parsedate_to_datetime(self.created_text) if self.created_text else None
        except (TypeError, ValueError):
            return None


def list_pages(
    container: ContainerClient, prefix: str, *, metadata: bool, page_size: int = LISTING_PAGE
) -> Iterator[list[BlobEntry]]:
    """Pages of committed blobs whose name starts with ``prefix``, in name order."""
    send = blob_sender(container)
    if send is None:
        yield from _sdk_pages(container, prefix, metadata=metadata, page_size=page_size)
        return
    marker = ""
    while True:
        params = {"restype": "container", "comp": "list", "prefix": prefix, "maxresults": str(page_size)}
        if metadata:
            params["include"] = "metadata"
        if marker:
            params["marker"] = marker
        headers = {"x-ms-version": container.api_version}
        response = read_page(send, partial(HttpRequest, "GET", container.url, params=params, headers=headers))
        if response.status_code != 200:
            error = ResourceNotFoundError if response.status_code == 404 else HttpResponseError
            raise error(message=_error_message(response), response=response)
        page, marker = parse_page(response.content)
        yield page
        if not marker:
            return


def read_page(send: Send, make_request: Callable[[], HttpRequest]) -> Any:
    """Send one page request through a client's pipeline (``send``) and read its whole body.

    ``stream=True``: the pipeline's content-decode step would otherwise also parse the body (a full XML
    tree, or a JSON document) that the caller parses its own way. The pipeline retries the request up to
    its headers; a body cut off after them is asked for once more here (a page is idempotent), as the SDK
    does for its own streamed downloads."""
    for attempt in (1, 2):
        response = send(make_request(), stream=True)
        try:
            response.read()
            return response
        except (ServiceResponseError, IncompleteReadError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def parse_page(body: bytes) -> tuple[list[BlobEntry], str]:
    """One List Blobs response body: its entries and the next marker (empty at the end).

    Parsed incrementally, each ``<Blob>`` dropped once read: a full tree of a 5,000-blob page costs
    ~20 MB, several times the body itself."""
    out: list[BlobEntry] = []
    marker = ""
    parser = ET.XMLPullParser(events=("start", "end"))
    blobs: ET.Element | None = None
    view = memoryview(body)
    for i in range(0, len(body) + 1, 256 * 1024):
        if i < len(body):
            parser.feed(view[i : i + 256 * 1024])
        else:
            parser.close()
        for event, el in parser.read_events():
            if event == "start":
                if el.tag == "Blobs":
                    blobs = el
                continue
            if el.tag == "Blob":
                entry = _entry(el)
                if entry is not None:
                    out.append(entry)
                if blobs is not None:
                    blobs.remove(el)
            elif el.tag == "NextMarker":
                marker = el.text or ""
    return out, marker


def _entry(blob: ET.Element) -> BlobEntry | None:
    name_el = blob.find("Name")
    name = (name_el.text or "") if name_el is not None else ""
    if name_el is not None and name_el.get("Encoded") == "true":  # names with characters XML cannot carry
        name = unquote(name, errors="surrogateescape")
    props = blob.find("Properties")
    if props is None:
        return None
    md_el = blob.find("Metadata")
    return BlobEntry(
        name=name,
        size=int(props.findtext("Content-Length") or 0),
        etag=props.findtext("Etag") or "",
        metadata={child.tag: child.text or "" for child in md_el} if md_el is not None and len(md_el) else {},
        created_text=props.findtext("Creation-Time") or "",
        tier=props.findtext("AccessTier") or "",
        archive_status=props.findtext("ArchiveStatus") or "",
    )


def _sdk_pages(container: ContainerClient, prefix: str, *, metadata: bool, page_size: int) -> Iterator[list[BlobEntry]]:
    include = ["metadata"] if metadata else None
    for page in container.list_blobs(name_starts_with=prefix, include=include, results_per_page=page_size).by_page():
        yield [BlobEntry.of(p) for p in page]


def _error_message(response: Any) -> str:
    try:
        code = ET.fromstring(response.content).findtext("Code") or ""
    except ET.ParseError:
        code = ""
    return f"listing blobs failed: HTTP {response.status_code} {code}".rstrip()
