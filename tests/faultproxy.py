"""A fault-injecting HTTP/1.1 proxy for tests: sits between the agent and Azurite on loopback.

On a configurable share of requests it resets the connection, answers ``503 ServerBusy`` with
``Retry-After``, answers ``500 InternalError``, or delays the request; everything else is relayed to the
upstream unchanged. It also records every exchange (method, path, query, body bytes relayed, status,
fault), so tests can count what the agent really sent.

Bounded on purpose: it listens on 127.0.0.1 only, relays only to a loopback upstream, streams bodies in
64 KiB chunks (never buffering a whole body), caps concurrent connections and keeps at most
``MAX_EXCHANGES`` records. It runs its own asyncio loop on a daemon thread; use it as a context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024
MAX_CONNECTIONS = 128
MAX_EXCHANGES = 100_000
MAX_BUFFERED = 8 * 1024 * 1024  # a body a subclass asks to see before deciding (a table transaction)
FAULTS = ("reset", "busy", "error", "deny", "delay")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = field(default=b"", repr=False)  # only when :meth:`FaultProxy._wants_body` asked for it

    @property
    def comp(self) -> str:
        return self.query.get("comp", "")


@dataclass
class FaultPlan:
    """Shares of requests (0..1) that get each fault; ``only`` limits which requests are eligible."""

    reset: float = 0.0
    busy: float = 0.0  # 503 ServerBusy + Retry-After
    error: float = 0.0  # 500 InternalError
    deny: float = 0.0  # 403 AuthorizationPermissionMismatch (not retried by the SDK)
    delay: float = 0.0
    delay_seconds: float = 0.2
    retry_after: int = 1
    seed: int = 0
    only: Callable[[Request], bool] | None = None
    first_n: int | None = None  # stop injecting after this many faults

    def __post_init__(self) -> None:
        if self.reset + self.busy + self.error + self.deny + self.delay > 1:
            raise ValueError("fault shares add up to more than 1")


@dataclass
class Exchange:
    request: Request
    fault: str | None
    status: int | None  # None: the connection was reset (by us or upstream)
    body_bytes: int  # request body bytes relayed upstream (0 when a fault answered instead)
    started: float
    finished: float = 0.0


@dataclass
class _Stats:
    exchanges: deque[Exchange] = field(default_factory=lambda: deque(maxlen=MAX_EXCHANGES))
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))


_ERROR_BODY = '<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{msg}</Message></Error>'


def _canned(status: int, reason: str, code: str, msg: str, retry_after: int | None) -> bytes:
    body = _ERROR_BODY.format(code=code, msg=msg).encode()
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/xml",
        f"Content-Length: {len(body)}",
        f"x-ms-error-code: {code}",
        "Connection: keep-alive",
    ]
    if retry_after is not None:
        lines.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    text = head.decode("latin-1")
    first, *rest = text.split("\r\n")
    headers: dict[str, str] = {}
    for line in rest:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return first, headers


async def _relay_body(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter | None,
    headers: dict[str, str],
    *,
    to_eof: bool,
    limit: int | None = None,
) -> int:
    """Copy one message body (Content-Length, chunked, or up to EOF); ``dst`` None discards it. ``limit``:
    relay only that many bytes, then raise ``ConnectionAbortedError`` (the caller drops the connection)."""
    n = 0
    relayed = 0

    async def put(data: bytes) -> None:
        nonlocal relayed
        cut = limit is not None and relayed + len(data) > limit
        if cut:
            assert limit is not None
            data = data[: limit - relayed]
        relayed += len(data)
        if dst is not None:
            dst.write(data)
            await dst.drain()
        if cut:
            raise ConnectionAbortedError("body cut short by the fault proxy")

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await src.readuntil(b"\r\n")
            await put(line)
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await src.readuntil(b"\r\n")) != b"\r\n":
                    await put(trailer)
                await put(b"\r\n")
                return n
            remaining = size + 2
            while remaining:
                data = await src.readexactly(min(CHUNK, remaining))
                remaining -= len(data)
                await put(data)
            n += size
    if "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            data = await src.readexactly(min(CHUNK, remaining))
            remaining -= len(data)
            n += len(data)
            await put(data)
        return n
    if to_eof:
        while data := await src.read(CHUNK):
            n += len(data)
            await put(data)
    return n


class FaultProxy:
    """``with FaultProxy(port, FaultPlan(busy=0.2)) as p:`` then point the agent at ``p.blob_url``."""

    def __init__(self, upstream_port: int, plan: FaultPlan | None = None, *, upstream_host: str = "127.0.0.1"):
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError("the fault proxy only relays to a loopback upstream")
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan or FaultPlan()
        self.port = 0
        self._rng = random.Random(self.plan.seed)
        self._stats = _Stats()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._injected = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._arrived: deque[Request] = deque(maxlen=MAX_EXCHANGES)
        self._open_requests = 0  # heads arrived whose exchange is neither recorded nor abandoned

    # -- control -----------------------------------------------------------------------------------
    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)
            self._injected = 0

    @property
    def blob_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/devstoreaccount1"

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._stats.exchanges)

    def arrived(self) -> list[Request]:
        """Requests whose head has arrived, answered or not (``exchanges`` lists only answered ones)."""
        with self._lock:
            return list(self._arrived)

    def wait_idle(self, timeout: float = 30.0, settle: float = 0.3) -> None:
        """Block until no request is in flight for ``settle`` seconds.

        A killed client's last request may still be relayed (its body sat in the socket buffer), so a
        test that counts the wire after a kill waits for that stray exchange before it takes a mark.
        """
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            with self._lock:
                busy = self._open_requests > 0
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= settle:
                return
            time.sleep(0.02)
        raise TimeoutError(f"fault proxy still busy after {timeout} s")

    def fault_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats.faults)

    def __enter__(self) -> FaultProxy:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0, limit=MAX_HEAD))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._sem = asyncio.Semaphore(MAX_CONNECTIONS)
        self._thread = threading.Thread(target=serve, name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop_listening(self) -> None:
        """New connections are refused from now on, as by a host that went away; connections already open
        keep relaying (and keep getting the plan's faults). Callable from a plan's ``only`` predicate."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        try:
            running = asyncio.get_running_loop() is loop
        except RuntimeError:
            running = False
        if running:
            server.close()
        else:
            loop.call_soon_threadsafe(server.close)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- the proxy ---------------------------------------------------------------------------------
    def _wants_body(self, req: Request) -> bool:
        """Whether :meth:`_choose` needs ``req.body`` (buffered, so at most ``MAX_BUFFERED`` bytes)."""
        return False

    def _denial(self, req: Request) -> bytes:
        """The answer to a request refused with 403 (the blob service's XML form)."""
        return _canned(403, "Forbidden", "AuthorizationPermissionMismatch", "injected", None)

    def _response_head(self, req: Request, head: bytes) -> bytes:
        """The upstream's status line and headers as relayed; a subclass may rewrite headers (not the body)."""
        return head

    def _body_limit(self, req: Request, status: int) -> int | None:
        """How many bytes of the upstream's response body to relay before dropping the connection (a body
        broken off mid-way); ``None``: all of it."""
        return None

    def _choose(self, req: Request) -> str | None:
        with self._lock:
            plan = self.plan
            if plan.only is not None and not plan.only(req):
                return None
            if plan.first_n is not None and self._injected >= plan.first_n:
                return None
            x = self._rng.random()
            for name in FAULTS:
                share = getattr(plan, name)
                if x < share:
                    self._injected += 1
                    self._stats.faults[name] += 1
                    return name
                x -= share
            return None

    def _record(self, ex: Exchange) -> None:
        ex.finished = time.monotonic()
        with self._lock:
            self._stats.exchanges.append(ex)
            self._open_requests -= 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        async with self._sem:
            up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
            ex: Exchange | None = None
            try:
                while True:
                    try:
                        head = await reader.readuntil(b"\r\n\r\n")
                    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                        return
                    first, headers = _parse_head(head)
                    method, target, _ = first.split(" ", 2)
                    url = urlsplit(target)
                    query = {k: v[0] for k, v in parse_qs(url.query).items()}
                    req = Request(method, url.path, query, headers)
                    length = int(headers.get("content-length") or 0)
                    buffered = self._wants_body(req) and "chunked" not in headers.get("transfer-encoding", "")
                    if buffered and length <= MAX_BUFFERED:
                        req = replace(req, body=await reader.readexactly(length))
                    else:
                        buffered = False
                    ex = Exchange(req, self._choose(req), None, 0, time.monotonic())
                    with self._lock:
                        self._arrived.append(req)
                        self._open_requests += 1  # undone by _record, or by the finally below
                    if ex.fault == "reset":
                        if not buffered:
                            await _relay_body(reader, None, headers, to_eof=False)
                        self._record(ex)
                        writer.transport.abort()
                        return
                    if ex.fault in ("busy", "error", "deny"):
                        if not buffered:
                            await _relay_body(reader, None, headers, to_eof=False)
                        if ex.fault == "busy":
                            canned = _canned(503, "Server Busy", "ServerBusy", "injected", self.plan.retry_after)
                        elif ex.fault == "error":
                            canned = _canned(500, "Internal Server Error", "InternalError", "injected", None)
                        else:
                            canned = self._denial(req)
                        ex.status = int(canned.split(b" ", 2)[1])  # a subclass's denial may be another refusal
                        self._record(ex)  # before answering: a test may look as soon as the client has it
                        writer.write(canned)
                        await writer.drain()
                        continue
                    if ex.fault == "delay":
                        await asyncio.sleep(self.plan.delay_seconds)
                    # A fresh upstream connection per request: Azurite drops idle keep-alive connections
                    # after 5 s, and a stale one here would look to the agent like a fault we never chose.
                    if up is not None:
                        up[1].close()
                    up = await asyncio.open_connection(*self.upstream)
                    up_r, up_w = up
                    up_w.write(head)
                    if buffered:
                        up_w.write(req.body)
                        ex.body_bytes = len(req.body)
                    else:
                        ex.body_bytes = await _relay_body(reader, up_w, headers, to_eof=False)
                    resp_head = await up_r.readuntil(b"\r\n\r\n")
                    status_line, resp_headers = _parse_head(resp_head)
                    ex.status = int(status_line.split(" ", 2)[1])
                    self._record(ex)
                    writer.write(self._response_head(req, resp_head))
                    if method != "HEAD" and ex.status not in (204, 304) and ex.status >= 200:
                        keep = "content-length" in resp_headers or "chunked" in resp_headers.get(
                            "transfer-encoding", ""
                        )
                        limit = self._body_limit(req, ex.status)
                        await _relay_body(up_r, writer, resp_headers, to_eof=not keep, limit=limit)
                        if not keep:
                            return
                    await writer.drain()
                    if "close" in (headers.get("connection", "") + resp_headers.get("connection", "")).lower():
                        return
            except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError):
                return
            finally:
                if ex is not None and not ex.finished:
                    with self._lock:
                        self._open_requests -= 1  # abandoned before an answer came
                writer.close()
                if up is not None:
                    up[1].close()


class SilentServer:
    """Accepts connections on loopback and never answers (reads and drops what it is sent): a storage
    endpoint that hangs. ``with SilentServer() as s:`` then point a client at ``s.url``."""

    def __init__(self) -> None:
        import socket

        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._conns: list[object] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/devstoreaccount1"

    def _serve(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(0.1):
                if key.fileobj is self._sock:
                    conn, _ = self._sock.accept()
                    self._conns.append(conn)
                    sel.register(conn, selectors.EVENT_READ)
                else:
                    try:
                        data = key.fileobj.recv(CHUNK)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()  # type: ignore[union-attr]
        sel.close()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()  # type: ignore[attr-defined]
        self._sock.close()
