"""The Functions app without a host: binding metadata as the worker indexes it, and the timer starter's
singleton behaviour through the real ``DurableOrchestrationClient``, talking to a small stand-in for the
Durable extension's HTTP management endpoint (the host is the one part we replace)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from azure.durable_functions.models.utils import http_utils
from azure.functions.timer import TimerRequest

import function_app
from tests.test_orchestrator import app_functions, registered

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bindings_json() -> dict[str, list[dict[str, Any]]]:
    return {fn.get_function_name(): json.loads(fn.get_function_json())["bindings"] for fn in app_functions()}


def test_binding_metadata(bindings_json):
    timer = {b["type"]: b for b in bindings_json["verify_timer"]}
    assert timer["timerTrigger"]["schedule"] == "%VERIFY_SCHEDULE%"
    assert timer["timerTrigger"]["useMonitor"] is True and timer["timerTrigger"]["runOnStartup"] is False
    assert timer["durableClient"]["name"] == "client"
    assert bindings_json["verify_orchestrator"] == [
        {"direction": "IN", "type": "orchestrationTrigger", "name": "context", "orchestration": "verify_orchestrator"}
    ]
    assert bindings_json["verify_prefix"][0]["orchestration"] == "verify_prefix"
    for name in ("plan_verification", "verify_partition", "publish_report"):
        assert bindings_json[name] == [{"direction": "IN", "type": "activityTrigger", "name": "job", "activity": name}]
    thumbs = {b["type"]: b for b in bindings_json["thumbnails_timer"]}
    assert thumbs["timerTrigger"]["schedule"] == "%THUMBNAILS_SCHEDULE%"
    assert thumbs["timerTrigger"]["useMonitor"] is True and thumbs["timerTrigger"]["runOnStartup"] is False
    assert bindings_json["thumbnails_orchestrator"][0]["orchestration"] == "thumbnails_orchestrator"
    assert bindings_json["thumbnails_prefix"][0]["orchestration"] == "thumbnails_prefix"
    for name in ("plan_thumbnails", "thumbnail_partition", "refresh_catalog"):
        assert bindings_json[name] == [{"direction": "IN", "type": "activityTrigger", "name": "job", "activity": name}]
    http = {b["type"]: b for b in bindings_json["gallery"]}
    assert http["httpTrigger"]["route"] == "{*path}" and http["httpTrigger"]["authLevel"] == "ANONYMOUS"
    assert set(bindings_json) == {
        "verify_timer", "verify_orchestrator", "verify_prefix", "plan_verification", "verify_partition",
        "publish_report", "thumbnails_timer", "thumbnails_orchestrator", "thumbnails_prefix", "plan_thumbnails",
        "thumbnail_partition", "refresh_catalog", "gallery",
    }  # fmt: skip


def test_host_json_and_requirements():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    durable = host["extensions"]["durableTask"]
    assert durable["hubName"] == "azphotosyncverify"
    assert 1 <= durable["maxConcurrentActivityFunctions"] <= 16
    reqs = {
        line.split(">=")[0] for line in (ROOT / "requirements.txt").read_text().splitlines() if line and line[0] != "#"
    }
    # everything function_app and sync_core's verification import at run time
    assert {"azure-functions", "azure-functions-durable", "azure-storage-blob", "azure-data-tables", "azure-identity",
            "humanfriendly", "pillow", "pillow-heif", "av", "rawpy"} <= reqs  # fmt: skip


# -- the singleton starter -----------------------------------------------------------------------------------
class FakeDurableExtension:
    """The host's Durable management API, as much as the starter uses: instance status and start."""

    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.started: list[tuple[str, str, Any]] = []

    async def status(self, request: web.Request) -> web.Response:
        inst = self.instances.get(request.match_info["id"])
        if inst is None:
            return web.json_response(None, status=404)
        return web.json_response(inst, status=200 if inst["runtimeStatus"] != "Running" else 202)

    async def start(self, request: web.Request) -> web.Response:
        name, iid = request.match_info["name"], request.match_info["id"]
        body = await request.json()  # the client sends the input JSON-encoded once more
        self.started.append((name, iid, json.loads(body) if isinstance(body, str) else body))
        when = "2026-11-25T03:00:00Z"
        self.instances[iid] = {"name": name, "instanceId": iid, "runtimeStatus": "Running", "createdTime": when,
                               "lastUpdatedTime": when}  # fmt: skip
        return web.json_response({"id": iid}, status=202)


async def _with_extension(body) -> FakeDurableExtension:
    ext = FakeDurableExtension()
    app = web.Application()
    app.router.add_get("/durabletask/instances/{id}", ext.status)
    app.router.add_post("/durabletask/orchestrators/{name}/{id}", ext.start)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    binding = json.dumps({"taskHubName": "azphotosyncverify", "creationUrls": {}, "managementUrls": {},
                          "rpcBaseUrl": f"http://127.0.0.1:{port}/durabletask/"})  # fmt: skip
    try:
        await body(ext, binding)
    finally:
        await (await http_utils._get_session()).close()  # the SDK's shared session belongs to this loop
        await runner.cleanup()
    return ext


@pytest.fixture
def timer_fn() -> Iterator[Any]:
    yield next(f for f in app_functions() if f.get_function_name() == "verify_timer").get_user_function()


def test_timer_starts_one_instance_under_the_fixed_id_and_skips_while_it_runs(timer_fn, caplog):
    async def body(ext: FakeDurableExtension, binding: str) -> None:
        await timer_fn(timer=TimerRequest(past_due=False), client=binding)
        assert ext.started == [("verify_orchestrator", function_app.INSTANCE_ID, {})]
        await timer_fn(timer=TimerRequest(past_due=False), client=binding)  # still running
        assert len(ext.started) == 1
        ext.instances[function_app.INSTANCE_ID]["runtimeStatus"] = "Completed"
        await timer_fn(timer=TimerRequest(past_due=True), client=binding)  # finished: next run may start
        assert len(ext.started) == 2
        ext.instances[function_app.INSTANCE_ID]["runtimeStatus"] = "Failed"
        await timer_fn(timer=TimerRequest(past_due=False), client=binding)
        assert len(ext.started) == 3

    with caplog.at_level(logging.INFO, logger="azphotosync.verify"):
        asyncio.run(_with_extension(body))
    messages = [r.getMessage() for r in caplog.records if r.name == "azphotosync.verify"]
    assert any("still Running; not starting another" in m for m in messages)
    assert sum("past due" in m for m in messages) == 1


def test_thumbnails_timer_starts_its_own_singleton(caplog):
    thumbs_timer = next(f for f in app_functions() if f.get_function_name() == "thumbnails_timer").get_user_function()

    async def body(ext: FakeDurableExtension, binding: str) -> None:
        await thumbs_timer(timer=TimerRequest(past_due=False), client=binding)
        assert ext.started == [("thumbnails_orchestrator", function_app.THUMBNAILS_INSTANCE_ID, {})]
        await thumbs_timer(timer=TimerRequest(past_due=False), client=binding)  # still running
        assert len(ext.started) == 1

    with caplog.at_level(logging.INFO, logger="azphotosync.verify"):
        asyncio.run(_with_extension(body))
    assert any("thumbnails azphotosync-thumbnails is still Running" in r.getMessage() for r in caplog.records)
def test_gallery_function_serves_the_asgi_app_and_needs_a_principal(azurite, monkeypatch, tmp_path):
    """The HTTP function hands requests to the gallery: 401 without the App Service principal headers, the
    page for an allowed principal, a share link without sign-in."""
    import azure.functions as func

    from gallery.shares import KIND_PATH, create_share
    from tests.gallery_library import build_library

    lib = build_library(azurite.connection_string, tmp_path)
    for k, v in {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
                 "AZURE_STORAGE_CONTAINER": lib.data.container_name, "AZURE_STORAGE_TABLE": lib.table.table_name,
                 "AZURE_STORAGE_THUMBNAILS_CONTAINER": lib.thumbnails.container_name, "GALLERY_PREFIX": lib.prefix,
                 "GALLERY_ALLOWED_PRINCIPALS": "ana@example.org", "WEBSITE_AUTH_ENABLED": "True"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    fn = registered()["gallery"]

    def call(path: str, headers: dict[str, str] | None = None) -> func.HttpResponse:
        req = func.HttpRequest("GET", f"https://gallery.example{path}", headers=headers or {}, body=b"")
        return asyncio.run(fn(req, None))

    assert call("/api/timeline").status_code == 401
    ok = call("/api/timeline", {"x-ms-client-principal-id": "a1", "x-ms-client-principal-name": "ana@example.org"})
    assert ok.status_code == 200 and json.loads(ok.get_body())["total"] == 5
    _, token = create_share(lib.table, KIND_PATH, "2023/*", timedelta(hours=1))
    assert call(f"/s/{token}/api/items").status_code == 200
    vid = lib.ids["2024/summer/clip.mp4"]
    ranged = call(f"/media/{vid}/original", {"x-ms-client-principal-id": "a1",
                                              "x-ms-client-principal-name": "ana@example.org", "range": "bytes=0-9"})
    assert ranged.status_code == 206 and len(ranged.get_body()) == 10
