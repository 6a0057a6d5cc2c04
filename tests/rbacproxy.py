"""A proxy in front of Azurite that enforces one identity's Azure RBAC grants, as the storage service does.

Azurite authorizes every request signed with its account key, so on its own it cannot tell whether the roles
infra/ assigns are the roles the code needs. :class:`RbacProxy` sits in front of one Azurite endpoint (blob
or table), works out which permission each request needs at which scope (:mod:`tests.rbac`), and answers
``403 AuthorizationPermissionMismatch`` — in the service's own XML (blob) or JSON (table) form — to any
request outside the identity's grants; everything else is relayed unchanged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping

from .faultproxy import FaultProxy, Request, _canned
from .rbac import Scope, allowed, blob_needs, table_needs

_MESSAGE = "This request is not authorized to perform this operation using this permission."


class RbacProxy(FaultProxy):
    """``with RbacProxy(azurite.blob_port, "blob", granted) as p:``; ``p.denied`` lists the refusals."""

    def __init__(self, upstream_port: int, service: str, granted: Mapping[Scope, frozenset[str]]):
        if service not in ("blob", "table"):
            raise ValueError("service is 'blob' or 'table'")
        super().__init__(upstream_port)
        self.service = service
        self.granted = dict(granted)
        self.denied: list[str] = []  # "METHOD path: missing permission"
        self._denied_lock = threading.Lock()

    def _wants_body(self, req: Request) -> bool:
        return self.service == "table" and req.method == "POST" and req.path.rsplit("/", 1)[-1] in ("$batch", "Tables")

    def _choose(self, req: Request) -> str | None:
        if self.service == "blob":
            needs = blob_needs(req.method, req.path, req.query, req.headers)
        else:
            needs = table_needs(req.method, req.path, req.headers, req.body)
        missing = allowed(self.granted, needs)
        if missing:
            with self._denied_lock:
                self.denied.append(f"{req.method} {req.path}: {'; '.join(missing)}")
            return "deny"
        return super()._choose(req)

    def _denial(self, req: Request) -> bytes:
        if self.service == "blob":
            return _canned(403, "Forbidden", "AuthorizationPermissionMismatch", _MESSAGE, None)
        body = json.dumps(
            {
                "odata.error": {
                    "code": "AuthorizationPermissionMismatch",
                    "message": {"lang": "en-US", "value": _MESSAGE},
                }
            }
        ).encode()
        head = (
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nx-ms-error-code: AuthorizationPermissionMismatch\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        return head.encode() + body
