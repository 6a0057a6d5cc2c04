"""sync_core.storage.listing: the direct List Blobs reader gives exactly what the SDK's list_blobs gives (Azurite)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from sync_core.storage import listing
from sync_core.storage.listing import BlobEntry, list_pages, parse_page

NAMES = [
    "p/00/a b/c.jpg",
    "p/00/ünïcødé/Ωmega.heic",
    "p/01/100%/x&y<z>.jpg",
    "p/01/emoji/📷.jpg",
    "p/02/" + "long/" * 150 + "end.jpg",
    "p/02/quote'\"/x.jpg",
    "q/outside.jpg",
]


@pytest.fixture
def filled(container: ContainerClient) -> ContainerClient:
    for i, name in enumerate(NAMES):
        container.get_blob_client(name).upload_blob(b"x" * (i + 1), metadata={"sha256": f"{i:064x}", "Other": "v"})
    return container


def _sdk(container: ContainerClient, prefix: str, metadata: bool, page_size: int) -> list[list[BlobEntry]]:
    return list(listing._sdk_pages(container, prefix, metadata=metadata, page_size=page_size))


@pytest.mark.parametrize("metadata", [True, False])
def test_direct_pages_equal_the_sdk_listing(filled: ContainerClient, metadata: bool):
    direct = list(list_pages(filled, "p/", metadata=metadata, page_size=2))
    sdk = _sdk(filled, "p/", metadata, 2)
    assert [len(p) for p in direct] == [2, 2, 2] == [len(p) for p in sdk]  # markers followed to the end
    flat = [e for p in direct for e in p]
    assert [e.name for e in flat] == sorted(NAMES[:-1]) == [e.name for p in sdk for e in p]
    for mine, theirs in zip(flat, (e for p in sdk for e in p), strict=True):
        assert (mine.name, mine.size, mine.etag) == (theirs.name, theirs.size, theirs.etag)
        assert dict(mine.metadata) == dict(theirs.metadata)
        assert mine.created == theirs.created and mine.created is not None
    assert all(bool(e.metadata) is metadata for e in flat)
    assert flat[0].size == NAMES.index(flat[0].name) + 1


def test_an_empty_prefix_is_one_empty_page(filled: ContainerClient):
    assert list(list_pages(filled, "nothing/", metadata=True)) == [[]]


def test_a_missing_container_raises_not_found(container: ContainerClient):
    missing = ContainerClient.from_container_url(container.url + "-missing", credential=container.credential)
    with pytest.raises(ResourceNotFoundError, match="404"):
        next(iter(list_pages(missing, "", metadata=False)))


def test_encoded_names_are_decoded():
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs>'
        b'<Blob><Name Encoded="true">p%2F00%2Fa%01b.jpg</Name><Properties><Content-Length>3</Content-Length>'
        b"<Etag>0x1</Etag><Creation-Time>Wed, 25 Nov 2026 15:49:29 GMT</Creation-Time></Properties></Blob>"
        b"<Blob><Name>p/00/plain.jpg</Name><Properties><Content-Length>0</Content-Length><Etag>0x2</Etag>"
        b"</Properties><Metadata><sha256>ab</sha256></Metadata></Blob>"
        b"</Blobs><NextMarker>m2</NextMarker></EnumerationResults>"
    )
    page, marker = parse_page(body)
    assert marker == "m2"
    assert page[0].name == "p/00/a\x01b.jpg" and page[0].size == 3 and page[0].etag == "0x1"
    assert page[0].created is not None and page[0].created.year == 2026 and page[0].metadata == {}
    assert page[1] == BlobEntry("p/00/plain.jpg", 0, "0x2", {"sha256": "ab"})
    assert page[1].created is None
