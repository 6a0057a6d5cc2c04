"""``azphotosync thumbnails`` against Azurite: renditions for a synced library of real media, the facts in
the index rows, reasons for files that cannot be rendered, a rerun that makes nothing, create-only
uploads, and videos read by range."""

from __future__ import annotations

import hashlib
import io
import itertools
import json

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from PIL import Image

from sync_core.derived.blob_reader import BlobReader
from sync_core.derived.decoders import KIND_VIDEO, decode
from sync_core.derived.facts import fetch_facts, read_facts
from sync_core.derived.renditions import rendition_name
from sync_core.index.table_index import keys_for_blob
from tests.conftest import run_cli, write_file
from tests.rendition_media import encoded, heic, jpeg_oriented, mp4, png_bomb, webp_chunks

PREFIX = "photos/testhost"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def library(tmp_path, storage_env, container) -> dict:
    files = {
        "2024/portrait.jpg": jpeg_oriented(400, 300, 6),
        "2024/copies/portrait-again.jpg": jpeg_oriented(400, 300, 6),
        "2024/phone.heic": heic((640, 480)),
        "2024/alpha.png": encoded("PNG", (2000, 1000), "RGBA"),
        "2024/scan.tif": encoded("TIFF", (500, 800)),
        "2024/clip.mp4": mp4(seconds=2.0),
        "2024/broken.jpg": jpeg_oriented()[:1500],
        "2024/empty.jpg": b"",
        "2024/bomb.png": png_bomb(),
        "2024/portrait.xmp": b"<x:xmpmeta/>",
    }
    src = tmp_path / "lib"
    for rel, data in files.items():
        write_file(src, rel, data)
    state = str(tmp_path / "state")
    res = run_cli("sync", "--source", str(src), "--state-dir", state)
    assert res.code == 0, res.err
    svc = BlobServiceClient.from_connection_string(storage_env["AZURE_STORAGE_CONNECTION_STRING"])
    thumbs_name = f"th{storage_env['AZURE_STORAGE_CONTAINER'][:20]}"
    table = TableServiceClient.from_connection_string(
        storage_env["AZURE_STORAGE_CONNECTION_STRING"]
    ).get_table_client(storage_env["AZURE_STORAGE_TABLE"])
    return {"files": files, "state": state, "thumbs": svc.get_container_client(thumbs_name), "table": table}


def _thumbnails(library: dict, *extra: str):
    thumbs = library["thumbs"].container_name
    res = run_cli("thumbnails", "--state-dir", library["state"], "--thumbnails-container", thumbs, "--json", *extra)
    return res.code, json.loads(res.out), res.err


def _row(library: dict, rel: str) -> dict:
    data = library["files"][rel]
    return library["table"].get_entity(*keys_for_blob(PREFIX, f"{PREFIX}/{_sha(data)[:2]}/{_sha(data)}/{rel}"))


def test_renditions_facts_reasons_and_a_rerun_that_makes_nothing(library):
    files, thumbs = library["files"], library["thumbs"]
    # a rendition already there (another run's) is kept as it is: uploads are create-only
    thumbs.create_container()
    kept = rendition_name(_sha(files["2024/phone.heic"]), 320)
    thumbs.upload_blob(kept, b"kept")

    code, summary, err = _thumbnails(library)
    assert code == 1, err  # files that cannot be rendered are reported…
    assert summary["counts"] == {"made": 5, "shared": 1, "failed": 3, "done_before": 0, "not_media": 1,
                                 "damaged": 0, "missing": 0, "deferred": 0}  # fmt: skip
    reasons = {f["blob_name"].rsplit("/", 1)[1]: f["reason"] for f in summary["failures"]}
    assert reasons.keys() == {"broken.jpg", "empty.jpg", "bomb.png"}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["bomb.png"].startswith("decompression bomb")
    assert reasons["broken.jpg"].startswith("cannot decode")

    names = sorted(_renditions(thumbs))
    made = ["2024/portrait.jpg", "2024/phone.heic", "2024/alpha.png", "2024/scan.tif", "2024/clip.mp4"]
    assert names == sorted(rendition_name(_sha(files[r]), s) for r in made for s in (320, 1600))
    assert thumbs.download_blob(kept).readall() == b"kept"

    def webp(rel: str, size: int) -> Image.Image:
        body = thumbs.download_blob(rendition_name(_sha(files[rel]), size)).readall()
        assert set(webp_chunks(body)) <= {"VP8 ", "VP8L", "VP8X", "ALPH"}
        return Image.open(io.BytesIO(body))

    assert webp("2024/portrait.jpg", 320).size == (240, 320)  # orientation 6: portrait
    assert webp("2024/alpha.png", 1600).size == (1600, 800) and webp("2024/alpha.png", 320).mode == "RGBA"
    assert webp("2024/scan.tif", 1600).size == (500, 800)  # never upscaled
    assert webp("2024/clip.mp4", 320).size == (64, 48)
    props = thumbs.get_blob_client(rendition_name(_sha(files["2024/clip.mp4"]), 1600)).get_blob_properties()
    assert props.content_settings.content_type == "image/webp"

    # the facts, in the rows, readable by the agent
    portrait = read_facts(_row(library, "2024/portrait.jpg"))
    assert portrait is not None and portrait.made and (portrait.width, portrait.height) == (300, 400)
    again = read_facts(_row(library, "2024/copies/portrait-again.jpg"))
    assert again is not None and again.made and (again.width, again.height) == (300, 400)
    clip = read_facts(_row(library, "2024/clip.mp4"))
    assert clip is not None and clip.duration == pytest.approx(2.0, abs=0.2) and (clip.width, clip.height) == (64, 48)
    bomb = read_facts(_row(library, "2024/bomb.png"))
    assert bomb is not None and bomb.state == "failed" and bomb.detail.startswith("decompression bomb")
    row = _row(library, "2024/portrait.jpg")
    assert row["RelPath"] == "2024/portrait.jpg" and row["Sha256"] and row["IsCurrent"]  # merged, not replaced
    name = f"{PREFIX}/{_sha(files['2024/scan.tif'])[:2]}/{_sha(files['2024/scan.tif'])}/2024/scan.tif"
    scan = fetch_facts(library["table"], PREFIX, name)
    assert scan is not None and (scan.width, scan.height) == (500, 800)
    assert read_facts(_row(library, "2024/portrait.xmp")) is None

    # a rerun makes nothing and retries no failure
    before = _renditions(thumbs)
    code2, summary2, _ = _thumbnails(library)
    assert code2 == 0
    assert summary2["counts"]["done_before"] == 9 and summary2["counts"]["made"] == 0
    assert summary2["counts"]["failed"] == 0 and summary2["failures"] == []
    assert _renditions(thumbs) == before

    # --force looks again: made sets are found (shared, not rewritten), failures are tried once more
    code3, summary3, _ = _thumbnails(library, "--force")
    assert code3 == 1
    assert summary3["counts"]["shared"] == 6 and summary3["counts"]["made"] == 0
    assert summary3["counts"]["failed"] == 3
    assert _renditions(thumbs) == before
    again = read_facts(_row(library, "2024/copies/portrait-again.jpg"))
    assert again is not None and (again.width, again.height) == (300, 400)  # from the rendition's metadata


def _renditions(thumbs) -> dict[str, str]:
    """Every rendition and its etag; the gallery's catalog (``catalog/``), rebuilt by each run, is not one."""
    return {b.name: b.etag for b in thumbs.list_blobs() if not b.name.startswith("catalog/")}


def test_a_video_is_read_by_range_not_whole(container):
    data = mp4(seconds=12.0, fps=10, size=(320, 240), noise=True)
    assert len(data) > 4 * 1024 * 1024
    blob = container.get_blob_client("big/clip.mp4")
    blob.upload_blob(data)
    props = blob.get_blob_properties()
    with BlobReader(blob, props.size, etag=props.etag, chunk=256 * 1024) as reader:
        decoded = decode(KIND_VIDEO, reader, target=1600)
        assert decoded.duration == pytest.approx(12.0, abs=0.3)
        assert reader.bytes_read < len(data) // 3, (reader.bytes_read, len(data))
        assert reader.requests >= 2  # the index at the end, then the first second


def test_blob_reader_reads_and_seeks_like_a_file(container):
    data = bytes(range(256)) * 4000
    blob = container.get_blob_client("r/bytes.bin")
    blob.upload_blob(data)
    with BlobReader(blob, len(data), chunk=64 * 1024) as r:
        assert r.read(10) == data[:10]
        r.seek(-100, io.SEEK_END)
        assert r.read() == data[-100:]
        r.seek(70_000)
        assert r.read(5) == data[70_000:70_005] and r.tell() == 70_005
        assert r.read(0) == b"" and r.seek(0, io.SEEK_END) == len(data) and r.read(1) == b""


def test_a_partition_stops_at_its_deadline_and_the_next_run_resumes(library, storage_env):
    from sync_core.config import resolve_storage_config
    from sync_core.derived.thumbnail_run import Thumbnailer, ThumbnailSettings, run_all
    from sync_core.verify.partition import partitions_for

    cfg = resolve_storage_config(env=storage_env)
    settings = ThumbnailSettings(cfg=cfg, container=library["thumbs"].container_name, prefixes=(PREFIX,),
                                 discover=False, unit_seconds=60)  # fmt: skip
    late = Thumbnailer(settings)
    ticks = itertools.count(0.0, 100.0)  # 100 s pass between two looks at the clock: every row is too late
    late.clock = lambda: next(ticks)
    late.plan()
    summary, _ = run_all(late, partitions_for([PREFIX])[:256], workers=1)
    assert summary["counts"]["deferred"] == 9 and summary["counts"]["made"] == 0
    assert not list(library["thumbs"].list_blobs()) and read_facts(_row(library, "2024/portrait.jpg")) is None

    # a blob that is gone is not recorded (looked at again next time); a damaged one waits for the agent
    files = library["files"]
    gone = f"{PREFIX}/{_sha(files['2024/scan.tif'])[:2]}/{_sha(files['2024/scan.tif'])}/2024/scan.tif"
    svc = BlobServiceClient.from_connection_string(storage_env["AZURE_STORAGE_CONNECTION_STRING"])
    svc.get_container_client(cfg.container).delete_blob(gone)
    damaged = _row(library, "2024/alpha.png")
    library["table"].update_entity({"PartitionKey": damaged["PartitionKey"], "RowKey": damaged["RowKey"],
                                    "VerifyStatus": "size_mismatch"})  # fmt: skip
    summary2, _ = run_all(Thumbnailer(settings), partitions_for([PREFIX]), workers=2)
    assert summary2["counts"]["deferred"] == 0 and summary2["counts"]["made"] == 3
    assert summary2["counts"]["missing"] == 1 and summary2["counts"]["damaged"] == 1
    assert read_facts(_row(library, "2024/scan.tif")) is None and read_facts(_row(library, "2024/alpha.png")) is None
    assert read_facts(_row(library, "2024/portrait.jpg")).made
