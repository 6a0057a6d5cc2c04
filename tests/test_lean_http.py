"""sync_core.storage.lean_http: the same answers as a plain requests session, and requests' own path whenever a call
uses something the lean path skips (cookies, proxies, environment)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sync_core.storage.lean_http import LeanAdapter, LeanSession


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received (method, path, headers, body), keep-alive."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        text = f"{self.command} {self.path}\n{self.headers.get('Cookie', '')}\n".encode() + body
        self.send_response(200 if not self.path.startswith("/missing") else 404)
        self.send_header("Content-Length", str(len(text)))
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_PUT = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def lean() -> LeanSession:
    s = LeanSession()
    s.trust_env = False
    s.mount("http://", LeanAdapter())
    return s


def test_answers_match_a_plain_session(server):
    plain, ours = requests.Session(), lean()
    plain.trust_env = False
    for method, path, body in [("GET", "/a?x=1%2F2&y=%C3%A9", None), ("PUT", "/b/ü space", b"\x00data"),
                               ("POST", "/c", b""), ("GET", "/missing", None)]:  # fmt: skip
        kw = {"headers": {"x-ms-test": "1"}, "data": body, "allow_redirects": False, "timeout": (5, 5)}
        a, b = plain.request(method, server + path, **kw), ours.request(method, server + path, **kw)
        assert (b.status_code, b.content, b.reason, b.url) == (a.status_code, a.content, a.reason, a.url)
        assert b.headers["Content-Type"] == a.headers["Content-Type"] and b.encoding == a.encoding
    assert ours.request("GET", server + "/s", stream=True, allow_redirects=False).raw.read() == b"GET /s\n\n"


def test_the_pool_is_reused_and_replaced_once_closed(server):
    s = lean()
    adapter = s.get_adapter(server)
    for _ in range(3):
        assert s.request("GET", server + "/p", allow_redirects=False).status_code == 200
    pools = list(adapter._pools.values())
    assert len(pools) == 1 and pools[0].num_requests == 3  # one pool, its connection reused
    pools[0].close()  # closed (by whoever): the next request takes a fresh pool from the pool manager
    adapter.poolmanager.clear()
    assert s.request("GET", server + "/p", allow_redirects=False).status_code == 200
    fresh = list(adapter._pools.values())
    assert len(fresh) == 1 and fresh[0] is not pools[0] and fresh[0].num_requests == 1


def test_cookies_and_redirects_take_requests_own_path(server):
    s = lean()
    s.cookies.set("k", "v")
    assert b"k=v" in s.request("GET", server + "/c", allow_redirects=False).content  # the cookie was sent
    s.cookies.clear()
    r = s.request("GET", server + "/r", allow_redirects=True)  # the lean path only takes allow_redirects=False
    assert r.status_code == 200 and r.history == []


@pytest.mark.parametrize("allow_redirects", [False, True])  # the lean path, and requests' own
def test_a_request_without_a_timeout_still_times_out(monkeypatch: pytest.MonkeyPatch, allow_redirects: bool):
    import time

    from sync_core.storage import lean_http

    from .faultproxy import SilentServer

    monkeypatch.setattr(lean_http, "READ_TIMEOUT", 0.5)
    session = LeanSession()
    session.trust_env = False
    session.mount("http://", LeanAdapter())
    with SilentServer() as silent:
        t0 = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.request("GET", silent.url, allow_redirects=allow_redirects)
    assert time.monotonic() - t0 < 5
