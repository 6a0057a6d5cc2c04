"""Our Shared Key policy (sync_core.storage.signing, installed by sdk_internals) signs every request exactly as the
SDK's own SharedKeyCredentialPolicy, a client from ``blob_service`` with a connection string signs with it (and
every client derived from it), Azurite accepts what it signs, and when the import-time check fails the SDK's
policy stays."""

from __future__ import annotations

import hashlib
from functools import cmp_to_key
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest as LegacyRequest
from azure.core.rest import HttpRequest
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.blob._shared.authentication import AzureSigningError, SharedKeyCredentialPolicy, compare
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.emulator import ACCOUNT, ACCOUNT_KEY
from sync_core.config import StorageConfig
from sync_core.storage import sdk_internals
from sync_core.storage.clients import blob_service
from sync_core.storage.put_blob import put_sender
from sync_core.storage.sdk_internals import FastSharedKeyPolicy, fast_signing
from sync_core.storage.signing import HeaderOrder

DATE = "Tue, 08 Dec 2026 10:00:00 GMT"
URL = f"https://{ACCOUNT}.blob.core.windows.net"
# What the service allows in a header name (RFC 9110 token characters), the collation's special ones repeated.
TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~" + "-_'-_'0919"


def sdk_policy() -> SharedKeyCredentialPolicy:
    return SharedKeyCredentialPolicy(ACCOUNT, ACCOUNT_KEY)


def ours() -> FastSharedKeyPolicy:
    policy = fast_signing(sdk_policy())
    assert isinstance(policy, FastSharedKeyPolicy)
    return policy


def signed(policy: Any, method: str, url: str, headers: dict[str, Any], *, legacy: bool = False) -> str:
    """The Authorization header ``policy`` gives a fresh request (with the fixed x-ms-date)."""
    http: Any = LegacyRequest(method, url, headers=headers) if legacy else HttpRequest(method, url, headers=headers)
    http.headers["x-ms-date"] = DATE
    policy.on_request(PipelineRequest(http, PipelineContext(None)))
    return str(http.headers["Authorization"])


def put_headers(**extra: str) -> dict[str, str]:
    headers = {
        "x-ms-blob-type": "BlockBlob",
        "Content-Length": "1024",
        "If-None-Match": "*",
        "x-ms-version": "2025-11-05",
        "Content-Type": "application/octet-stream",
        "Accept": "application/xml",
        "x-ms-blob-content-type": "image/jpeg",
        "x-ms-meta-sha256": "ab" * 32,
        "x-ms-meta-relpath": "2024/07/IMG_0001.JPG",
        "x-ms-meta-size": "1024",
        "x-ms-meta-mtimens": "1720000000000000000",
        "x-ms-meta-sourceid": "dev%3A123",
        "x-ms-meta-azpsschema": "1",
        "x-ms-client-request-id": "5f0c7a2e-1111-2222-3333-444455556666",
    }
    headers.update(extra)
    return headers


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("PUT", "/photos/2024/IMG_0001.JPG", put_headers()),
    ("PUT", "/photos/a%20b/%C3%A9%25%2B.jpg", put_headers(**{"Content-Length": "0"})),
    ("PUT", "/photos/x.jpg?sv=2025-01-05&ss=b&srt=sco&sp=rwdlac&se=2026-12-31T00%3A00%3A00Z&sig=ab%2Bc%2Fd%3D", {}),
    ("GET", "/photos?restype=container&comp=list&prefix=p%2F&include=metadata&maxresults=3&marker=2!x", {}),
    ("GET", "/photos?Comp=list&Restype=container&Prefix=Abc", {"x-ms-version": "2025-11-05"}),
    ("GET", "/photos/x.jpg", {"Range": "bytes=0-1023", "x-ms-range": "bytes=0-1023", "If-Match": '"0x8D"'}),
    ("HEAD", "/photos/x.jpg", {"If-Modified-Since": DATE, "If-Unmodified-Since": DATE, "If-None-Match": '"e"'}),
    ("DELETE", "/photos/x.jpg?snapshot=2026-01-01T00%3A00%3A00.0000000Z", {"x-ms-delete-snapshots": "include"}),
    ("PUT", "/photos/x.jpg?comp=metadata", {"x-ms-Meta-Mixed_Case": "1", "x-ms-meta-a1": "2", "x-ms-meta-a10": "3"}),
    ("PUT", "/photos/x.jpg?comp=metadata", {"x-ms-meta-a-b": "1", "x-ms-meta-a_b": "2", "x-ms-meta-ab": "3"}),
    ("PUT", "/photos/x.jpg?comp=metadata", {"x-ms-meta-a'b": "1", "x-ms-meta-a--b": "2", "x-ms-meta-a-": "3"}),
    ("PUT", "/photos/x.jpg?comp=block&blockid=QUFBQQ%3D%3D", {"Content-Length": "", "Content-MD5": "abc=="}),
    ("PUT", "/photos/x.jpg?comp=tier", {"x-ms-access-tier": "Cool", "X-MS-Upper-Not-Signed": "1"}),
    ("PUT", "/photos/x.jpg", {"x-ms-meta-empty": "", "Content-Encoding": "gzip", "Content-Language": "en"}),
    ("POST", "/?restype=service&comp=batch", {"Content-Type": "multipart/mixed; boundary=b", "Date": DATE}),
    ("GET", "/?comp=properties&restype=account&a=1&a=2&flag", {"byte_range": "x"}),
    ("GET", "/photos;params/x.jpg?", {"x-ms-client-request-id": "r"}),
]


@pytest.mark.parametrize("legacy", [False, True], ids=["rest", "legacy"])
@pytest.mark.parametrize(("method", "path", "headers"), CASES)
def test_signs_as_the_sdk(method: str, path: str, headers: dict[str, Any], legacy: bool):
    url = URL + path
    expected = signed(sdk_policy(), method, url, headers, legacy=legacy)
    assert signed(ours(), method, url, headers, legacy=legacy) == expected
    assert signed(ours(), method, url, headers, legacy=legacy) == expected  # with the keys cached


names = st.text(alphabet=TOKEN, min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["x-ms-", "x-ms-meta-", "X-Ms-", "x-ms-Meta-", ""]), names), max_size=14),
    st.sampled_from(["PUT", "GET", "HEAD", "DELETE"]),
)
def test_random_header_names_sign_as_the_sdk(pairs: list[tuple[str, str]], method: str):
    headers: dict[str, str] = {}
    for i, (prefix, name) in enumerate(pairs):
        headers.setdefault(prefix + name or "x-ms-e", f"v{i}")
    url = URL + "/photos/x.jpg?comp=metadata"
    assert signed(ours(), method, url, headers) == signed(sdk_policy(), method, url, headers)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(max_codepoint=127), max_size=8), max_size=20))
def test_key_orders_as_the_sdk_compare(names: list[str]):
    """Any ASCII names, ties included (characters ignored at both levels): the same order, stably."""
    order = HeaderOrder(*_tables())
    assert sorted(names, key=order.key) == sorted(names, key=cmp_to_key(compare))


def _tables() -> tuple[list[int], list[int]]:
    from azure.storage.blob._shared.authentication import table_lv0, table_lv4

    return table_lv0, table_lv4


def test_what_the_sdk_refuses_is_refused_the_same_way():
    url = URL + "/photos/x.jpg"
    # Non-ASCII names: signed by the SDK alone, sorted by neither.
    assert signed(ours(), "PUT", url, {"x-ms-meta-é": "1"}) == signed(sdk_policy(), "PUT", url, {"x-ms-meta-é": "1"})
    for policy in (sdk_policy(), ours()):
        with pytest.raises(IndexError):
            signed(policy, "PUT", url, {"x-ms-meta-é": "1", "x-ms-meta-a": "2"})
    # A name given twice (headers that are a plain dict): the SDK's KeyError.
    for policy in (sdk_policy(), ours()):
        http = HttpRequest("PUT", url)
        http.headers = {"x-ms-meta-A": "1", "x-ms-meta-a": "2", "x-ms-date": DATE}  # type: ignore[misc]
        with pytest.raises(KeyError):
            policy.on_request(PipelineRequest(http, PipelineContext(None)))
    # A key that is not base64: the SDK's AzureSigningError, message included.
    errors = []
    for policy in (
        SharedKeyCredentialPolicy(ACCOUNT, "not-base64!"),
        fast_signing(SharedKeyCredentialPolicy(ACCOUNT, "not-base64!")),
    ):
        with pytest.raises(AzureSigningError) as caught:
            signed(policy, "GET", url, {})
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_a_replaced_account_key_is_used():
    policy, sdk = ours(), sdk_policy()
    signed(policy, "GET", URL + "/c", {})
    policy.account_key = sdk.account_key = "AAAA" + ACCOUNT_KEY[4:]
    assert signed(policy, "GET", URL + "/c", {}) == signed(sdk, "GET", URL + "/c", {})


def test_aiohttp_requests_are_left_to_the_sdk():
    from azure.core.pipeline.transport import AioHttpTransport

    results = []
    for policy in (sdk_policy(), ours()):
        http = HttpRequest("GET", URL + "/photos/a%20b.jpg", headers={"x-ms-date": DATE})
        policy.on_request(PipelineRequest(http, PipelineContext(AioHttpTransport())))
        results.append(http.headers["Authorization"])
    assert results[0] == results[1]


def _signing_policy(client: Any) -> Any:
    return next(
        p._policy
        for p in client._pipeline._impl_policies
        if isinstance(getattr(p, "_policy", None), SharedKeyCredentialPolicy)
    )


def test_clients_from_a_connection_string_sign_with_ours(
    cfg: StorageConfig, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
):
    calls = []
    sign = FastSharedKeyPolicy.on_request
    monkeypatch.setattr(FastSharedKeyPolicy, "on_request", lambda self, request: calls.append(1) or sign(self, request))
    service = blob_service(cfg)
    client = service.get_container_client(cfg.container)
    blob = client.get_blob_client("a b/é 1.jpg")
    for derived in (service, client, blob, service.get_blob_client(cfg.container, "x")):
        assert type(_signing_policy(derived)) is FastSharedKeyPolicy
        assert derived.credential is service.credential

    meta = {"sha256": "ab" * 32, "a1": "1", "a10": "2", "a9": "3", "b_2": "4", "Mixed_Case": "5", "_u": "6"}
    data = b"photo" * 300
    blob.upload_blob(data, metadata=meta, content_settings=None)
    assert blob.download_blob().readall() == data
    assert blob.download_blob(offset=5, length=10).readall() == data[5:15]
    assert blob.get_blob_properties().metadata == meta
    blob.set_blob_metadata({**meta, "c_3": "7"})
    sender = put_sender(client)
    assert sender is not None
    sender.put("p/put.jpg", data, meta, "image/jpeg")  # the agent's own Put Blob, through the same pipeline
    listed = {b.name: dict(b.metadata) for b in client.list_blobs(include=["metadata"])}
    assert listed == {"a b/é 1.jpg": {**meta, "c_3": "7"}, "p/put.jpg": meta}
    assert [b.name for b in client.list_blobs(name_starts_with="p/")] == ["p/put.jpg"]
    assert (
        hashlib.sha256(client.get_blob_client("p/put.jpg").download_blob().readall()).digest()
        == hashlib.sha256(data).digest()
    )
    assert len(calls) >= 8


def test_azurite_checks_the_signature(cfg: StorageConfig, container: ContainerClient):
    wrong = cfg.connection_string.replace(ACCOUNT_KEY, "AAAA" + ACCOUNT_KEY[4:])
    client = blob_service(StorageConfig(**{**cfg.__dict__, "connection_string": wrong})).get_container_client(
        cfg.container
    )
    assert type(_signing_policy(client)) is FastSharedKeyPolicy
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as caught:
        client.get_container_properties()
    assert caught.value.status_code == 403


def test_without_the_check_the_sdk_policy_signs(
    cfg: StorageConfig, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(sdk_internals, "FAST_SIGNING", False)
    assert fast_signing(sdk_policy()) is None
    service = blob_service(cfg)
    client = service.get_container_client(cfg.container)
    assert type(_signing_policy(client)) is SharedKeyCredentialPolicy
    client.upload_blob("x.jpg", b"x", metadata={"a1": "1", "b_2": "2"})
    assert client.get_blob_client("x.jpg").get_blob_properties().metadata == {"a1": "1", "b_2": "2"}


def test_the_check_fails_when_the_sdk_orders_or_signs_otherwise(monkeypatch: pytest.MonkeyPatch):
    assert sdk_internals._probe_signing() is not None
    monkeypatch.setattr(sdk_internals, "_sdk_compare", lambda a, b: compare(b, a))  # another collation
    assert sdk_internals._probe_signing() is None
    monkeypatch.undo()
    monkeypatch.setattr(sdk_internals, "_primary", [1] * 128)  # tables the key cannot express
    assert sdk_internals._probe_signing() is None
    monkeypatch.undo()
    monkeypatch.setattr(SharedKeyCredentialPolicy, "_get_verb", staticmethod(lambda request: "X\n"))  # another string
    assert sdk_internals._probe_signing() is None


def test_only_an_account_key_is_replaced():
    assert fast_signing(None) is None
    assert fast_signing("sv=2025&sig=x") is None
    assert fast_signing(ours()) is None  # already ours
    sas = BlobServiceClient.from_connection_string(f"BlobEndpoint={URL};SharedAccessSignature=sv=2025&sig=x")
    assert fast_signing(sas.credential) is None
