"""Who may see the private gallery.

* **local** (``azphotosync gallery``): served on loopback; requests from another address are refused, and so
  are requests whose Host is not a loopback name (a DNS-rebinding page cannot read the library). Binding
  another address takes ``--allow-remote`` and then every request needs the sign-in cookie, obtained by
  opening the one-time sign-in link the command prints.
* **cloud** (the Function App): App Service authentication (Entra ID) signs the user in and passes the
  principal in ``X-MS-CLIENT-PRINCIPAL*`` headers, which the platform strips from incoming requests, so they
  cannot be forged from outside — but only when the platform's authentication is on, so the headers are
  trusted only when ``WEBSITE_AUTH_ENABLED`` (set by the platform) says so; otherwise every view is 401. No
  principal: 401. A principal whose object id, name or group is not in
  :data:`ENV_ALLOWED` (comma-separated): 403. An empty setting lets nobody in.

Writes (share create/revoke, album edit) also need the CSRF double-submit: the ``X-CSRF-Token`` header equal
to the ``gallery_csrf`` cookie (SameSite=Strict), and a same-origin ``Sec-Fetch-Site``/``Origin`` when sent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

ENV_ALLOWED = "GALLERY_ALLOWED_PRINCIPALS"
ENV_PLATFORM_AUTH = "WEBSITE_AUTH_ENABLED"  # set to "True" by App Service when its authentication is on
SESSION_COOKIE = "gallery_session"
CSRF_COOKIE = "gallery_csrf"
CSRF_HEADER = "x-csrf-token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class AuthError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if ":" in host else host


class LocalAuth:
    """Loopback by default; another address only with ``allow_remote`` and the sign-in key."""

    mode = "local"

    def __init__(self, *, allow_remote: bool = False, signin_key: str | None = None) -> None:
        self.allow_remote = allow_remote
        self.signin_key = signin_key or (secrets.token_urlsafe(32) if allow_remote else None)
        self._session = secrets.token_urlsafe(32)

    def authenticate(self, request: Request) -> Principal:
        if not self.allow_remote:
            client = request.client.host if request.client else ""
            if client not in LOOPBACK_HOSTS:
                raise AuthError(403, "the local gallery answers only on this computer")
            if _host_name(request.headers.get("host", "")) not in LOOPBACK_HOSTS:
                raise AuthError(403, "unexpected Host header for a local gallery")
            return Principal("local", "local user")
        if hmac.compare_digest(request.cookies.get(SESSION_COOKIE, ""), self._session):
            return Principal("local", "signed-in user")
        raise AuthError(401, "sign in with the link printed by `azphotosync gallery`")

    def sign_in(self, key: str) -> str | None:
        """The session cookie value for a correct sign-in key, else ``None``."""
        if self.signin_key and hmac.compare_digest(key.encode(), self.signin_key.encode()):
            return self._session
        return None


class CloudAuth:
    """App Service authentication headers, checked against the allowed principals."""

    mode = "cloud"

    def __init__(self, allowed: str | None = None, *, platform_auth: bool | None = None) -> None:
        raw = os.environ.get(ENV_ALLOWED, "") if allowed is None else allowed
        self.allowed = frozenset(p.strip().lower() for p in raw.split(",") if p.strip())
        if platform_auth is None:
            platform_auth = os.environ.get(ENV_PLATFORM_AUTH, "").lower() == "true"
        self.platform_auth = platform_auth

    def authenticate(self, request: Request) -> Principal:
        pid = request.headers.get("x-ms-client-principal-id", "").strip()
        if not self.platform_auth:
            raise AuthError(401, "sign-in is not configured for this app (App Service authentication is off)")
        if not pid:
            raise AuthError(401, "sign-in required: open /.auth/login/aad?post_login_redirect_uri=/")
        name = request.headers.get("x-ms-client-principal-name", "").strip()
        principal = Principal(pid, name or pid, _groups(request.headers.get("x-ms-client-principal", "")))
        if not ({pid.lower(), name.lower()} | {g.lower() for g in principal.groups}) & self.allowed:
            raise AuthError(403, "this account is not allowed to open the gallery")
        return principal

    def sign_in(self, key: str) -> str | None:
        return None


def _groups(encoded: str) -> frozenset[str]:
    """Group object ids from the base64 JSON principal (claims of type ``groups``)."""
    if not encoded:
        return frozenset()
    try:
        doc = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
        return frozenset(str(c["val"]) for c in doc.get("claims", []) if c.get("typ") == "groups")
    except (ValueError, binascii.Error, TypeError, KeyError, AttributeError):
        return frozenset()


def csrf_ok(request: Request) -> bool:
    """Double-submit check plus the browser's own origin signals."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    cookie, header = request.cookies.get(CSRF_COOKIE, ""), request.headers.get(CSRF_HEADER, "")
    return bool(cookie) and hmac.compare_digest(cookie, header)
