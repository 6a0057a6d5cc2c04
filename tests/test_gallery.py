"""The gallery without a browser: auth modes, CSRF, share links and their CLI, ranges, the catalog."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from starlette.testclient import TestClient

from agent.gallery_cmd import prepare
from gallery.app import STATIC_DIR, create_app
from gallery.auth import CloudAuth, LocalAuth
from gallery.catalog import CatalogStore
from gallery.media import RangeNotSatisfiable, parse_range
from gallery.shares import ShareGone, list_shares, parse_expiry, resolve
from sync_core.errors import ConfigError
from sync_core.index.table_index import SHARES_PARTITION
from tests.conftest import run_cli
from tests.gallery_library import ALBUM, HOSTILE, Library, build_library

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def library(azurite, tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(azurite.connection_string, tmp_path_factory.mktemp("gallery"))


def _flags(lib: Library) -> list[str]:
    return ["--connection-string", lib.connection_string, "--container", lib.data.container_name,
            "--table", lib.table.table_name, "--prefix", lib.prefix, "--source-id", "gallerytest",
            "--thumbnails-container", lib.thumbnails.container_name]  # fmt: skip


def _local(lib: Library, **kw) -> TestClient:
    app = create_app(table=lib.table, data=lib.data, thumbnails=lib.thumbnails, prefix=lib.prefix, auth=LocalAuth(**kw))
    return TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000))


@pytest.fixture
def client(library: Library) -> Iterator[TestClient]:
    with _local(library) as c:
        yield c


# -- local mode ----------------------------------------------------------------------------------------------
def test_local_gallery_answers_only_loopback_clients_with_a_loopback_host(library: Library):
    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=LocalAuth())  # fmt: skip
    assert TestClient(app, base_url=LOCAL, client=("127.0.0.1", 1)).get("/api/timeline").status_code == 200
    assert TestClient(app, base_url="http://[::1]:8765", client=("::1", 1)).get("/").status_code == 200
    assert TestClient(app, base_url=LOCAL, client=("192.168.1.20", 1)).get("/api/timeline").status_code == 403
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host
    rebinding = TestClient(app, base_url="http://evil.example:8765", client=("127.0.0.1", 1))
    assert rebinding.get("/api/timeline").status_code == 403


def test_remote_gallery_needs_the_sign_in_link(library: Library):
    auth = LocalAuth(allow_remote=True)
    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=auth)  # fmt: skip
    c = TestClient(app, base_url="http://192.168.1.5:8765", client=("192.168.1.20", 1))
    assert c.get("/api/timeline").status_code == 401
    assert c.get("/signin?key=wrong", follow_redirects=False).status_code == 401
    r = c.get(f"/signin?key={auth.signin_key}", follow_redirects=False)
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert c.get("/api/timeline").status_code == 200
    assert len(auth.signin_key or "") >= 43


def test_gallery_command_refuses_a_network_address_without_allow_remote(library: Library):
    r = run_cli("gallery", "--host", "0.0.0.0", *_flags(library))
    assert r.code == 2 and "--allow-remote" in r.err


def test_gallery_command_builds_a_missing_catalog(library: Library, tmp_path: Path, capsys):
    from agent.cli import build_parser

    library.thumbnails.delete_blob(f"catalog/{library.prefix}.json.gz")
    args = build_parser("gallery", full=False).parse_args(["gallery", "--port", "0", "--state-dir", str(tmp_path),
                                                           *_flags(library)])  # fmt: skip
    app, url = prepare(args)
    assert "catalog built: 5 items" in capsys.readouterr().out
    assert url == "http://127.0.0.1:{port}/"
    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 1)) as c:
        assert c.get("/api/timeline").json()["total"] == 5


# -- cloud mode ----------------------------------------------------------------------------------------------
def test_cloud_auth_by_principal_name_id_or_group(library: Library):
    import base64
    import json

    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=CloudAuth("ana@example.org, 11111111-2222-3333-4444-555555555555",
                                    platform_auth=True))  # fmt: skip
    c = TestClient(app, base_url="https://gallery.example")
    assert c.get("/api/timeline").status_code == 401
    assert c.get("/", headers={"x-ms-client-principal-id": "x", "x-ms-client-principal-name": "ANA@example.org"}
                 ).status_code == 200  # fmt: skip
    principal = base64.b64encode(json.dumps(
        {"claims": [{"typ": "groups", "val": "11111111-2222-3333-4444-555555555555"}]}).encode()).decode()
    assert c.get("/api/timeline", headers={"x-ms-client-principal-id": "bob", "x-ms-client-principal": principal}
                 ).status_code == 200  # fmt: skip
    assert c.get("/api/timeline", headers={"x-ms-client-principal-id": "bob"}).status_code == 403
    nobody = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails,
                        prefix=library.prefix, auth=CloudAuth("", platform_auth=True))  # fmt: skip
    assert TestClient(nobody).get("/api/timeline", headers={"x-ms-client-principal-id": "ana"}).status_code == 403


def test_cloud_auth_trusts_principal_headers_only_when_the_platform_signs_in(library: Library, monkeypatch):
    """Without App Service authentication in front, anyone could send the headers: nothing is served."""
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=CloudAuth("ana@example.org"))  # fmt: skip
    forged = {"x-ms-client-principal-id": "x", "x-ms-client-principal-name": "ana@example.org"}
    assert TestClient(app).get("/api/timeline", headers=forged).status_code == 401
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=CloudAuth("ana@example.org"))  # fmt: skip
    assert TestClient(app).get("/api/timeline", headers=forged).status_code == 200


# -- pages, headers, validation --------------------------------------------------------------------------------
def test_pages_have_a_strict_csp_and_no_inline_script(client: TestClient):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and r.headers["x-content-type-options"] == "nosniff"
    for html in STATIC_DIR.iterdir():
        if html.name.endswith(".html"):
            text = html.read_text()
            assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", text)), html
            assert " on" not in " ".join(re.findall(r"<[^>]+>", text)).lower().replace(" one", ""), html
            assert "style=" not in text, html
    js = (STATIC_DIR / "gallery.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


def test_names_are_data_and_requests_name_items_only_by_catalog_id(client: TestClient, library: Library):
    items = client.get("/api/timeline").json()["items"]
    assert HOSTILE in {it["name"] for it in items}
    beach = library.blobs["2024/summer/beach.jpg"]
    for path in (f"/media/{beach}/original", "/media/..%2F..%2Fetc/320", f"/api/items/{beach}",
                 f"/media/{library.ids['2024/summer/beach.jpg']}/9999", "/api/items/ZZZZ"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    assert client.get("/api/album", params={"name": "no such"}).status_code == 404
    assert client.get("/api/folder", params={"path": "../.."}).json()["total"] == 0


def test_original_supports_ranges_and_media_is_sandboxed(client: TestClient, library: Library):
    vid = library.ids["2024/summer/clip.mp4"]
    whole = client.get(f"/media/{vid}/original")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-security-policy"].startswith("sandbox")
    size = len(whole.content)
    tail = client.get(f"/media/{vid}/original", headers={"range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole.content[-100:]
    assert tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    mid = client.get(f"/media/{vid}/original", headers={"range": "bytes=10-19"})
    assert mid.status_code == 206 and mid.content == whole.content[10:20]
    assert client.get(f"/media/{vid}/original", headers={"range": f"bytes={size}-"}).status_code == 416


def test_parse_range():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=5-100", 10) == (5, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=0-1,3-4", 10) is None  # several ranges: the whole blob
    for bad in ("bytes=10-", "bytes=5-4", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            parse_range(bad, 10)


def test_page_views_read_the_catalog_not_the_table(library: Library, azurite):
    """A gallery whose table client points at a table that does not exist still serves every view."""
    missing = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client("nosuchtable")
    app = create_app(table=missing, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=LocalAuth())  # fmt: skip
    c = TestClient(app, base_url=LOCAL, client=("127.0.0.1", 1))
    assert c.get("/api/timeline").json()["total"] == 5
    assert c.get("/api/album", params={"name": ALBUM}).json()["total"] == 2
    assert c.get(f"/api/items/{library.ids['2024/summer/beach.jpg']}").json()["verdict"] == "ok"
    assert c.get(f"/media/{library.ids['2024/summer/beach.jpg']}/320").status_code == 200


def test_catalog_is_reloaded_when_its_blob_changes(library: Library):
    from sync_core.derived.catalog import refresh_catalog

    store = CatalogStore(library.thumbnails, library.prefix, recheck_s=0)
    first = store.get()
    assert store.get() is first  # same etag: not read again
    refresh_catalog(library.table, library.thumbnails, library.prefix)
    assert store.get() is not first


# -- writes: CSRF ------------------------------------------------------------------------------------------------
def test_share_create_needs_the_csrf_token_and_same_origin(client: TestClient):
    csrf = client.get("/api/session").json()["csrf"]
    body = {"kind": "album", "selector": ALBUM, "expires": "1d"}
    assert client.post("/api/shares", json=body).status_code == 403
    assert client.post("/api/shares", json=body, headers={"x-csrf-token": "wrong"}).status_code == 403
    cross = {"x-csrf-token": csrf, "origin": "http://evil.example", "sec-fetch-site": "cross-site"}
    assert client.post("/api/shares", json=body, headers=cross).status_code == 403
    r = client.post("/api/shares", json=body, headers={"x-csrf-token": csrf, "origin": LOCAL})
    assert r.status_code == 201 and r.json()["url"].startswith(f"{LOCAL}/s/")
    bad = client.post("/api/shares", json={**body, "expires": "9y"}, headers={"x-csrf-token": csrf})
    assert bad.status_code == 400


# -- share links and their CLI ------------------------------------------------------------------------------------
def test_share_cli_create_list_revoke(library: Library, client: TestClient, tmp_path: Path):
    flags = [*_flags(library), "--state-dir", str(tmp_path)]
    r = run_cli("share", "create", "--path", "2023/*", "--expires", "2h", "--json", *flags)
    assert r.code == 0, r.err
    made = r.json()
    token = made["url"].rsplit("/", 1)[1]
    assert len(token) >= 43 and made["state"] == "active"
    # only the token's hash is stored
    for e in library.table.query_entities("PartitionKey eq @pk", parameters={"pk": SHARES_PARTITION}):
        assert token not in str(dict(e))
    listed = run_cli("share", "list", "--json", *flags).json()["shares"]
    assert made["id"] in {s["id"] for s in listed}
    page = client.get(f"/s/{token}/api/items").json()
    assert sorted(it["name"] for it in page["items"]) == ["broken.jpg", "snow.jpg"]
    assert all("/" not in it["path"] for it in page["items"])  # a share sees names, not the folders around
    beach = library.ids["2024/summer/beach.jpg"]
    assert client.get(f"/s/{token}/media/{beach}/320").status_code == 404
    assert run_cli("share", "revoke", made["id"], *flags).code == 0
    assert client.get(f"/s/{token}").status_code == 410
    with pytest.raises(ShareGone):
        resolve(library.table, token)
    assert run_cli("share", "revoke", "0123456789ab", *flags).code == 1
    assert run_cli("share", "create", "--album", "nope", *flags).code == 2
    assert run_cli("share", "create", "--album", ALBUM, "--expires", "5y", *flags).code == 2
    assert client.get("/s/not-a-token").status_code == 404
    assert {s.share_id for s in list_shares(library.table)} >= {made["id"]}


def test_parse_expiry():
    assert parse_expiry("7d").days == 7 and parse_expiry("30m").seconds == 1800
    for bad in ("", "7", "0d", "-1d", "400d", "1y"):
        with pytest.raises(ConfigError):
            parse_expiry(bad)


def test_share_expiry_is_exact(library: Library):
    from datetime import timedelta

    from gallery.shares import KIND_ALBUM, create_share

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    _, token = create_share(library.table, KIND_ALBUM, ALBUM, timedelta(hours=1), now=t0)
    assert resolve(library.table, token, now=t0 + timedelta(minutes=59)).selector == ALBUM
    with pytest.raises(ShareGone):
        resolve(library.table, token, now=t0 + timedelta(hours=1))


def test_album_edit_needs_csrf_and_updates_the_catalog_without_a_scan(client: TestClient, library: Library):
    csrf = client.get("/api/session").json()["csrf"]
    snow, beach = library.ids["2023/winter/snow.jpg"], library.ids["2024/summer/beach.jpg"]
    body = {"name": "Picks <i>", "add": [snow, beach], "remove": []}
    assert client.post("/api/album/edit", json=body).status_code == 403
    assert client.post("/api/album/edit", json={**body, "add": ["0" * 24]}, headers={"x-csrf-token": csrf}
                       ).status_code == 400  # fmt: skip
    r = client.post("/api/album/edit", json=body, headers={"x-csrf-token": csrf})
    assert r.status_code == 200 and r.json() == {"name": "Picks <i>", "count": 2}
    assert {"name": "Picks <i>", "count": 2} in client.get("/api/albums").json()["albums"]
    r = client.post("/api/album/edit", json={"name": "Picks <i>", "add": [], "remove": [beach]},
                    headers={"x-csrf-token": csrf})  # fmt: skip
    assert r.json()["count"] == 1
    ids = [it["id"] for it in client.get("/api/album", params={"name": "Picks <i>"}).json()["items"]]
    assert ids == [snow]


def test_album_edits_in_the_gallery_are_the_cli_albums(client: TestClient, library: Library):
    """One album store: what the gallery edits, `azphotosync album` sees (and a bad name is a 400)."""
    from sync_core.derived.albums import AlbumStore

    csrf = client.get("/api/session").json()["csrf"]
    snow = library.ids["2023/winter/snow.jpg"]
    bad = client.post("/api/album/edit", json={"name": "a\tb", "add": [snow]}, headers={"x-csrf-token": csrf})
    assert bad.status_code == 400 and "control characters" in bad.json()["error"]
    r = client.post("/api/album/edit", json={"name": " Winter ", "add": [snow]}, headers={"x-csrf-token": csrf})
    assert r.json() == {"name": "Winter", "count": 1}
    album = AlbumStore(library.table, "test").get("Winter")
    assert album.created_by == "gallery"
    assert [m.relpath for m in AlbumStore(library.table, "test").members(album)] == ["2023/winter/snow.jpg"]
