"""The gallery in a real browser: Debian's chromium driven by Playwright, against the app (cloud mode: the
App Service sign-in headers are set on the signed-in context) on Azurite with a generated library."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from gallery.app import create_app
from gallery.auth import CloudAuth
from gallery.shares import KIND_ALBUM, create_share
from tests.gallery_library import ALBUM, HOSTILE, Library, build_library

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
USER = {"X-MS-CLIENT-PRINCIPAL-ID": "00000000-0000-0000-0000-0000000000aa",
        "X-MS-CLIENT-PRINCIPAL-NAME": "ana@example.org"}
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def library(azurite, tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(azurite.connection_string, tmp_path_factory.mktemp("gallery"))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(library: Library, clock: Clock) -> Iterator[str]:
    app = create_app(table=library.table, data=library.data, thumbnails=library.thumbnails, prefix=library.prefix,
                     auth=CloudAuth("ana@example.org", platform_auth=True), clock=clock)  # fmt: skip
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gallery server did not start"
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    from gallery.app import STATIC_DIR

    vendor = STATIC_DIR / "vendor"
    assert (vendor / "photoswipe.esm.min.js").is_file() and (vendor / "justified-layout.min.js").is_file(), (
        "the gallery's browser libraries are missing: run `make vendor` (npm ci, then a copy from node_modules)"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def signed_in(browser: Browser, server: str) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server, extra_http_headers=USER, viewport={"width": 1100, "height": 800})
    yield ctx
    ctx.close()


@pytest.fixture
def signed_out(browser: Browser, server: str) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=server)
    yield ctx
    ctx.close()


def _watch(page: Page) -> list[str]:
    """Dialogs (an injected alert) and page errors, collected for assertions."""
    seen: list[str] = []
    page.on("dialog", lambda d: (seen.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: seen.append(f"error: {e}"))
    return seen


def _images_loaded(page: Page, selector: str) -> None:
    """Every matching image decoded (``img.decode()`` rejects for a broken image). Conditions are functions
    run by the page, never strings: the gallery's CSP forbids eval, which string predicates use."""
    page.evaluate(
        "async (sel) => { await Promise.all([...document.querySelectorAll(sel)].map(i => i.decode())); }", selector
    )


def _open_timeline(page: Page) -> None:
    page.goto("/")
    page.wait_for_selector("body[data-ready='1']")
    _images_loaded(page, ".tile img")


def test_timeline_shows_thumbnails_grouped_by_month_and_hostile_name_as_text(
    signed_in: BrowserContext, library, tmp_path: Path
):
    page = signed_in.new_page()
    seen = _watch(page)
    _open_timeline(page)
    assert page.locator(".tile img").count() == 4  # the failed rendition is a placeholder
    assert page.locator(".tile .placeholder").all_inner_texts() == ["broken.jpg"]
    months = page.locator("section h2").all_inner_texts()
    assert months == ["July 2024", "January 2023"]
    assert page.locator("#years option").all_inner_texts()[1:] == ["2024", "2023"]
    # the hostile name: an alt text and an aria-label, never markup
    hostile = page.locator(f".tile[data-id='{library.ids['2024/summer/' + HOSTILE]}']")
    assert hostile.get_attribute("aria-label") == HOSTILE
    assert page.locator("img[src='x']").count() == 0
    # The README's screenshot: refreshed with AZPHOTOSYNC_UPDATE_SCREENSHOT=1 (else kept out of the work tree).
    update = os.environ.get("AZPHOTOSYNC_UPDATE_SCREENSHOT") == "1"
    shot = DOCS / "gallery-timeline.png" if update else tmp_path / "timeline.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5000
    hostile.click()
    page.wait_for_selector("body[data-viewer='open']")
    expect(page.locator(".pswp__info dl")).to_contain_text(HOSTILE)
    assert HOSTILE in page.locator(".pswp__info").inner_text()
    assert "<script>x</script>" in page.locator(".pswp__info").inner_text()  # the camera model, as text
    assert page.locator("img[src='x'], .pswp script").count() == 0
    page.keyboard.press("Escape")
    page.wait_for_selector(".pswp", state="detached")
    page.locator("#years").select_option(label="2023")  # jump to a year: the grid starts there
    expect(page.locator("section h2").first).to_have_text("January 2023")
    assert seen == []


def test_viewer_shows_integrity_and_moves_with_the_keyboard(signed_in: BrowserContext, library):
    page = signed_in.new_page()
    seen = _watch(page)
    _open_timeline(page)
    page.locator(f".tile[data-id='{library.ids['2024/summer/beach.jpg']}']").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-viewer='open']")
    info = page.locator(".pswp__info dl")  # the details, once fetched (the name shows first)
    expect(info).to_contain_text("beach.jpg")
    text = info.inner_text()
    sha = library.blobs["2024/summer/beach.jpg"].split("/")[3]
    assert sha in text and "Pixel 7" in text and "ok on 2026-11-30T03:00:00Z" in text and "2024-07-15" in text
    expect(page.locator(".pswp__img").first).to_be_visible()
    page.keyboard.press("ArrowRight")
    expect(info).to_contain_text("broken.jpg")
    expect(info).to_contain_text("not available: truncated")
    assert page.locator(".pswp__item .placeholder", has_text="broken.jpg").count() == 1
    page.keyboard.press("ArrowLeft")
    expect(info).to_contain_text("beach.jpg")
    assert seen == []


def test_viewer_adds_the_item_to_an_album(signed_in: BrowserContext, library):
    page = signed_in.new_page()
    seen = _watch(page)
    _open_timeline(page)
    page.locator(f".tile[data-id='{library.ids['2023/winter/snow.jpg']}']").click()
    page.wait_for_selector("body[data-viewer='open']")
    form = page.locator(".pswp__info form.album-add")
    form.locator("input").fill("Winter picks")
    form.locator("button").click()
    expect(form.locator("[role=status]")).to_have_text("added: Winter picks has 1")
    page.keyboard.press("Escape")
    page.goto("/#/albums")
    expect(page.locator("ul.list li", has_text="Winter picks")).to_contain_text("· 1")
    assert seen == []


def test_video_plays_and_seeks_through_range_requests(signed_in: BrowserContext, library):
    page = signed_in.new_page()
    seen = _watch(page)
    vid = library.ids["2024/summer/clip.mp4"]
    statuses: list[tuple[int, str | None]] = []
    page.on("response", lambda r: statuses.append((r.status, r.headers.get("content-range")))
            if f"/media/{vid}/original" in r.url else None)  # fmt: skip
    _open_timeline(page)
    page.locator(f".tile[data-id='{vid}']").click()
    page.wait_for_selector(".pswp video")
    page.evaluate("""() => new Promise((resolve) => { const v = document.querySelector('.pswp video');
        if (v.readyState >= 1) resolve(); else v.addEventListener('loadedmetadata', resolve, { once: true }); })""")
    duration = page.evaluate("document.querySelector('.pswp video').duration")
    assert 3.5 < duration < 4.5
    page.evaluate("""async () => { const v = document.querySelector('.pswp video'); v.muted = true; await v.play();
        while (v.currentTime === 0) await new Promise((r) => v.addEventListener('timeupdate', r, { once: true })); }""")
    page.evaluate("""() => new Promise((resolve) => { const v = document.querySelector('.pswp video');
        v.addEventListener('seeked', resolve, { once: true }); v.currentTime = 3; })""")
    assert page.evaluate("document.querySelector('.pswp video').currentTime") >= 2.9
    assert any(status == 206 and (cr or "").startswith("bytes ") for status, cr in statuses), statuses
    assert seen == []


def test_album_share_link_works_signed_out_until_revoked(signed_in, signed_out, library, server):
    page = signed_in.new_page()
    page.goto("/#/albums")
    page.wait_for_selector("body[data-ready='1']")
    row = page.locator("ul.list li", has_text=ALBUM)
    assert row.locator("a").inner_text() == ALBUM  # the album name is text, not markup
    row.locator("button").click()
    expect(row.locator(".share-url")).to_contain_text("http://")
    url = row.locator(".share-url").inner_text()
    token = url.rsplit("/", 1)[1]
    guest = signed_out.new_page()
    seen = _watch(guest)
    assert guest.goto(url).status == 200
    guest.wait_for_selector("body[data-ready='1']")
    _images_loaded(guest, ".tile img")
    assert sorted(guest.locator(".tile").evaluate_all("ts => ts.map(t => t.dataset.id)")) == sorted(
        [library.ids["2024/summer/beach.jpg"], library.ids["2024/summer/clip.mp4"]]
    )
    assert guest.locator("#title").inner_text() == ALBUM
    # a share never reads outside its selection, whatever id is asked for
    snow = library.ids["2023/winter/snow.jpg"]
    for path in (f"/s/{token}/media/{snow}/320", f"/s/{token}/media/{snow}/original", f"/s/{token}/api/items/{snow}"):
        assert guest.request.get(path).status == 404, path
    assert guest.request.get(f"/s/{token}/media/{library.ids['2024/summer/beach.jpg']}/1600").status == 200
    assert guest.request.get("/api/timeline").status == 401
    # revoke from the gallery (a CSRF-protected write), then the link is gone
    share_id = page.evaluate(
        """async () => (await (await fetch('/api/shares')).json()).shares[0].id"""
    )
    revoke_url = f"/api/shares/{share_id}/revoke"
    no_csrf = page.evaluate("async (u) => (await fetch(u, {method: 'POST'})).status", revoke_url)
    assert no_csrf == 403
    revoked = page.evaluate("""async (u) => {
        const csrf = document.cookie.split('; ').find(c => c.startsWith('gallery_csrf=')).split('=')[1];
        return (await fetch(u, {method: 'POST', headers: {'x-csrf-token': csrf}})).status;
    }""", revoke_url)
    assert revoked == 200
    assert guest.goto(url).status == 410
    assert guest.request.get(f"/s/{token}/media/{library.ids['2024/summer/beach.jpg']}/1600").status == 410
    assert seen == []


def test_expired_share_is_gone(signed_out, library, clock):
    _share, token = create_share(library.table, KIND_ALBUM, ALBUM, timedelta(hours=1), now=clock.now)
    guest = signed_out.new_page()
    assert guest.goto(f"/s/{token}").status == 200
    clock.now += timedelta(hours=1, seconds=1)
    try:
        assert guest.goto(f"/s/{token}").status == 410
    finally:
        clock.now -= timedelta(hours=1, seconds=1)


def test_cloud_mode_without_principal_gets_401(signed_out, library):
    page = signed_out.new_page()
    assert page.goto("/").status == 401
    for path in ("/api/timeline", f"/media/{library.ids['2024/summer/beach.jpg']}/original", "/api/shares"):
        assert page.request.get(path).status == 401, path
    forged = page.request.get("/api/timeline", headers={"X-MS-CLIENT-PRINCIPAL-ID": "someone-else"})
    assert forged.status == 403  # signed in, but not an allowed principal
