"""Our own small requests sent with ``http.client``, below requests and urllib3, still through azure-core's pipeline.

For a small request (a tiny Put Blob, a Table page, a transaction) most of the client's CPU goes to requests' and
urllib3's per-request layers — preparing and re-quoting the request, finding the pool, wrapping the answer twice —
not to the bytes (figures in ``docs/benchmarks.md``). The fast paths ask for this transport's direct path with a
keyword (:data:`DIRECT`, added by :mod:`~sync_core.storage.sdk_internals` only when a client's transport is a
:class:`DirectTransport`); the pipeline in front of it — credential, retry policy, throttle hook, logging — is the
same, and every request the SDKs build themselves still goes through requests exactly as before.

The direct path is taken only where it puts the same request on the wire as requests would: an
``azure.core.rest.HttpRequest`` with a bytes body (or none) and plain ASCII URL and headers, http or https, no
proxy, no client certificate, certificates verified; anything else is handed to ``RequestsTransport.send``.
Failures are raised as that transport raises them — :class:`ServiceRequestError` when the request could not be
sent, :class:`ServiceResponseError` once it was (also for a streamed body cut short; :class:`IncompleteReadError`
when a body read whole is) — so retries, the outage watch and download resumption behave the same. Nothing waits
for ever: connecting is bounded by the connection timeout, and every send and read after it by the read timeout.
A connection is reused only after its answer was read to the end, and an idle one the server closed meanwhile is
replaced before use.
"""

from __future__ import annotations

import codecs
import http.client
import json
import os
import re
import select
import ssl
import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import requests.certs
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    IncompleteReadError,
    ResponseNotReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamClosedError,
    StreamConsumedError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.utils import case_insensitive_dict

from sync_core.storage.lean_http import CONNECT_TIMEOUT, READ_TIMEOUT

DIRECT = "direct_http"  # the keyword a sender passes (``send_request(request, direct_http=True)``) to ask for it

_Key = tuple[str, str, int]  # scheme, host, port
_Body = bytes | bytearray | memoryview
_OPTIONS = frozenset({"stream", "connection_timeout", "read_timeout", "connection_verify", "connection_cert"})
_PORTS = {"http": 80, "https": 443}
# What requests would re-quote or refuse in a URL (it sends a quoted copy; we send the URL as it is) and ``#``.
_REQUOTED = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,/:;=?@\[\]%]|%(?![0-9A-Fa-f]{2})")
_NAME = re.compile(r"[^:\s][^:\r\n]*")  # requests' header checks (it refuses what does not match)
_VALUE = re.compile(r"(?:\S[^\r\n]*)?")
_SEND_WHOLE = 64 * 1024  # a body up to this size is handed to http.client whole
_SEND_PIECE = 256 * 1024  # larger ones in pieces, each bounded by the read timeout (a slow uplink is not a hang)
_A = TypeVar("_A")
_R = TypeVar("_R")


class DirectResponse(HttpResponse):
    """An answer read straight from ``http.client``: bytes as received (never decompressed: we send
    ``Accept-Encoding: identity``), in pieces of the transport's ``connection_data_block_size``. Its connection goes
    back to the pool once the body has been read to the end; closed before that, or broken, it is closed."""

    def __init__(self, request: HttpRequest, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                 key: _Key, transport: DirectTransport, block_size: int):  # fmt: skip
        self._request = request
        self._raw = raw
        self._conn: http.client.HTTPConnection | None = conn  # until the body is read to the end, or given up
        self._key = key
        self._transport = transport
        self._block = block_size
        headers: MutableMapping[str, str] = case_insensitive_dict()
        for name, value in raw.getheaders():  # repeated headers joined, as urllib3 does
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._headers = headers
        self._content: bytes | None = None
        self._closed = False
        self._consumed = False
        self._encoding: str | None = None
        self._encoding_set = False

    @property
    def request(self) -> HttpRequest:
        return self._request

    @property
    def status_code(self) -> int:
        return self._raw.status

    @property
    def headers(self) -> MutableMapping[str, str]:
        return self._headers

    @property
    def reason(self) -> str:
        return self._raw.reason

    @property
    def content_type(self) -> str | None:
        return self._headers.get("Content-Type")

    @property
    def url(self) -> str:
        return self._request.url

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_stream_consumed(self) -> bool:
        return self._consumed

    @property
    def encoding(self) -> str | None:
        if not self._encoding_set:
            self._encoding, self._encoding_set = _charset(self.content_type), True
        return self._encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding, self._encoding_set = value, True

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise ResponseNotReadError(self)
        return self._content

    def text(self, encoding: str | None = None) -> str:
        """The body as text, decoded as azure-core's responses decode it (a UTF-8 BOM dropped)."""
        content = self.content
        if not content:
            return ""
        encoding = encoding or self.encoding
        if encoding == "utf-8":
            encoding = "utf-8-sig"
        if encoding:
            return content.decode(encoding)
        return codecs.getincrementaldecoder("utf-8-sig")(errors="replace").decode(content)

    def json(self) -> Any:
        return json.loads(self.text())

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HttpResponseError(response=self)

    def __enter__(self) -> DirectResponse:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = f", Content-Type: {self.content_type}" if self.content_type else ""
        return f"<HttpResponse: {self.status_code} {self.reason}{kind}>"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._conn is not None:  # the body was not read to the end: the connection cannot be reused
                self._give_up()

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self._stream(IncompleteReadError))
        self._consumed = True
        self.close()
        return self._content

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        """The body as it arrives. A body cut short raises :class:`ServiceResponseError`, as azure-core's
        requests transport does here (urllib3's ``ProtocolError``)."""
        return self._stream(ServiceResponseError)

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        """As :meth:`iter_raw`, nothing decompressed (module doc), but a body cut short raises
        :class:`IncompleteReadError`, as azure-core's requests transport does here; one already read comes from
        memory."""
        if self._content is None:
            return self._stream(IncompleteReadError)
        return self._slices(self._content)

    def iter_into(self, buffer: bytearray | memoryview | None = None) -> Iterator[memoryview]:
        """The body as :meth:`iter_raw` reads it (same errors, same connection handling), but read into ``buffer``
        and handed on as views of it, each released when the next is asked for: the consumer copies what it
        keeps. Not part of azure-core's contract (its iterators yield bytes): a fresh bytes object per piece cost
        as much CPU as hashing it whenever the allocator gave it fresh pages. ``buffer``: writable and
        contiguous, its size the pieces'; by default one of the transport's ``connection_data_block_size``, or
        of the body's length if that is smaller."""
        if buffer is None:
            length = self._raw.length  # None: chunked, or read to the connection's end
            buffer = bytearray(self._block if length is None else max(1, min(self._block, length)))
        view = memoryview(buffer).cast("B")
        if view.readonly or not view:
            raise ValueError("iter_into needs a writable, non-empty buffer")
        return self._views(view)

    def _views(self, buffer: memoryview) -> Iterator[memoryview]:
        self._start()
        try:
            while not self._raw.isclosed():
                n = self._receive(ServiceResponseError, self._raw.readinto, buffer)
                if n:
                    piece = buffer[:n]
                    yield piece
                    piece.release()  # one kept past its turn fails loudly instead of changing under its keeper
        finally:
            self.close()  # as in _stream

    def _slices(self, content: bytes) -> Iterator[bytes]:
        for i in range(0, len(content), self._block):
            yield content[i : i + self._block]
        self.close()

    def _start(self) -> None:
        if self._consumed:
            raise StreamConsumedError(self)
        if self._closed:
            raise StreamClosedError(self)
        self._consumed = True

    def _stream(self, cut: type[AzureError]) -> Iterator[bytes]:
        self._start()
        try:
            while not self._raw.isclosed():
                piece = self._receive(cut, self._raw.read, self._block)
                if piece:
                    yield piece
        finally:
            self.close()  # read to the end: the connection is back in the pool already; else it is closed

    def _receive(self, cut: type[AzureError], read: Callable[[_A], _R], arg: _A) -> _R:
        """``read(arg)`` on the body (``raw.read`` or ``raw.readinto``), its failures mapped as azure-core's
        requests transport maps them; once the body has ended, the connection goes back to the pool."""
        raw = self._raw
        try:
            got = read(arg)
        except http.client.IncompleteRead as exc:  # a chunked body cut off
            self._fail(cut(exc, error=exc), exc)
        except TimeoutError as exc:
            self._fail(ServiceResponseTimeoutError(exc, error=exc), exc)
        except (OSError, http.client.HTTPException) as exc:
            self._fail(ServiceResponseError(exc, error=exc), exc)
        if raw.isclosed():
            if raw.length:  # http.client ends a body cut short without an error: the bytes still owed
                self._fail(cut(f"the connection ended {raw.length} bytes before the Content-Length"), None)
            conn, self._conn = self._conn, None
            if conn is not None:
                if raw.will_close:
                    conn.close()
                else:
                    self._transport._give_back(self._key, conn)
        return got

    def _fail(self, error: Exception, cause: BaseException | None) -> NoReturn:
        self._give_up()
        raise error from cause

    def _give_up(self) -> None:
        conn, self._conn = self._conn, None
        self._raw.close()
        if conn is not None:
            conn.close()


class DirectTransport(RequestsTransport):
    """azure-core's ``RequestsTransport``, except that a request sent with ``direct_http=True`` that fits (module
    doc) goes out through ``http.client`` on this transport's own connections, at most ``pool_size`` of them kept
    idle per host. Thread-safe, as the shared transport must be."""

    def __init__(self, *, pool_size: int = 10, **kwargs: Any):
        super().__init__(**kwargs)
        self._pool_size = max(1, pool_size)
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._tls: dict[Any, ssl.SSLContext] = {}
        self._shut = False
        self.direct_sends = 0  # requests sent the direct way (tests, benchmarks)

    def send(self, request: Any, *, proxies: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if not kwargs.pop(DIRECT, False):
            return super().send(request, proxies=proxies, **kwargs)
        self.open()
        plan = self._plan(request, proxies, kwargs)
        if plan is None:
            return super().send(request, proxies=proxies, **kwargs)
        key, method, target, headers, body, connect_timeout, read_timeout, verify = plan
        conn = self._take(key) or self._connect(key, connect_timeout, verify)
        raw = _exchange(conn, method, target, headers, body, read_timeout)
        response = DirectResponse(request, raw, conn, key, self, self.connection_config.data_block_size)
        if not kwargs.get("stream"):
            response.read()  # closes it too, as azure-core does for a response not asked as a stream
        return response

    def close(self) -> None:
        with self._lock:
            self._shut = True
            idle = [conn for conns in self._idle.values() for conn in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()
        super().close()

    def _plan(self, request: Any, proxies: Any, kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
        """What the direct path sends, or ``None`` when requests must send it (module doc)."""
        session = self.session
        if (
            not isinstance(request, HttpRequest) or proxies or not kwargs.keys() <= _OPTIONS
            or kwargs.get("connection_cert", self.connection_config.cert) is not None
            or session is None or session.trust_env or session.proxies
        ):  # fmt: skip
            return None
        verify = kwargs.get("connection_verify", self.connection_config.verify)
        connect_timeout = kwargs.get("connection_timeout", self.connection_config.timeout)
        read_timeout = kwargs.get("read_timeout", self.connection_config.read_timeout)
        if verify is False or not isinstance(verify, (bool, str)) or isinstance(connect_timeout, tuple):
            return None
        url = request.url
        if not url.isascii() or _REQUOTED.search(url):
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in _PORTS or not host or parts.username or parts.password:
            return None
        body = request.content
        if isinstance(body, str):
            if not body.isascii():  # requests and http.client disagree on such a body's bytes
                return None
            body = body.encode("ascii")
        elif isinstance(body, memoryview):
            if not body.c_contiguous:
                return None
            body = body.cast("B")
        elif body is not None and not isinstance(body, (bytes, bytearray)):
            return None
        size = 0 if body is None else len(body)
        headers: dict[str, str] = {}
        names: set[str] = set()
        given: str | None = None
        for name, value in request.headers.items():
            if not (isinstance(name, str) and isinstance(value, str) and name.isascii() and value.isascii()
                    and _NAME.fullmatch(name) and _VALUE.fullmatch(value)):  # fmt: skip
                return None
            lower = name.lower()
            if lower in ("accept-encoding", "transfer-encoding"):  # an encoded body: requests' handling
                return None
            names.add(lower)
            if lower == "content-length":
                given = value
            else:
                headers[name] = value
        for name, value in session.headers.items():  # requests' session defaults, but never a compressed answer
            lower = name.lower()
            if lower not in names and lower != "accept-encoding":
                headers[name] = value
        method = request.method.upper()  # as requests sends it
        if size:  # as requests' prepare_body: the body's own length wins
            headers["Content-Length"] = str(size)
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = given or "0"
        elif given is not None:
            headers["Content-Length"] = given
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (scheme, host, port or _PORTS[scheme])
        return (key, method, target, headers, body if size else None, connect_timeout or CONNECT_TIMEOUT,
                read_timeout or READ_TIMEOUT, verify)  # fmt: skip

    def _take(self, key: _Key) -> http.client.HTTPConnection | None:
        """An idle connection to ``key`` the server has not closed, or ``None``."""
        with self._lock:
            self.direct_sends += 1
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or not _dropped(conn):
                return conn
            conn.close()

    def _give_back(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if not self._shut and len(idle) < self._pool_size:
                idle.append(conn)
                return
        conn.close()

    def _connect(self, key: _Key, connect_timeout: float, verify: bool | str) -> http.client.HTTPConnection:
        scheme, host, port = key
        try:
            if scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=connect_timeout, context=self._context(verify)
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
            conn.connect()  # TCP (and TLS) within the connection timeout: the request is not sent yet
        except TimeoutError as exc:
            raise ServiceRequestTimeoutError(exc, error=exc) from exc
        except (OSError, UnicodeError, ValueError) as exc:  # refused, DNS, TLS (incl. a refused certificate)
            raise ServiceRequestError(exc, error=exc) from exc
        return conn

    def _context(self, verify: bool | str) -> ssl.SSLContext:
        """Certificates and host names verified against requests' own CA bundle (certifi) or the given one."""
        with self._lock:
            context = self._tls.get(verify)
            if context is None:
                where = requests.certs.where() if verify is True else str(verify)
                if os.path.isdir(where):
                    context = ssl.create_default_context(capath=where)
                else:
                    context = ssl.create_default_context(cafile=where)
                self._tls[verify] = context
            return context


def _exchange(
    conn: http.client.HTTPConnection, method: str, target: str, headers: dict[str, str], body: _Body | None,
    read_timeout: float,
) -> http.client.HTTPResponse:  # fmt: skip
    """Send the request on ``conn`` and read the answer's head; failures as azure-core's requests transport maps
    them once the request is under way (``conn`` is then closed)."""
    cut: OSError | None = None
    try:
        assert conn.sock is not None
        conn.sock.settimeout(read_timeout)
        if body is None or len(body) <= _SEND_WHOLE:
            conn.request(method, target, body, headers)
        else:
            conn.request(method, target, None, headers)
            view = memoryview(body).cast("B")
            for i in range(0, len(view), _SEND_PIECE):
                conn.send(view[i : i + _SEND_PIECE])
    except (BrokenPipeError, ConnectionResetError) as exc:
        cut = exc  # as urllib3: the server may have answered (a refusal) before it stopped reading: read that
    except TimeoutError as exc:
        conn.close()
        raise ServiceResponseTimeoutError(exc, error=exc) from exc
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise ServiceResponseError(exc, error=exc) from exc
    try:
        return conn.getresponse()
    except TimeoutError as exc:
        conn.close()
        raise ServiceResponseTimeoutError(exc, error=exc) from exc
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        error = cut or exc
        raise ServiceResponseError(error, error=error) from error


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server has closed an idle connection (as urllib3 checks: readable at once means closed, or
    something unexpected arrived; either way it is not to be used)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _charset(content_type: str | None) -> str | None:
    """The ``charset`` of a Content-Type, if Python knows it."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip("\"'")
            try:
                codecs.lookup(value)
            except LookupError:
                return None
            return value
    return None
