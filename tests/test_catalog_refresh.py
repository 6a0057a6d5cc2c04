"""The gallery's catalog is kept current by the runs that change what it lists: a real sync (after its Table
mirror), ``azphotosync thumbnails`` and the cloud's thumbnails run (tests/test_thumbnails_orchestrator.py)."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from sync_core.derived.catalog import catalog_blob_name
from tests.conftest import run_cli, write_file
from tests.rendition_media import jpeg_oriented, mp4

PREFIX = "photos/testhost"


@pytest.fixture
def thumbs(azurite, storage_env, monkeypatch) -> ContainerClient:
    """The thumbnails container of this archive (created, as infra/ does), named by the environment."""
    name = f"th{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AZURE_STORAGE_THUMBNAILS_CONTAINER", name)
    return BlobServiceClient.from_connection_string(azurite.connection_string).get_container_client(name)


def _catalog(thumbs: ContainerClient) -> dict[str, Any]:
    raw = thumbs.download_blob(catalog_blob_name(PREFIX), decompress=False).readall()
    return json.loads(gzip.decompress(raw))


def _library(root: Path) -> Path:
    src = root / "lib"
    write_file(src, "2024/portrait.jpg", jpeg_oriented(400, 300, 6))
    write_file(src, "2024/clip.mp4", mp4(seconds=1.0))
    write_file(src, "2024/broken.jpg", jpeg_oriented()[:1500])
    write_file(src, "2024/notes.xmp", b"<x:xmpmeta/>")  # a sidecar: backed up, not listed by the gallery
    return src


def test_sync_refreshes_the_catalog_after_the_mirror_and_says_nothing(container, thumbs, tmp_path):
    thumbs.create_container()
    src = _library(tmp_path)
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"), "--all-files")
    assert r.code == 0, r.err
    assert "catalog" not in (r.out + r.err).lower()
    doc = _catalog(thumbs)
    assert doc["prefix"] == PREFIX
    assert sorted(it["n"] for it in doc["items"]) == ["2024/broken.jpg", "2024/clip.mp4", "2024/portrait.jpg"]
    assert {it["rs"] for it in doc["items"]} == {None}  # no renditions run yet

    write_file(src, "2025/new.jpg", jpeg_oriented(200, 100, 1))  # the next sync lists the new file
    assert run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"), "--all-files").code == 0
    assert "2025/new.jpg" in {it["n"] for it in _catalog(thumbs)["items"]}


def test_sync_without_a_thumbnails_container_or_a_table_skips_the_catalog_silently(
    azurite, storage_env, thumbs, tmp_path
):
    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    svc.create_container(storage_env["AZURE_STORAGE_CONTAINER"])  # no index table
    src = _library(tmp_path)
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"))
    assert r.code == 0, r.err
    assert "catalog" not in (r.out + r.err).lower()
    thumbs.create_container()
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"))  # the table is still missing
    assert r.code == 0, r.err
    assert "catalog" not in (r.out + r.err).lower()
    assert not thumbs.get_blob_client(catalog_blob_name(PREFIX)).exists()


def test_a_failed_catalog_refresh_is_one_note_never_a_failed_backup(container, thumbs, tmp_path):
    thumbs.create_container()
    held = thumbs.upload_blob(catalog_blob_name(PREFIX), b"old")
    held.acquire_lease()  # another writer holds the catalog: the refresh's overwrite is refused
    src = _library(tmp_path)
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"), "--json")
    assert r.code == 0, r.err
    assert r.json()["uploaded"] == 4  # the sidecar too
    said = [ln for ln in r.err.splitlines() if "catalog" in ln]
    assert len(said) == 1 and said[0].startswith("note: gallery catalog not refreshed"), r.err


def test_thumbnails_command_refreshes_the_catalog_with_the_renditions_state(container, thumbs, tmp_path):
    src = _library(tmp_path)
    assert run_cli("--source", str(src), "--state-dir", str(tmp_path / "state")).code == 0
    r = run_cli("thumbnails", "--state-dir", str(tmp_path / "state"), "--json")
    assert r.json()["counts"]["made"] == 2 and r.json()["counts"]["failed"] == 1
    items = {it["n"]: it for it in _catalog(thumbs)["items"]}
    assert (items["2024/portrait.jpg"]["rs"], items["2024/portrait.jpg"]["w"], items["2024/portrait.jpg"]["h"]) == (
        "made", 300, 400,
    )  # fmt: skip
    assert items["2024/clip.mp4"]["rs"] == "made" and items["2024/clip.mp4"]["dur"] == pytest.approx(1.0, abs=0.2)
    assert items["2024/broken.jpg"]["rs"] == "failed" and items["2024/broken.jpg"]["rr"]


def test_album_commands_update_the_catalogs_albums_without_a_scan(container, thumbs, tmp_path):
    thumbs.create_container()
    src = _library(tmp_path)
    state = str(tmp_path / "state")
    assert run_cli("--source", str(src), "--state-dir", state).code == 0
    ids = {it["n"]: it["id"] for it in _catalog(thumbs)["items"]}
    assert run_cli("album", "create", "Trip", "--state-dir", state).code == 0
    assert _catalog(thumbs)["albums"] == {"Trip": []}
    assert run_cli("album", "add", "Trip", "--path", "2024/p*", "--state-dir", state).code == 0
    assert _catalog(thumbs)["albums"] == {"Trip": [ids["2024/portrait.jpg"]]}
    assert run_cli("album", "remove", "Trip", "--path", "2024/portrait.jpg", "--state-dir", state).code == 0
    assert _catalog(thumbs)["albums"] == {"Trip": []}
    r = run_cli("album", "delete", "Trip", "--state-dir", state)
    assert r.code == 0 and "catalog" not in (r.out + r.err).lower()
    assert _catalog(thumbs)["albums"] == {}


def test_an_unchanged_rerun_leaves_the_catalog_alone(container, thumbs, tmp_path):
    """The refresh reads every current row of the prefix: a sync that mirrored nothing skips it, so a clean
    rerun's cost does not grow with the library."""
    thumbs.create_container()
    src = _library(tmp_path)
    assert run_cli("--source", str(src), "--state-dir", str(tmp_path / "state")).code == 0
    before = thumbs.get_blob_client(catalog_blob_name(PREFIX)).get_blob_properties().etag
    assert run_cli("--source", str(src), "--state-dir", str(tmp_path / "state")).code == 0
    assert thumbs.get_blob_client(catalog_blob_name(PREFIX)).get_blob_properties().etag == before


def test_a_failed_refresh_is_owed_until_a_later_run_succeeds(container, thumbs, tmp_path):
    thumbs.create_container()
    held = thumbs.upload_blob(catalog_blob_name(PREFIX), b"old")
    lease = held.acquire_lease()
    src = _library(tmp_path)
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"))
    assert r.code == 0 and "catalog not refreshed" in r.err
    lease.release()
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "state"), "--json")
    assert r.code == 0 and r.json()["uploaded"] == 0, r.err  # nothing changed, but the refresh was owed
    assert {it["n"] for it in _catalog(thumbs)["items"]} == {"2024/portrait.jpg", "2024/clip.mp4", "2024/broken.jpg"}
    again = thumbs.get_blob_client(catalog_blob_name(PREFIX)).get_blob_properties().etag
    assert run_cli("--source", str(src), "--state-dir", str(tmp_path / "state")).code == 0
    assert thumbs.get_blob_client(catalog_blob_name(PREFIX)).get_blob_properties().etag == again  # paid


def test_a_sync_applies_its_own_rows_to_the_catalog_without_reading_the_index(container, thumbs, tmp_path, monkeypatch):
    """After the first build, a sync's new and deleted files change the stored catalog in place (the index is
    not read), and what the renditions step recorded for the other items stays."""
    from sync_core.derived import catalog

    src = _library(tmp_path)
    state = str(tmp_path / "state")
    assert run_cli("--source", str(src), "--state-dir", state).code == 0
    assert run_cli("thumbnails", "--state-dir", state, "--json").code == 1  # broken.jpg cannot be rendered
    write_file(src, "2025/new.jpg", jpeg_oriented(200, 100, 1))
    (src / "2024/clip.mp4").unlink()

    def no_scan(*_a: object, **_k: object) -> None:
        raise AssertionError("the catalog was rebuilt from the index")

    monkeypatch.setattr(catalog, "prefix_rows", no_scan)
    r = run_cli("--source", str(src), "--state-dir", state, "--json")
    assert r.code == 0, r.err
    assert r.json()["mirrored"] == 2
    items = {it["n"]: it for it in _catalog(thumbs)["items"]}
    assert sorted(items) == ["2024/broken.jpg", "2024/portrait.jpg", "2025/new.jpg"]
    assert (items["2024/portrait.jpg"]["rs"], items["2024/portrait.jpg"]["w"]) == ("made", 300)
    assert items["2025/new.jpg"]["rs"] is None


def test_a_sync_spools_the_catalog_rebuild_in_its_state_folder(container, thumbs, tmp_path, monkeypatch):
    """The rebuild's throwaway files (hundreds of MB at a million items) go to the state folder, not the
    system temp folder, which on a NAS is often a small RAM disk."""
    import tempfile

    from sync_core.derived import catalog

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    seen: list[str] = []
    real_init = catalog.ItemSpool.__init__

    def spy(self, folder=None):  # type: ignore[no-untyped-def]
        real_init(self, folder)
        seen.append(str(Path(self._dir.name).parent))

    monkeypatch.setattr(catalog.ItemSpool, "__init__", spy)
    thumbs.create_container()
    state = tmp_path / "state"
    r = run_cli("--source", str(_library(tmp_path)), "--state-dir", str(state))
    assert r.code == 0, r.err
    assert seen == [str(state)]
    assert len(_catalog(thumbs)["items"]) == 3
    assert not [p for p in state.iterdir() if p.name.startswith("azps-catalog-")]  # removed after the upload
