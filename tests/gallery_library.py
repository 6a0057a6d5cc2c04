"""A small real library for the gallery tests, like the demo's: JPEGs with EXIF, a hostile file name, a short
MP4, a photo whose rendition failed (recorded as an earlier run would have), one user album; backed up by the
real `sync`, its renditions and catalog made by the real `azphotosync thumbnails`."""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from scripts.demo import scene, video
from sync_core.derived.albums import AlbumStore
from sync_core.derived.catalog import item_id
from sync_core.derived.timeline import current_items
from sync_core.index.table_index import P_RENDITION_DETAIL, P_RENDITION_STATE, RENDITION_FAILED
from sync_core.index.table_mirror import prefix_rows
from tests.conftest import run_cli
from tests.media_samples import exif_tiff

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
PREFIX = "photos/gallerytest"
ALBUM = "Summer <b>2024</b>"


@dataclass
class Library:
    connection_string: str
    data: ContainerClient
    thumbnails: ContainerClient
    table: TableClient
    prefix: str
    ids: dict[str, str]  # relpath -> item id
    blobs: dict[str, str]  # relpath -> blob name


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int], taken: str, model: str) -> bytes:
    buf = io.BytesIO()
    exif = b"Exif\x00\x00" + exif_tiff(taken=taken, model=model)
    scene(size, colour, (60, 130, 70)).save(buf, "JPEG", quality=80, exif=exif)
    return buf.getvalue()


def build_library(connection_string: str, root: Path) -> Library:
    name = f"g{uuid.uuid4().hex[:20]}"
    blobs = BlobServiceClient.from_connection_string(connection_string)
    data = blobs.create_container(name)
    thumbnails = blobs.create_container(f"{name}thumbs")
    table = TableServiceClient.from_connection_string(connection_string).create_table(name)
    src = root / "library"
    files = {
        "2024/summer/beach.jpg": ((30, 120, 200), (1200, 800), "2024:07:15 10:00:00", "Pixel 7"),
        f"2024/summer/{HOSTILE}": ((200, 40, 40), (800, 800), "2024:07:16 11:00:00", "<script>x</script>"),
        "2023/winter/snow.jpg": ((230, 230, 240), (800, 1200), "2023:01:05 09:00:00", "X100V"),
        "2023/winter/broken.jpg": ((10, 10, 10), (640, 480), "2023:01:06 09:00:00", "X100V"),
    }
    for rel, (colour, size, taken, model) in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_jpeg(colour, size, taken, model))
    (src / "2024/summer").mkdir(parents=True, exist_ok=True)
    video(src / "2024/summer/clip.mp4", (0, 80, 160), seconds=4, size=(160, 120))  # no creation time: dated by
    # its mtime (and shown as such)
    when = int(datetime(2024, 7, 20, 18, 0, tzinfo=UTC).timestamp())
    os.utime(src / "2024/summer/clip.mp4", (when, when))
    storage = ("--connection-string", connection_string, "--container", name, "--table", name, "--prefix", PREFIX,
               "--source-id", "gallerytest", "--state-dir", str(root / "state"))  # fmt: skip
    r = run_cli("sync", "--source", str(src), *storage)
    assert r.code == 0, r.err
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    for row in prefix_rows(table, PREFIX):
        rel = row["RelPath"]
        ids[rel], names[rel] = item_id(row["BlobName"]), row["BlobName"]
        facts: dict[str, object] = {}
        if rel.endswith("broken.jpg"):  # recorded by an earlier run: not tried again
            facts.update({P_RENDITION_STATE: RENDITION_FAILED, P_RENDITION_DETAIL: "truncated"})
        if rel.endswith("beach.jpg"):
            facts.update({"VerifyStatus": "ok", "LastVerified": datetime(2026, 11, 30, 3, 0, tzinfo=UTC)})
        if facts:
            table.update_entity({"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"], **facts})
    albums = AlbumStore(table, "gallerytest")
    members = ("2024/summer/beach.jpg", "2024/summer/clip.mp4")
    albums.add(albums.create(ALBUM)[0], [i for i in current_items(table, PREFIX) if i.relpath in members])
    r = run_cli("thumbnails", *storage, "--thumbnails-container", thumbnails.container_name, "--json")
    assert r.code == 0 and r.json()["counts"]["made"] == 4, r.out + r.err  # and the catalog, at its end
    return Library(connection_string, data, thumbnails, table, PREFIX, ids, names)
