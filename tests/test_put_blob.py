"""sync_core.storage.put_blob: the direct Put Blob gives exactly what the SDK's upload_blob gives (real Azurite).

Same URL for hostile names, same stored blob (properties, metadata, bytes), create-only, the same exception
for a failed put, and the client's pipeline still in the way: retry policy and throttle hook."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.rest import HttpRequest
from azure.storage.blob import ContainerClient, ContentSettings, generate_container_sas

from agent.emulator import ACCOUNT, ACCOUNT_KEY, Azurite
from sync_core.config import StorageConfig
from sync_core.contracts.blobmeta import BlobMeta, build_metadata
from sync_core.storage import put_blob, sdk_internals
from sync_core.storage.clients import blob_service, open_container
from sync_core.storage.concurrency import THROTTLE
from sync_core.sync.transfer import BlobConflictError, Transfer

from .conftest import container_via
from .faultproxy import FaultPlan, FaultProxy

NAMES = [
    "a b/c d.jpg",
    unicodedata.normalize("NFC", "café/Été.jpg"),
    unicodedata.normalize("NFD", "café/Été.jpg"),  # a different name with a look-alike spelling
    "hash#/x#y.jpg",
    "100%/50%25 off.jpg",  # a literal "%25" must not be decoded by anyone
    "what?/really?.jpg",
    "plus+/a+b.jpg",
    "amp&eq=/a&b=c;d.jpg",
    "semi;colon/x;y.jpg",
    "tilde~/x~y.jpg",
    "quote'\"/<x>.jpg",
    "emoji/📷 ünïcødé Ωmega.heic",
    "comma,at@dollar$/x!(1)*.jpg",
]


def _meta(data: bytes, rel: str = "a.jpg") -> BlobMeta:
    return BlobMeta(hashlib.sha256(data).hexdigest(), rel, len(data), 1_700_000_000_123_456_789, "host one")


def _sdk_transfer(container: ContainerClient) -> Transfer:
    """Today's way: ``upload_blob`` (also what runs when the SDK lacks the internals we rely on)."""
    t = Transfer(container)
    t._put = None
    return t



@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(azurite.blob_port) as p:
        yield p



def _error(exc: BaseException) -> tuple[Any, ...]:
    return type(exc), getattr(exc, "status_code", None), getattr(exc, "error_code", None), str(exc).splitlines()[0]


# -- URL and stored blob ----------------------------------------------------------------------------------
def test_urls_are_the_sdk_blob_urls(client: ContainerClient, azurite: Azurite):
    sender = put_blob.put_sender(client)
    assert sender is not None
    for name in NAMES:
        assert sender.url(name) == client.get_blob_client(name).url, name
    # A SAS in the container URL stays at the end, after the quoted name, and is what authorises the put.
    sas = generate_container_sas(
        ACCOUNT,
        client.container_name,
        account_key=ACCOUNT_KEY,
        permission="rcw",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    with_sas = ContainerClient.from_container_url(f"{client.url}?{sas}")
    sas_sender = put_blob.put_sender(with_sas)
    assert sas_sender is not None
    for name in NAMES:
        assert sas_sender.url(name) == with_sas.get_blob_client(name).url, name
    etag = sas_sender.put("sas/" + NAMES[3], b"via sas", {"k": "v"}, "image/jpeg")
    assert client.get_blob_client("sas/" + NAMES[3]).get_blob_properties().etag == etag


@pytest.mark.parametrize("size", [0, 1024, 70_000])
def test_blob_is_the_one_upload_blob_writes(client: ContainerClient, size: int):
    direct, sdk = Transfer(client), _sdk_transfer(client)
    assert direct._put is not None
    for i, name in enumerate(NAMES):
        data = hashlib.sha256(f"{i}".encode()).digest() * (size // 32) + b"x" * (size % 32)
        meta = _meta(data, rel=name)
        a = direct.upload("new/" + name, "", meta, "image/heic", data)
        b = sdk.upload("sdk/" + name, "", meta, "image/heic", data)
        assert (a.action, a.bytes_sent, b.action, b.bytes_sent) == ("uploaded", size, "uploaded", size)
        pa = client.get_blob_client("new/" + name).get_blob_properties()
        pb = client.get_blob_client("sdk/" + name).get_blob_properties()
        assert a.etag == pa.etag.strip('"') and '"' not in a.etag
        assert pa.name == "new/" + name and pb.name == "sdk/" + name
        assert (pa.size, pa.blob_type, pa.metadata) == (pb.size, pb.blob_type, pb.metadata)
        assert (pa.size, pa.metadata) == (size, build_metadata(meta))
        assert dict(pa.content_settings) == dict(pb.content_settings)
        assert pa.content_settings.content_type == "image/heic"
        assert client.download_blob("new/" + name).readall() == data
    listed = sorted(b.name for b in client.list_blobs())
    assert [n[4:] for n in listed if n.startswith("new/")] == sorted(NAMES)
    assert [n[4:] for n in listed if n.startswith("sdk/")] == sorted(NAMES)


def test_bandwidth_hook_sees_every_small_upload(client: ContainerClient):
    seen: list[int] = []
    t = Transfer(client, read_hook=seen.append)
    t.upload("bw/a.jpg", "", _meta(b"12345"), "image/jpeg", b"12345")
    t.upload("bw/b.jpg", "", _meta(b""), "image/jpeg", b"")
    assert seen == [5, 0]


def test_data_over_the_single_put_size_stays_with_the_sdk(cfg: StorageConfig, container: ContainerClient):
    small_puts = open_container(blob_service(cfg, max_single_put_size=1024, max_block_size=1024), cfg)
    t = Transfer(small_puts)
    assert t._put is not None and t._put.max_size == 1024
    data = bytes(range(256)) * 12
    assert t.upload("big/x.jpg", "", _meta(data), "image/jpeg", data).action == "uploaded"
    assert container.download_blob("big/x.jpg").readall() == data
    props = container.get_blob_client("big/x.jpg").get_blob_properties()
    assert props.metadata == build_metadata(_meta(data))
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()  # sent in blocks: ours


def test_without_the_client_internals_there_is_no_sender(client: ContainerClient):
    class Bare:
        url = client.url

    assert put_blob.put_sender(Bare()) is None  # type: ignore[arg-type]


# -- create-only ------------------------------------------------------------------------------------------
def test_an_existing_name_is_adopted_not_overwritten(client: ContainerClient):
    t = Transfer(client)
    first = b"first content"
    meta = _meta(first)
    made = t.upload("once/x y#.jpg", "", meta, "image/jpeg", first)
    # Same size and metadata, other bytes: an overwrite would show in the content and the ETag.
    again = t.upload("once/x y#.jpg", "", meta, "image/jpeg", b"other content")
    assert (made.action, again.action) == ("uploaded", "present")
    assert again.etag == made.etag and again.bytes_sent == 0
    assert client.download_blob("once/x y#.jpg").readall() == first
    with pytest.raises(BlobConflictError):  # other content under a name that promises this one
        t.upload("once/x y#.jpg", "", _meta(b"longer other content"), "image/jpeg", b"longer other content")
    assert client.download_blob("once/x y#.jpg").readall() == first


def test_the_put_itself_raises_what_upload_blob_raises_for_an_existing_name(client: ContainerClient):
    client.upload_blob("exists.jpg", b"1")
    sender = put_blob.put_sender(client)
    assert sender is not None
    with pytest.raises(ResourceExistsError) as direct:
        sender.put("exists.jpg", b"2", {}, "image/jpeg")
    with pytest.raises(ResourceExistsError) as sdk:
        client.upload_blob("exists.jpg", b"2", overwrite=False, content_settings=ContentSettings("image/jpeg"))
    assert _error(direct.value) == _error(sdk.value)
    assert direct.value.error_code == "BlobAlreadyExists"


def test_a_412_maps_to_resource_exists_as_upload_blob_does(client: ContainerClient):
    """The service may answer a create-only put with 412 ConditionNotMet; Azurite says 409, so the 412 is a
    real one from Azurite for a Put Blob with a failing If-Match, given to both error mappings."""
    client.upload_blob("cond.jpg", b"1")
    send = sdk_internals.blob_sender(client)
    assert send is not None
    response = send(
        HttpRequest(
            "PUT",
            client.get_blob_client("cond.jpg").url,
            headers={"x-ms-blob-type": "BlockBlob", "If-Match": '"0x1"', "x-ms-version": client.api_version},
            content=b"2",
        )
    )
    assert response.status_code == 412
    with pytest.raises(ResourceExistsError) as direct:
        sdk_internals.raise_put_blob_error(response)
    with pytest.raises(ResourceExistsError) as sdk:
        client.upload_blob(
            "cond.jpg", b"2", overwrite=False, etag='"0x1"', match_condition=MatchConditions.IfNotModified
        )
    assert _error(direct.value) == _error(sdk.value)
    assert client.download_blob("cond.jpg").readall() == b"1"


def test_other_failures_raise_the_sdk_exception(client: ContainerClient):
    absent = ContainerClient.from_container_url(client.url + "-missing", credential=client.credential)
    wrong_key = ContainerClient.from_container_url(
        client.url, credential={"account_name": ACCOUNT, "account_key": "A" * 86 + "=="}
    )
    for c in (absent, wrong_key):
        sender = put_blob.put_sender(c)
        assert sender is not None
        with pytest.raises(HttpResponseError) as direct:
            sender.put("x.jpg", b"1", {"k": "v"}, "image/jpeg")
        with pytest.raises(HttpResponseError) as sdk:
            c.upload_blob(
                "x.jpg", b"1", overwrite=False, metadata={"k": "v"}, content_settings=ContentSettings("image/jpeg")
            )
        assert _error(direct.value) == _error(sdk.value)
        assert direct.value.status_code in (403, 404)


# -- the pipeline: retries and the throttle hook ----------------------------------------------------------
class _Counts:
    def __init__(self) -> None:
        self.throttles = 0
        self.successes = 0

    def on_throttle(self) -> None:
        self.throttles += 1

    def on_success(self) -> None:
        self.successes += 1


@pytest.mark.parametrize("fault", ["busy", "error", "reset"])
def test_a_failed_first_attempt_is_retried_and_the_throttle_hook_sees_it(
    azurite: Azurite, cfg: StorageConfig, container: ContainerClient, proxy: FaultProxy, fault: str
):
    proxied = container_via(proxy.blob_url, azurite, cfg)
    t = Transfer(proxied)
    assert t._put is not None
    proxy.set_plan(FaultPlan(**{fault: 1.0}, retry_after=0, first_n=1, only=lambda r: r.method == "PUT"))
    counts = _Counts()
    data = b"retried \xe2\x9c\x93"
    with THROTTLE.listening(counts):
        result = t.upload("retry/a b#?.jpg", "", _meta(data), "image/jpeg", data)
    assert result.action == "uploaded"
    puts = [e for e in proxy.exchanges() if e.request.method == "PUT"]
    assert [e.status for e in puts] == [{"busy": 503, "error": 500, "reset": None}[fault], 201]
    assert puts[1].request.path.endswith("/retry/a%20b%23%3F.jpg")
    assert counts.throttles == (0 if fault == "reset" else 1) and counts.successes == 1
    assert container.download_blob("retry/a b#?.jpg").readall() == data


def test_a_denied_put_raises_like_the_sdk_and_is_not_retried(
    azurite: Azurite, cfg: StorageConfig, container: ContainerClient, proxy: FaultProxy
):
    proxied = container_via(proxy.blob_url, azurite, cfg)
    sender = put_blob.put_sender(proxied)
    assert sender is not None
    proxy.set_plan(FaultPlan(deny=1.0, first_n=2, only=lambda r: r.method == "PUT"))
    with pytest.raises(HttpResponseError) as direct:
        sender.put("deny/x.jpg", b"1", {}, "image/jpeg")
    with pytest.raises(HttpResponseError) as sdk:
        proxied.upload_blob("deny/x.jpg", b"1", overwrite=False, content_settings=ContentSettings("image/jpeg"))
    assert _error(direct.value) == _error(sdk.value)
    assert direct.value.status_code == 403 and direct.value.error_code == "AuthorizationPermissionMismatch"
    assert [e.status for e in proxy.exchanges() if e.request.method == "PUT"] == [403, 403]
