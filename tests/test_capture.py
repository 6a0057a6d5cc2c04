"""Capture date and camera model: read when a file is hashed, kept in SQLite and in the Table row; a file
whose metadata cannot be read still syncs."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import ContainerClient

from sync_core.config import StorageConfig
from sync_core.local.capture import Capture, mvhd_creation_time, read_capture
from sync_core.local.state import StateDB
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from tests.conftest import det_bytes, run_cli, write_file
from tests.media_samples import exif_tiff, jpeg_with_exif, mp4_with_creation

WHEN = datetime(2022, 3, 4, 5, 6, 7, tzinfo=UTC)
WHEN_ISO = "2022-03-04T05:06:07Z"
APPLE = {"com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 14 Pro"}


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("a.jpg", jpeg_with_exif(b"x" * 100), Capture("2021-07-14T09:30:05", "Pixel 7")),
        ("a.JPEG", jpeg_with_exif(offset="-05:30"), Capture("2021-07-14T09:30:05-05:30", "Pixel 7")),
        ("a.jpg", jpeg_with_exif(offset="bogus"), Capture("2021-07-14T09:30:05", "Pixel 7")),
        ("b.dng", exif_tiff(model="  ILCE-7M3\x00\x00"), Capture("2021-07-14T09:30:05", "ILCE-7M3")),
        ("c.tif", exif_tiff(taken="0000:00:00 00:00:00"), Capture(None, "Pixel 7")),
        ("d.nef", exif_tiff(taken=None, model=None), Capture()),
        ("e.mp4", mp4_with_creation(WHEN, mdat=b"z" * 5000), Capture("2022-03-04T05:06:07Z")),
        ("f.MOV", mp4_with_creation(WHEN, version=1, moov_last=False), Capture("2022-03-04T05:06:07Z")),
        ("g.mp4", mp4_with_creation(None), Capture()),  # unset clock
        ("m.MOV", mp4_with_creation(WHEN, meta=APPLE), Capture("2022-03-04T05:06:07Z", "iPhone 14 Pro")),
        ("n.mp4", mp4_with_creation(None, meta=APPLE, iso_meta=True), Capture(None, "iPhone 14 Pro")),
        ("o.mov", mp4_with_creation(WHEN, meta={"com.apple.quicktime.make": "Apple"}), Capture(WHEN_ISO)),
        ("h.mp4", mp4_with_creation(datetime(1904, 1, 2, tzinfo=UTC)), Capture()),
        ("i.jpg", b"not a jpeg at all", Capture()),
        ("k.mp4", b"\x00\x00\x00\x01moov\xff\xff", Capture()),  # box size pointing past the end
        ("l.txt", jpeg_with_exif(), Capture()),  # not a media extension: not read at all
    ],
)
def test_read_capture(tmp_path: Path, name: str, data: bytes, expected: Capture) -> None:
    p = write_file(tmp_path, name, data)
    assert read_capture(str(p), data) == expected  # bytes in memory (small files)
    assert read_capture(str(p)) == expected  # read from disk (large files)


def test_unreadable_file_yields_nothing(tmp_path: Path) -> None:
    assert read_capture(str(tmp_path / "missing.jpg")) == Capture()
    full = jpeg_with_exif()
    for cut in range(4, len(full), 7):  # truncated anywhere: never raises, never invents a date
        p = write_file(tmp_path, "cut.jpg", full[:cut])
        assert read_capture(str(p)).time in (None, "2021-07-14T09:30:05")
    video = mp4_with_creation(WHEN, meta=APPLE)
    for cut in range(0, len(video), 5):
        p = write_file(tmp_path, "cut.mov", video[:cut] + b"\xff" * 3)
        assert read_capture(str(p)).camera_model in (None, "iPhone 14 Pro")


def test_mvhd_walk_reads_headers_only() -> None:
    class CountingReader(io.BytesIO):
        read_bytes = 0

        def read(self, n: int | None = -1) -> bytes:
            out = super().read(n)
            self.read_bytes += len(out)
            return out

    f = CountingReader(mp4_with_creation(WHEN, mdat=det_bytes(1, 2_000_000)))
    assert mvhd_creation_time(f) == "2022-03-04T05:06:07Z"
    assert f.read_bytes < 100  # seeks over the 2 MB mdat


def test_sync_stores_capture_in_sqlite_and_table(
    tmp_path: Path, container: ContainerClient, storage_env: dict[str, str], azurite
) -> None:
    src, state_dir = tmp_path / "src", tmp_path / "state"
    write_file(src, "photo.jpg", jpeg_with_exif(det_bytes(1, 2000), model="Canon EOS R5"))
    write_file(src, "clip.mov", mp4_with_creation(WHEN, mdat=det_bytes(2, 3000), meta=APPLE))
    write_file(src, "broken.jpg", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*garbage")
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state_dir), "--json")
    assert r.code == 0, r.err
    assert r.json()["uploaded"] == 3  # the unreadable metadata did not stop the file

    state = StateDB(state_dir, readonly=True)
    got = {b.relpath: (b.capture_time, b.camera_model) for b in state.iter_blobs()}
    state.close()
    assert got == {
        "photo.jpg": ("2021-07-14T09:30:05", "Canon EOS R5"),
        "clip.mov": ("2022-03-04T05:06:07Z", "iPhone 14 Pro"),
        "broken.jpg": (None, None),
    }
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )
    rows = {e["RelPath"]: (e.get("CaptureTime"), e.get("CameraModel")) for e in table.list_entities() if "RelPath" in e}
    assert rows == got


def test_large_file_capture_read_from_disk(tmp_path: Path, container: ContainerClient, cfg: StorageConfig) -> None:
    """Files too big to keep in memory are hashed streaming; their metadata is read with a few seeks."""
    src = tmp_path / "src"
    write_file(src, "big.jpg", jpeg_with_exif(det_bytes(3, 300_000), model="X100V"))
    state = StateDB(tmp_path / "state")
    engine = SyncEngine(cfg, state, container, SyncOptions(source=src, small_file_max=1000))
    assert engine.run().uploaded == 1
    (row,) = list(state.iter_blobs())
    state.close()
    assert (row.capture_time, row.camera_model) == ("2021-07-14T09:30:05", "X100V")
