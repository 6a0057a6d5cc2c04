"""A requests session for the storage SDKs' transport without the per-request work they never need.

azure-core's ``RequestsTransport`` sends every request through ``requests.Session.request``, which merges
session settings, cookies and hooks into a new ``PreparedRequest`` and then asks the adapter for its
connection pool by re-deriving TLS settings from the URL. For a 1 KiB Put Blob that is about half of the
client's CPU for the request (py-spy, ``bench/``). The storage APIs use no cookies, no auth hooks, no
redirects (azure-core follows them itself) and, without a proxy, no per-request environment.

:class:`LeanSession` keeps requests' objects and semantics — the adapter, its urllib3 pool manager, TLS
settings, timeouts, the exceptions azure-core maps into its own, ``requests.Response`` — and skips only that
bookkeeping. Whenever a call uses anything it skips (cookies, auth, hooks, proxies, files, redirects,
``trust_env``), it is handed to ``requests.Session.request`` unchanged. A request that comes without a
timeout gets :data:`CONNECT_TIMEOUT` and :data:`READ_TIMEOUT`: nothing here waits for ever.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

CONNECT_TIMEOUT = 20.0  # seconds to connect; also bounds each send of a request body (urllib3)
READ_TIMEOUT = 60.0  # seconds without a byte of the answer: a service that never answers is a failure


class LeanAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that remembers the connection pool per host and TLS settings (the pool manager
    would find the same pool, after parsing the URL and rebuilding the TLS key on every request) and builds
    responses without a cookie jar."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._pools: dict[tuple[str, Any, Any], Any] = {}

    def get_connection_with_tls_context(
        self, request: requests.PreparedRequest, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
        url = request.url or ""
        scheme, _, rest = url.partition("://")
        key = (
            f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}",
            verify if isinstance(verify, (bool, str)) else id(verify),
            cert,
        )
        pool = self._pools.get(key)
        if pool is None or pool.pool is None:  # new, or closed by the pool manager (evicted)
            pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            super().cert_verify(pool, url, verify, cert)
            self._pools[key] = pool
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if conn not in self._pools.values():  # remembered pools were configured when first returned
            super().cert_verify(conn, url, verify, cert)

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url or ""
        response.request = req
        response.connection = self
        return response


class LeanSession(requests.Session):
    """``requests.Session`` whose plain requests skip settings merges, cookies and hooks (module doc)."""

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: Any = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        if timeout is None:
            timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)
        plain = not (
            params or cookies or files or auth or hooks or proxies or json is not None or allow_redirects
            or self.trust_env or self.proxies or self.auth or self.params or self.cert or len(self.cookies)
            or not isinstance(data, (bytes, bytearray, type(None)))
        )  # fmt: skip
        adapter = self.get_adapter(url) if plain else None
        if not isinstance(adapter, LeanAdapter):
            return super().request(
                method, url, params=params, data=data, headers=headers, cookies=cookies, files=files, auth=auth,
                timeout=timeout, allow_redirects=allow_redirects, proxies=proxies, hooks=hooks, stream=stream,
                verify=verify, cert=cert, json=json,
            )  # fmt: skip
        prep = requests.PreparedRequest()
        prep.prepare_method(method)
        prep.prepare_url(url, None)
        merged = CaseInsensitiveDict(self.headers)
        if headers:
            merged.update(headers)
        prep.prepare_headers(merged)
        prep.prepare_body(data, None)
        prep.hooks = default_hooks()
        response = adapter.send(
            prep, stream=bool(stream), timeout=timeout, verify=self.verify if verify is None else verify, cert=cert
        )
        if not stream:
            _ = response.content  # as Session.send: read the body now, the connection goes back to the pool
        return response
