"""The gallery at 100k items on Azurite: time to the first screen of thumbnails and to each further page.

    .venv/bin/python -m bench.gallery [--items 100000]

A synthetic catalog of N items (the document ``build_catalog`` writes, with realistic path lengths) is stored
in a thumbnails container with renditions for the first screen; the app runs under uvicorn on loopback and is
read over real HTTP by a client that does what the page does: the shell, the session, the first page of the
timeline and the years, then the first screen's thumbnails six at a time (a browser's per-host limit).
The catalog is loaded (downloaded and parsed) before the first request, as ``azphotosync gallery`` does
before it prints the URL, and timed on its own; further pages are slices of the catalog in memory.
Figures go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from PIL import Image

from agent.emulator import start_azurite
from gallery.app import create_app
from gallery.auth import LocalAuth
from sync_core.derived.catalog import SCHEMA, catalog_blob_name, item_id, write_catalog
from sync_core.derived.renditions import rendition_name

PREFIX = "photos/bench"
FIRST_SCREEN = 40


def synthetic_catalog(n: int) -> dict:
    items = []
    for i in range(n):
        sha = f"{i:064x}"
        rel = f"{2026 - i // 8000}/{(i // 700) % 12 + 1:02d} Trip number {i // 700}/IMG_{i:06d}.JPG"
        name = f"{PREFIX}/{sha[:2]}/{sha}/{rel}"
        month = f"{2026 - i // 8000}-{12 - (i // 700) % 12:02d}"
        items.append({
            "id": item_id(name), "n": rel, "b": name, "s": sha, "z": 3_000_000 + i, "t": f"{month}-15T10:00:00",
            "tm": False, "c": "Pixel 7", "k": "p", "ct": "image/jpeg", "v": "ok", "vt": "2026-11-30T03:00:00Z",
            "vd": None, "w": 4000, "h": 3000, "dur": None, "rs": "made", "rr": None,
        })  # fmt: skip
    return {"schema": SCHEMA, "prefix": PREFIX, "built_at": "2026-12-07T00:00:00Z", "items": items, "albums": {}}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gallery-bench-"))
    az = start_azurite(work / "azurite")
    try:
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        name = f"b{uuid.uuid4().hex[:12]}"
        data = blobs.create_container(name)
        thumbs = blobs.create_container(f"{name}thumbs")
        table = TableServiceClient.from_connection_string(az.connection_string).create_table(name)
        doc = synthetic_catalog(args.items)
        t = time.perf_counter()
        write_catalog(thumbs, doc)
        write_s = time.perf_counter() - t
        size = thumbs.get_blob_client(catalog_blob_name(PREFIX)).get_blob_properties().size
        buf = io.BytesIO()
        Image.new("RGB", (320, 240), (40, 90, 160)).save(buf, "WEBP")
        for it in doc["items"][:FIRST_SCREEN]:
            thumbs.upload_blob(rendition_name(it["s"], 320), buf.getvalue())
        app = create_app(table=table, data=data, thumbnails=thumbs, prefix=PREFIX, auth=LocalAuth())
        t = time.perf_counter()
        app.catalog.get()  # what `azphotosync gallery` does before it prints the URL
        load_s = time.perf_counter() - t
        srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        threading.Thread(target=srv.run, daemon=True).start()
        while not srv.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{srv.servers[0].sockets[0].getsockname()[1]}"
        with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=6), timeout=120) as c:
            t = time.perf_counter()
            c.get("/").raise_for_status()
            c.get("/api/session").raise_for_status()
            shell_s = time.perf_counter() - t
            first = c.get("/api/timeline", params={"offset": 0, "limit": 200}).json()
            c.get("/api/timeline", params={"limit": 1}).raise_for_status()
            api_s = time.perf_counter() - t
            with ThreadPoolExecutor(6) as pool:
                codes = list(pool.map(lambda it: c.get(f"/media/{it['id']}/320").status_code,
                                      first["items"][:FIRST_SCREEN]))  # fmt: skip
            first_screen_s = time.perf_counter() - t
            assert codes == [200] * FIRST_SCREEN, codes
            pages = []
            for k in range(1, 31):
                t = time.perf_counter()
                page = c.get("/api/timeline", params={"offset": k * 200 * 7, "limit": 200}).json()
                pages.append(time.perf_counter() - t)
                assert len(page["items"]) == 200
        srv.should_exit = True
        print(json.dumps({
            "items": args.items, "catalog_bytes": size, "catalog_write_s": round(write_s, 3),
            "catalog_load_s": round(load_s, 3),
            "shell_s": round(shell_s, 3), "cold_api_s": round(api_s, 3), "first_screen_s": round(first_screen_s, 3),
            "thumbnails": FIRST_SCREEN, "page_median_ms": round(statistics.median(pages) * 1000, 1),
            "page_max_ms": round(max(pages) * 1000, 1), "load_average_1m": round(os.getloadavg()[0], 1),
        }, indent=2))  # fmt: skip
    finally:
        az.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
