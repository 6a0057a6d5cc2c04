"""The gallery's routes: HTML shells, a small JSON API over the catalog, media, shares.

The pages are static files; ``static/gallery.js`` renders every name with ``textContent`` (never as HTML),
under a Content-Security-Policy that allows no inline script. Requests name items by catalog id, folders and
albums by names looked up in the catalog, shares by token or 12-hex id: each is validated against a pattern
or a dictionary before use, and no request value ever becomes part of a blob name.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sync_core.derived.albums import AlbumStore
from sync_core.derived.albums import resolve as resolve_members
from sync_core.derived.catalog import album_ids, catalog_item
from sync_core.derived.renditions import SIZES, rendition_name
from sync_core.errors import ConfigError

from . import media
from .auth import CSRF_COOKIE, SESSION_COOKIE, AuthError, CloudAuth, LocalAuth, Principal, csrf_ok
from .catalog import Catalog, CatalogStore
from .shares import (
    KIND_ALBUM,
    Share,
    ShareGone,
    ShareNotFound,
    create_share,
    list_shares,
    parse_expiry,
    resolve,
    revoke_share,
)

STATIC_DIR = resources.files("gallery") / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # share tokens are in URLs
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
PAGE = 200
MAX_PAGE = 500
MEDIA_KINDS = {**{str(size): size for size in SIZES}, "original": 0}
ALBUM_EDITOR = "gallery"  # recorded as who created an album or added to it from the web gallery


class SecurityHeaders:
    """Adds the security headers to every response that does not set its own (media sets a sandbox CSP).
    Wraps the gallery, whose catalog store it carries (loaded ahead of the first request by the CLI)."""

    def __init__(self, app: ASGIApp, catalog: CatalogStore) -> None:
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _public(it: dict[str, Any], *, shared: bool) -> dict[str, Any]:
    """What a view may see of an item: a share sees the file name, not the folders around it."""
    name = it["n"].rpartition("/")[2]
    return {
        "id": it["id"], "name": name, "path": name if shared else it["n"], "t": it["t"], "tm": it["tm"],
        "k": it["k"], "w": it["w"], "h": it["h"], "dur": it["dur"], "rs": it["rs"],
    }  # fmt: skip


def _details(it: dict[str, Any], *, shared: bool) -> dict[str, Any]:
    d = {**_public(it, shared=shared), "camera": it["c"], "size": it["z"], "sha256": it["s"], "type": it["ct"],
         "reason": it["rr"]}  # fmt: skip
    if not shared:
        d.update(verdict=it["v"], verified_at=it["vt"], deep_verified_at=it["vd"])
    return d


def _page(items: list[dict[str, Any]], request: Request, *, shared: bool) -> dict[str, Any]:
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
        limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", str(PAGE)))))
    except ValueError:
        offset, limit = 0, PAGE
    return {
        "total": len(items),
        "offset": offset,
        "items": [_public(it, shared=shared) for it in items[offset : offset + limit]],
    }


def _json(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status_code=status, headers={"cache-control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def _edit_album(
    albums: AlbumStore, prefix: str, name: str, add: list[dict[str, Any]], remove: list[dict[str, Any]]
) -> str:
    """Add and remove catalog items (adding to an album that does not exist creates it); returns the album's
    stored name. A removed item takes with it every member that stands for it (moved or edited ones too)."""
    album = albums.create(name)[0] if add else albums.find(name)
    if album is None:
        return name
    if add:
        albums.add(album, [catalog_item(prefix, it) for it in add])
    if remove:
        gone = {it["b"] for it in remove}
        resolved = resolve_members(albums.members(album), [catalog_item(prefix, it) for it in remove])
        albums.remove(album, [r.member for r in resolved if r.item is not None and r.item.blob_name in gone])
    return album.name


def create_app(
    *,
    table: TableClient,
    data: ContainerClient,
    thumbnails: ContainerClient,
    prefix: str,
    auth: LocalAuth | CloudAuth,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    catalog_recheck_s: float | None = None,
) -> SecurityHeaders:
    """The gallery over one prefix of the archive."""
    store = CatalogStore(thumbnails, prefix, **({} if catalog_recheck_s is None else {"recheck_s": catalog_recheck_s}))
    albums_store = AlbumStore(table, ALBUM_EDITOR)

    def signed_in(request: Request) -> Principal:
        return auth.authenticate(request)

    def catalog() -> Catalog:
        return store.get()

    def shell(request: Request) -> Response:
        signed_in(request)
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"cache-control": "no-store"})

    def signin(request: Request) -> Response:
        session = auth.sign_in(request.query_params.get("key", ""))
        if session is None:
            return PlainTextResponse("sign-in link not valid", status_code=401)
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")  # fmt: skip
        return resp

    def session(request: Request) -> Response:
        who = signed_in(request)
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        resp = _json({"user": who.name, "mode": auth.mode, "csrf": token})
        resp.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="strict", secure=request.url.scheme == "https")
        return resp

    def timeline(request: Request) -> Response:
        signed_in(request)
        cat = catalog()
        return _json({**_page(cat.items, request, shared=False), "years": cat.years()})

    def folders(request: Request) -> Response:
        signed_in(request)
        return _json({"folders": catalog().folders()})

    def folder(request: Request) -> Response:
        signed_in(request)
        return _json(_page(catalog().in_folder(request.query_params.get("path", "")), request, shared=False))

    def albums(request: Request) -> Response:
        signed_in(request)
        cat = catalog()
        return _json({"albums": [{"name": n, "count": len(ids)} for n, ids in sorted(cat.albums.items())]})

    def album(request: Request) -> Response:
        signed_in(request)
        cat = catalog()
        name = request.query_params.get("name", "")
        if name not in cat.albums:
            return _error(404, "no such album")
        return _json(_page(cat.in_album(name), request, shared=False))

    async def album_edit(request: Request) -> Response:
        signed_in(request)
        if not csrf_ok(request):
            return _error(403, "missing or wrong CSRF token")
        cat = catalog()
        try:
            body = json.loads(await request.body())
            name = str(body["name"]).strip()
            add = [cat.get(str(i)) for i in body.get("add", [])]
            remove = [cat.get(str(i)) for i in body.get("remove", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "expected {name, add: [ids], remove: [ids]}")
        if any(it is None for it in [*add, *remove]):
            return _error(400, "unknown item")
        try:
            edited = _edit_album(albums_store, prefix, name, [it for it in add if it], [it for it in remove if it])
        except ConfigError as exc:  # a bad name, or an album deleted meanwhile
            return _error(400, str(exc))
        ids = album_ids(albums_store, prefix, cat.items)
        store.replace_albums(ids)
        return _json({"name": edited, "count": len(ids.get(edited, []))})

    def item(request: Request) -> Response:
        signed_in(request)
        it = catalog().get(request.path_params["item"])
        return _json(_details(it, shared=False)) if it else _error(404, "no such item")

    def media_of(it: dict[str, Any] | None, kind: str, request: Request) -> Response:
        if it is None or kind not in MEDIA_KINDS:
            return _error(404, "not found")
        size = MEDIA_KINDS[kind]
        if size:
            blob = thumbnails.get_blob_client(rendition_name(it["s"], size))
            return media.stream_blob(blob, request.headers.get("range"), content_type="image/webp")
        blob = data.get_blob_client(it["b"])
        return media.stream_blob(
            blob, request.headers.get("range"), content_type=it["ct"], filename=it["n"].rpartition("/")[2],
            attachment=it["k"] != "v" and request.query_params.get("download") == "1",
        )  # fmt: skip

    def media_route(request: Request) -> Response:
        signed_in(request)
        return media_of(catalog().get(request.path_params["item"]), request.path_params["kind"], request)

    async def shares(request: Request) -> Response:
        signed_in(request)
        now = clock()
        if request.method == "GET":
            return _json({"shares": [s.as_json(now) for s in list_shares(table)]})
        if not csrf_ok(request):
            return _error(403, "missing or wrong CSRF token")
        try:
            body = json.loads(await request.body())
            kind, selector = str(body.get("kind", "")), str(body.get("selector", ""))
            if kind == KIND_ALBUM and selector not in catalog().albums:
                return _error(404, "no such album")
            share, token = create_share(table, kind, selector, parse_expiry(str(body.get("expires", "7d"))), now=now)
        except (ValueError, AttributeError, ConfigError) as exc:
            return _error(400, str(exc).splitlines()[0] if str(exc) else "bad request")
        return _json({**share.as_json(now), "url": f"{str(request.base_url).rstrip('/')}/s/{token}"}, 201)

    def revoke(request: Request) -> Response:
        signed_in(request)
        if not csrf_ok(request):
            return _error(403, "missing or wrong CSRF token")
        try:
            share = revoke_share(table, request.path_params["share"], now=clock())
        except ShareNotFound:
            return _error(404, "no such share")
        return _json(share.as_json(clock()))

    # -- shared (signed out) ------------------------------------------------------------------------------
    selections: dict[tuple[int, str, str], list[dict[str, Any]]] = {}  # per loaded catalog: a page of a share
    # page loads dozens of thumbnails, and a path glob over 100k items is not free

    def selection(share: Share) -> list[dict[str, Any]]:
        cat = catalog()
        key = (id(cat), share.kind, share.selector)
        if key not in selections:
            if len(selections) > 256 or any(k[0] != id(cat) for k in selections):
                selections.clear()
            selections[key] = share.select(cat)
        return selections[key]

    def shared(request: Request) -> tuple[Share, list[dict[str, Any]]] | Response:
        try:
            share = resolve(table, request.path_params["token"], now=clock())
        except ShareGone:
            return PlainTextResponse("this share link has expired or was revoked", status_code=410)
        except ShareNotFound:
            return PlainTextResponse("no such share link", status_code=404)
        return share, selection(share)

    def share_shell(request: Request) -> Response:
        got = shared(request)
        if isinstance(got, Response):
            return got
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"cache-control": "no-store"})

    def share_items(request: Request) -> Response:
        got = shared(request)
        if isinstance(got, Response):
            return got
        share, items = got
        return _json({**_page(items, request, shared=True), "title": share.selector if share.kind == KIND_ALBUM
                      else "shared photos"})  # fmt: skip

    def _in_share(request: Request) -> dict[str, Any] | Response:
        got = shared(request)
        if isinstance(got, Response):
            return got
        wanted = request.path_params["item"]
        it = next((it for it in got[1] if it["id"] == wanted), None)
        return it if it is not None else _error(404, "not found")

    def share_item(request: Request) -> Response:
        it = _in_share(request)
        return it if isinstance(it, Response) else _json(_details(it, shared=True))

    def share_media(request: Request) -> Response:
        it = _in_share(request)
        return it if isinstance(it, Response) else media_of(it, request.path_params["kind"], request)

    async def auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        return PlainTextResponse(str(exc), status_code=exc.status, headers={"cache-control": "no-store"})

    routes = [
        Route("/", shell),
        Route("/signin", signin),
        Route("/api/session", session),
        Route("/api/timeline", timeline),
        Route("/api/folders", folders),
        Route("/api/folder", folder),
        Route("/api/albums", albums),
        Route("/api/album", album),
        Route("/api/album/edit", album_edit, methods=["POST"]),
        Route("/api/items/{item}", item),
        Route("/api/shares", shares, methods=["GET", "POST"]),
        Route("/api/shares/{share}/revoke", revoke, methods=["POST"]),
        Route("/media/{item}/{kind}", media_route),
        Route("/s/{token}", share_shell),
        Route("/s/{token}/api/items", share_items),
        Route("/s/{token}/api/items/{item}", share_item),
        Route("/s/{token}/media/{item}/{kind}", share_media),
        Mount("/static", app=StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    return SecurityHeaders(Starlette(routes=routes, exception_handlers={AuthError: auth_error}), store)
