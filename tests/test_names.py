"""Every name a filesystem can hold is backed up and restored under its true name (Azurite)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import ContainerClient

from sync_core.contracts.blobmeta import parse_metadata
from sync_core.contracts.blobname import QUOTE, blob_name, decode_path, parse_blob_name
from tests.conftest import det_bytes, run_cli, write_file
from tests.test_restore import PREFIX, restore, sync, tree

LONG = "/".join(f"{i}-" + "x" * 240 for i in range(5)) + "/long.jpg"  # 1,2xx characters, each segment < 255 bytes
NAMES = [
    "back\\slash.jpg",
    "dir\\with\\backslashes/in.jpg",
    "trailing dot./x.jpg",
    "file.jpg.",
    "trailing space /x.jpg ",
    "ctrl\x01char.jpg",
    "tab\tand\nnewline.jpg",
    "lookalike \uff3c and quote \u201b.jpg",  # literal look-alikes: stored as they are
    "quote then lookalike \u201b\uff0e.jpg",  # the one sequence a decoder would misread: escaped
    LONG,
]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i, rel in enumerate(NAMES):
        # JPEG bytes: 'file.jpg.' and 'x.jpg ' have no media extension and are recognised by content
        data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + det_bytes(100 + i, 1000 + i)
        write_file(src, rel, data, mtime_ns=1_600_000_000_000_000_000 + i)
    return src


def test_unstorable_names_are_backed_up_and_restored_under_their_true_name(
    tmp_path: Path, library: Path, container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sync(library, tmp_path / "state")
    assert (s["uploaded"], s["failed"]) == (len(NAMES), 0), s["failures"]

    blobs = {b.name: b for b in container.list_blobs(name_starts_with=PREFIX + "/", include=["metadata"])}
    by_path = {parse_metadata(b.metadata).relpath: name for name, b in blobs.items()}
    assert set(by_path) == set(NAMES)  # the true names, in metadata
    for rel, name in by_path.items():
        sha, stored = parse_blob_name(PREFIX, name)
        assert name == blob_name(PREFIX, sha, rel)
        assert "\\" not in stored and not any(seg.endswith(".") for seg in stored.split("/"))
        assert len(name) <= 1024
        assert decode_path(stored) == (None if rel == LONG else rel)
    sha = parse_blob_name(PREFIX, by_path[NAMES[7]])[0]
    assert by_path[NAMES[7]].endswith(f"/{sha}/{NAMES[7]}")  # a storable name is unchanged
    assert QUOTE + "~" in by_path[LONG]

    for index in ("table", "listing"):
        dest = tmp_path / f"dest-{index}"
        code, r, err = restore(dest, "--index", index)
        assert code == 0, (err, r.get("problems"))
        assert (r["restored"], r["rejected"]) == (len(NAMES), 0)
        assert tree(dest) == tree(library)

    # The cloud's verification agrees: the Table rows and the encoded names are one archive.
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", f"r{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("VERIFY_RUNS_TABLE", f"runs{uuid.uuid4().hex[:12]}")
    v = run_cli("verify", "--state-dir", str(tmp_path / "state"), "--deep-budget", "1GiB", "--json")
    assert v.code == 0, v.err
    assert v.json()["counts"]["ok"] == len(NAMES)


def test_index_rebuilt_from_encoded_blobs_keeps_the_true_names(
    tmp_path: Path, library: Path, container: ContainerClient, storage_env: dict[str, str]
) -> None:
    sync(library, tmp_path / "state")
    table = TableServiceClient.from_connection_string(storage_env["AZURE_STORAGE_CONNECTION_STRING"])
    rows = table.get_table_client(storage_env["AZURE_STORAGE_TABLE"])
    for row in list(rows.list_entities()):  # the Table lost too: rows come back from the blobs' metadata
        rows.delete_entity(row["PartitionKey"], row["RowKey"])
    state = tmp_path / "new-state"
    r = run_cli("index", "rebuild", "--source", str(library), "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    assert (r.json()["from_blobs"], r.json()["unusable"]) == (len(NAMES), [])
    again = run_cli("--source", str(library), "--state-dir", str(state), "--json")
    assert again.code == 0, again.err
    assert (again.json()["unchanged"], again.json()["uploaded"]) == (len(NAMES), 0)
