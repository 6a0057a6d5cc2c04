"""sync_core.storage.direct_http: our own requests go below requests/urllib3, with the same bytes, answers and
exceptions as requests' path, connections reused only when safe, and every wait bounded.

Against real Azurite (the fast paths take the direct way; SDK requests do not) and against small local servers
that misbehave on purpose: one that echoes what it got, cuts bodies short, drops idle connections or closes after
an answer; one that never answers (a stall); a closed port (refused); a TLS server with a self-signed certificate.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ResponseNotReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamConsumedError,
)
from azure.core.rest import HttpRequest
from azure.storage.blob import ContainerClient

from agent.emulator import Azurite
from sync_core.config import StorageConfig
from sync_core.index import table_batch
from sync_core.index.table_query import query_pages
from sync_core.storage.clients import DOWNLOAD_PIECE, make_transport, table_service
from sync_core.storage.direct_http import DIRECT, DirectResponse, DirectTransport
from sync_core.storage.download import Downloads
from sync_core.storage.listing import list_pages
from sync_core.storage.put_blob import put_sender
from sync_core.storage.sdk_internals import blob_sender, transport_of
from tests.conftest import container_via, det_bytes
from tests.faultproxy import SilentServer
from tests.test_download import CutProxy
from tests.test_oauth import self_signed_cert
from tests.test_transport import PROXY_VARS

MiB = 1 << 20


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARS, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


# -- a local server that behaves, and misbehaves, on request ------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """``/echo``: what it got as JSON; ``/big?n=``: n bytes; ``/close``: an answer with ``Connection: close``;
    ``/drop``: an answer that promises keep-alive, then the connection closed; ``/cut?have=&len=``: ``have`` of
    ``len`` promised bytes, then closed; ``/chunkcut``: one chunk, then closed; ``/chunked?n=&size=``: the bytes
    of ``/big`` in chunks of ``size``; ``/stall?have=&len=``: ``have`` of ``len`` bytes, then nothing for 3 s.
    Every request's client port is recorded, so tests see which connection carried it."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((url.path, self.client_address[1]))  # type: ignore[attr-defined]
        extra: dict[str, str] = {}
        if url.path == "/big":
            out = det_bytes(1, int(q["n"]))
        elif url.path == "/cut":
            out = b"x" * int(q["have"])
            extra["Content-Length"] = q["len"]
            self.close_connection = True
        elif url.path == "/chunkcut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.close_connection = True
            return
        elif url.path == "/chunked":
            data, size = det_bytes(1, int(q["n"])), int(q["size"])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), size):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size]))
            self.wfile.write(b"0\r\n\r\n")
            return
        elif url.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", q["len"])
            self.end_headers()
            self.wfile.write(b"x" * int(q["have"]))
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
            return
        else:
            seen = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                    "body": body.decode("latin-1")}  # fmt: skip
            out = json.dumps(seen).encode()
        if url.path == "/close":
            extra["Connection"] = "close"
        if url.path in ("/drop", "/close"):
            self.close_connection = True
        self.send_response(404 if url.path == "/missing" else 200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-Twice", "a")
        self.send_header("X-Twice", "b")
        self.send_header("Content-Length", extra.pop("Content-Length", str(len(out))))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Handler)
        self.seen: list[tuple[str, int]] = []
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://{host}:{self.server_address[1]}"

    def __enter__(self) -> _Server:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client refusing our certificate, or dropping a stream: expected here

    def ports(self, path: str) -> list[int]:
        return [port for p, port in self.seen if p == path]


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as s:
        yield s


@pytest.fixture
def transport() -> Iterator[DirectTransport]:
    t = make_transport(4)
    yield t
    t.close()


def _send(t: DirectTransport, method: str, url: str, *, direct: bool = True, **kwargs: Any) -> Any:
    content = kwargs.pop("content", None)
    headers = kwargs.pop("headers", None)
    request = HttpRequest(method, url, content=content, headers=headers)
    return t.send(request, **({DIRECT: True} if direct else {}), **kwargs)


# -- the fast paths take it; nothing else does ------------------------------------------------------------------
def test_every_fast_path_goes_the_direct_way_and_sdk_requests_do_not(client: ContainerClient, cfg: StorageConfig):
    blobs = transport_of(client)
    table = table_service(cfg).get_table_client(cfg.table)
    tables = transport_of(table)
    assert isinstance(blobs, DirectTransport) and isinstance(tables, DirectTransport)
    put = put_sender(client)
    assert put is not None

    def direct_sends(t: DirectTransport, call: Any) -> int:
        before = t.direct_sends
        call()
        return t.direct_sends - before

    assert direct_sends(blobs, lambda: put.put("d/a.jpg", b"1234", {"k": "v"}, "image/jpeg")) == 1
    assert direct_sends(blobs, lambda: [bytes(p) for p in Downloads(client).open("d/a.jpg")]) == 1
    assert direct_sends(blobs, lambda: list(list_pages(client, "d/", metadata=True))) == 1
    entity = {"PartitionKey": "p", "RowKey": "r", "n": 1}
    assert direct_sends(tables, lambda: table_batch.submit(table, [("create", entity)])) == 1
    assert direct_sends(tables, lambda: list(query_pages(table, "PartitionKey eq 'p'"))) == 1
    # the SDK's own requests stay on requests' path
    assert direct_sends(blobs, lambda: client.get_blob_client("d/a.jpg").get_blob_properties()) == 0
    assert direct_sends(tables, lambda: table.get_entity("p", "r")) == 0


def test_a_client_with_another_transport_is_never_given_the_keyword(container: ContainerClient):
    """The keyword would reach requests (a TypeError) through a transport that is not ours."""
    assert not isinstance(transport_of(container), DirectTransport)
    send = blob_sender(container)
    assert send is not None and not hasattr(send, "keywords")
    put = put_sender(container)
    assert put is not None and put.put("plain/a.jpg", b"abc", {}, None)


# -- the same request on the wire, the same answer -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/echo?x=1%2F2&y=%C3%A9&comp=list", None), ("put", "/echo/a%20b~c.jpg", b"\x00\xffdata"),
     ("POST", "/echo", b""), ("DELETE", "/echo", None), ("PATCH", "/echo", b"{}"), ("HEAD", "/echo", None),
     ("GET", "/missing", None)],
)  # fmt: skip
def test_the_same_request_and_answer_as_requests_path(
    server: _Server, transport: DirectTransport, method: str, path: str, body: bytes | None
):
    headers = {"x-ms-version": "2025-01-05", "If-None-Match": "*", "User-Agent": "azsdk-python-test"}
    before = transport.direct_sends
    ours = _send(transport, method, server.url + path, content=body, headers=headers)
    theirs = _send(transport, method, server.url + path, content=body, headers=headers, direct=False)
    assert transport.direct_sends == before + 1
    assert isinstance(ours, DirectResponse) and not isinstance(theirs, DirectResponse)
    assert (ours.status_code, ours.reason, ours.content_type, ours.encoding, ours.url) == (
        theirs.status_code, theirs.reason, theirs.content_type, theirs.encoding, theirs.url
    )  # fmt: skip
    assert ours.headers["x-twice"] == theirs.headers["X-Twice"] == "a, b"
    assert ours.headers.keys() == theirs.headers.keys()
    assert ours.is_closed and ours.is_stream_consumed
    if method == "HEAD":
        assert ours.content == theirs.content == b""
    else:
        assert len(ours.content) == int(ours.headers["Content-Length"])
        got, sent = ours.json(), theirs.json()
        assert ours.text() == ours.content.decode()
        # requests asks for a compressed answer; we never do (bytes are handed on as received)
        assert sent["headers"].pop("Accept-Encoding") == "gzip, deflate"
        assert got["headers"].pop("Accept-Encoding") == "identity"
        assert {k.lower(): v for k, v in got["headers"].items()} == {k.lower(): v for k, v in sent["headers"].items()}
        assert (got["method"], got["path"], got["body"]) == (sent["method"], sent["path"], sent["body"])


def test_a_streamed_answer_follows_the_rest_contract(server: _Server, transport: DirectTransport):
    response = _send(transport, "GET", f"{server.url}/big?n={3 * MiB + 5}", stream=True)
    with pytest.raises(ResponseNotReadError):
        _ = response.content
    pieces = list(response.iter_raw())
    assert [len(p) for p in pieces] == [DOWNLOAD_PIECE] * 3 + [5] and all(type(p) is bytes for p in pieces)
    assert b"".join(pieces) == det_bytes(1, 3 * MiB + 5) and response.is_closed and response.is_stream_consumed
    with pytest.raises(StreamConsumedError):
        response.read()
    with _send(transport, "GET", f"{server.url}/big?n=10", stream=True) as again:
        assert again.read() == det_bytes(1, 10) and list(again.iter_bytes()) == [det_bytes(1, 10)]
    assert again.is_closed


def test_anything_it_does_not_carry_goes_to_requests(server: _Server, transport: DirectTransport):
    before = transport.direct_sends
    assert _send(transport, "GET", server.url + "/echo", connection_verify=False).status_code == 200
    assert _send(transport, "PUT", server.url + "/echo", content="é text").json()["body"] == "é text".encode().decode(
        "latin-1"
    )
    assert _send(transport, "GET", server.url + "/echo", headers={"Accept-Encoding": "gzip"}).status_code == 200
    assert _send(transport, "GET", server.url + "/echo/ü").status_code == 200  # requests quotes it
    assert transport.direct_sends == before


def _views(pieces: Iterator[memoryview]) -> tuple[bytes, list[int], set[int]]:
    """What ``iter_into`` gave: the bytes (each piece copied in its turn), the pieces' sizes, and the ids of
    the objects they were views of; each piece is checked to be released once the next is asked for."""
    got, sizes, buffers, last = bytearray(), [], set(), None
    for piece in pieces:
        if last is not None:
            with pytest.raises(ValueError, match="released"):
                bytes(last)
        assert isinstance(piece, memoryview) and not piece.readonly
        got += piece
        sizes.append(len(piece))
        buffers.add(id(piece.obj))
        last = piece
    return bytes(got), sizes, buffers


@pytest.mark.parametrize("n", [0, 1, DOWNLOAD_PIECE - 1, DOWNLOAD_PIECE, DOWNLOAD_PIECE + 1, 3 * MiB + 5])
def test_iter_into_reads_a_body_into_one_buffer_as_iter_raw_reads_it(
    server: _Server, transport: DirectTransport, n: int
):
    raw = _send(transport, "GET", f"{server.url}/big?n={n}", stream=True)
    want = [len(p) for p in raw.iter_raw()]
    for path in (f"/big?n={n}", f"/chunked?n={n}&size=300007"):
        response = _send(transport, "GET", server.url + path, stream=True)
        got, sizes, buffers = _views(response.iter_into())
        assert got == det_bytes(1, n), path
        assert sizes == want and len(buffers) <= 1, path  # the same pieces (also chunked), all in one buffer
        assert response.is_closed and response.is_stream_consumed
        with pytest.raises(StreamConsumedError):
            next(response.iter_into())
    mine = bytearray(4096)
    response = _send(transport, "GET", f"{server.url}/big?n={n}", stream=True)
    got, sizes, buffers = _views(response.iter_into(mine))
    assert got == det_bytes(1, n) and buffers <= {id(mine)} and max(sizes, default=0) <= 4096
    assert _send(transport, "GET", server.url + "/echo").status_code == 200
    assert len(set(server.ports("/big") + server.ports("/chunked") + server.ports("/echo"))) == 1  # all read to the end


def test_a_small_body_is_read_into_a_buffer_of_its_size(server: _Server, transport: DirectTransport):
    with _send(transport, "GET", f"{server.url}/big?n=5000", stream=True) as response:
        assert len(next(response.iter_into()).obj) == 5000  # not a whole piece's worth (many small files restored)


# -- connections ---------------------------------------------------------------------------------------------
def test_a_connection_is_reused_only_after_its_answer_was_read_to_the_end(server: _Server, transport: DirectTransport):
    for _ in range(3):
        assert _send(transport, "GET", server.url + "/echo").status_code == 200
    whole = _send(transport, "GET", f"{server.url}/big?n={2 * MiB}", stream=True)
    assert b"".join(whole.iter_raw()) == det_bytes(1, 2 * MiB)
    early = _send(transport, "GET", f"{server.url}/big?n={3 * MiB}", stream=True)
    next(early.iter_raw())
    early.close()  # two thirds of the body unread: this connection must not carry another request
    assert not any(transport._idle.values())  # (nor wait in the pool, where only the readable check would catch it)
    assert _send(transport, "GET", server.url + "/echo").status_code == 200
    ports = [port for _, port in server.seen]
    assert len(set(ports[:5])) == 1 and ports[5] != ports[4]


def test_connections_the_server_closed_are_replaced(server: _Server, transport: DirectTransport):
    assert _send(transport, "GET", server.url + "/drop").status_code == 200  # says keep-alive, then closes
    time.sleep(0.2)
    assert _send(transport, "GET", server.url + "/echo").status_code == 200  # no error: a new connection
    assert _send(transport, "GET", server.url + "/close").status_code == 200  # Connection: close
    assert _send(transport, "GET", server.url + "/echo").status_code == 200
    ports = [port for _, port in server.seen]
    assert len(set(ports)) == 3 and ports[1] == ports[2]


def test_at_most_pool_size_idle_connections_are_kept_and_close_ends_them(server: _Server):
    t = DirectTransport(pool_size=2, session=make_transport(2).session, read_timeout=5)
    streams = [_send(t, "GET", f"{server.url}/big?n=100", stream=True) for _ in range(4)]
    for response in streams:
        response.read()
    assert len(server.ports("/big")) == 4 and [len(c) for c in t._idle.values()] == [2]
    idle = next(iter(t._idle.values()))
    t.close()
    assert not t._idle and all(conn.sock is None for conn in idle)


# -- failures, bounded waits -----------------------------------------------------------------------------------------
def test_a_stalled_server_fails_within_the_read_timeout():
    t = make_transport(2)
    with SilentServer() as silent:
        t0 = time.monotonic()
        with pytest.raises(ServiceResponseTimeoutError) as info:
            _send(t, "PUT", silent.url + "/c/a.jpg", content=b"x" * 100, read_timeout=1)
        assert time.monotonic() - t0 < 5
    assert isinstance(info.value.__cause__, TimeoutError)


def test_a_refused_connection_is_a_request_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    t = make_transport(2)
    with pytest.raises(ServiceRequestError) as info:
        _send(t, "GET", f"http://127.0.0.1:{port}/x")
    assert not isinstance(info.value, ServiceRequestTimeoutError)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    with pytest.raises(ServiceRequestError):  # as requests' path says it
        _send(t, "GET", f"http://127.0.0.1:{port}/x", direct=False)


@pytest.mark.parametrize(
    ("path", "whole"), [("/cut?have=10&len=100", IncompleteReadError), ("/chunkcut", HttpResponseError)]
)
def test_a_body_cut_short_fails_as_on_requests_path_and_is_not_reused(
    server: _Server, transport: DirectTransport, path: str, whole: type[Exception]
):
    for direct in (True, False):  # the same exception classes both ways (ours: IncompleteReadError, a subclass)
        with pytest.raises(whole):  # read whole
            _send(transport, "GET", server.url + path, direct=direct)
        streamed = _send(transport, "GET", server.url + path, direct=direct, stream=True)
        with pytest.raises(ServiceResponseError):  # streamed (iter_raw)
            b"".join(streamed.iter_raw())
    streamed = _send(transport, "GET", server.url + path, stream=True)
    with pytest.raises(ServiceResponseError) as info:  # streamed into a buffer: as iter_raw
        _views(streamed.iter_into())
    assert type(info.value) is ServiceResponseError and streamed.is_closed
    assert _send(transport, "GET", server.url + "/echo").status_code == 200
    assert len(set(server.ports(path.split("?")[0]) + server.ports("/echo"))) == 6  # none reused


@pytest.mark.parametrize("how", ["iter_raw", "iter_into"])
def test_a_body_that_stalls_fails_within_the_read_timeout(server: _Server, transport: DirectTransport, how: str):
    response = _send(transport, "GET", f"{server.url}/stall?have=10&len=100", stream=True, read_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(ServiceResponseTimeoutError) as info:
        for _ in getattr(response, how)():
            pass
    assert time.monotonic() - t0 < 2.5 and isinstance(info.value.__cause__, TimeoutError) and response.is_closed
    assert _send(transport, "GET", server.url + "/echo").status_code == 200
    assert server.ports("/echo")[0] not in server.ports("/stall")


def test_a_cut_download_is_resumed_on_the_direct_path(azurite: Azurite, cfg: StorageConfig, client: ContainerClient):
    data = det_bytes(5, 2 * MiB + 3)
    client.get_blob_client("cut/d.mov").upload_blob(data)
    with CutProxy(azurite.blob_port) as proxy:
        via = container_via(proxy.blob_url, azurite, cfg)
        t = transport_of(via)
        before = t.direct_sends
        proxy.cuts = [100, DOWNLOAD_PIECE + 7]
        assert b"".join(bytes(p) for p in Downloads(via).open("cut/d.mov")) == data
    assert t.direct_sends - before == 3  # the first GET and two resumptions


# -- TLS --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def _tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    return context


def test_https_verifies_the_certificate_against_the_bundle_in_use(
    cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    with _Server(tls=_tls(cert)) as tls:
        untrusting = make_transport(2)  # requests' own CA bundle: the self-signed certificate is refused
        for direct in (True, False):
            with pytest.raises(ServiceRequestError) as info:
                _send(untrusting, "GET", tls.url + "/echo", direct=direct)
        assert untrusting.direct_sends == 1
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
        trusting = make_transport(2)
        response = _send(trusting, "GET", tls.url + "/echo")
        assert isinstance(response, DirectResponse) and response.json()["path"] == "/echo"
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate verify failed" in str(info.value)


def test_https_checks_the_host_name(cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    try:
        other = _Server("127.0.0.2", tls=_tls(cert))  # a loopback address the certificate does not name
    except OSError:
        pytest.skip("no 127.0.0.2 on this system")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert[0]))
    with other, pytest.raises(ServiceRequestError) as info:
        _send(make_transport(2), "GET", other.url + "/echo")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
