"""`azphotosync restore` on Azurite: byte-identical round trips, verification, resume, and no write outside
the target folder whatever the container or the Table say."""

from __future__ import annotations

import hashlib
import os
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import EdmType, EntityProperty, TableServiceClient
from azure.storage.blob import ContainerClient

from sync_core.contracts.blobmeta import BlobMeta, build_metadata
from sync_core.restore.run import RestoreEngine, RestoreKind, RestoreOptions, RestoreOutcome, path_selected
from sync_core.restore.target import temp_name, unsafe_reason
from tests.conftest import det_bytes, run_cli, write_file
from tests.media_samples import jpeg_with_exif, mp4_with_creation

PREFIX = "photos/testhost"
MTIME = 1_600_000_000_123_456_789  # nanosecond precision survives the round trip


@pytest.fixture
def table_name(storage_env: dict[str, str]) -> str:
    """The test's own index table (created with the container)."""
    return storage_env["AZURE_STORAGE_TABLE"]


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """relpath -> (bytes, mtime_ns) of every regular file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def mixed_library(src: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café")
    nfd = unicodedata.normalize("NFD", "café")
    files = {
        f"2021/{nfc}.jpg": jpeg_with_exif(det_bytes(1, 5000)),
        f"2021/{nfd}.jpg": jpeg_with_exif(det_bytes(2, 5000), model="Other"),  # a distinct name on disk
        "2021/Ünïcødé 日本語 🎉/IMG 0001.HEIC": det_bytes(3, 70_000),
        "2022/clip.mp4": mp4_with_creation(datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC), mdat=det_bytes(4, 20_000)),
        "2022/big.mov": det_bytes(5, 9 * 1024 * 1024 + 17),  # block upload, multi-chunk download
        "2022/dup-a.jpg": det_bytes(6, 3000),
        "2022/sub/dup-b.jpg": det_bytes(6, 3000),  # same content, second path
        "empty.png": b"",
        "with space/it's #1 & 100%.png": det_bytes(7, 1234),
    }
    for i, (rel, data) in enumerate(files.items()):
        write_file(src, rel, data, mtime_ns=MTIME + i * 1_000_000_007)


def sync(src: Path, state: Path) -> dict:
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--create-container", "--json")
    assert r.code == 0, r.err
    return r.json()


def restore(dest: Path, *extra: str) -> tuple[int, dict, str]:
    r = run_cli("restore", "--to", str(dest), "--json", *extra)
    return r.code, (r.json() if r.out.strip() else {}), r.err


# -- round trip --------------------------------------------------------------------------------------------
def test_round_trip_is_byte_identical_with_mtimes(tmp_path: Path, container: ContainerClient, table_name: str) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    mixed_library(src)
    sync(src, tmp_path / "state")
    code, s, err = restore(dest)
    assert code == 0, err
    assert s["index"] == "table"
    assert s["restored"] == s["candidates"] == 9
    assert tree(dest) == tree(src)
    assert not [p for p in dest.rglob("*") if p.name.startswith(".azps-restore-")]

    # Again: everything is already there, nothing is downloaded.
    code, s, _ = restore(dest)
    assert (code, s["present"], s["restored"], s["bytes_received"]) == (0, 9, 0, 0)

    # A new machine carrying on under the same source id: the restored library is found in the archive.
    again = sync(dest, tmp_path / "new-machine-state")
    assert (again["uploaded"], again["already_present"], again["bytes_uploaded"]) == (0, 9, 0)


def test_restores_current_versions_only_and_listing_fallback(
    tmp_path: Path, container: ContainerClient, table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    write_file(src, "a.jpg", b"version 1", mtime_ns=MTIME)
    write_file(src, "gone.jpg", b"deleted later", mtime_ns=MTIME)
    sync(src, state)
    write_file(src, "a.jpg", b"version 2, longer", mtime_ns=MTIME + 10**9)
    (src / "gone.jpg").unlink()
    sync(src, state)

    code, s, _ = restore(tmp_path / "t")
    assert (code, s["index"]) == (0, "table")
    assert tree(tmp_path / "t") == {"a.jpg": (b"version 2, longer", MTIME + 10**9)}
    # A --path that matches no current row does not fall back to the listing (which still has gone.jpg).
    code, _, err = restore(tmp_path / "g", "--path", "gone.jpg")
    assert code == 2 and "matches --path" in err and not (tmp_path / "g").exists()

    # Without the index, the newest blob of each path counts: the edit wins, the deleted file comes back.
    monkeypatch.setenv("AZURE_STORAGE_TABLE", "nosuchtable123")
    code, s, err = restore(tmp_path / "l")
    assert (code, s["index"]) == (0, "listing"), err
    assert s["index_note"] == "index table 'nosuchtable123' does not exist"
    assert tree(tmp_path / "l") == {
        "a.jpg": (b"version 2, longer", MTIME + 10**9),
        "gone.jpg": (b"deleted later", MTIME),
    }
    code, s, err = restore(tmp_path / "x", "--index", "table")
    assert code == 2 and "does not exist" in err


def test_path_glob_and_source_id(tmp_path: Path, container: ContainerClient, table_name: str) -> None:
    src = tmp_path / "src"
    for rel in ("2021/a.jpg", "2021/deep/b.jpg", "2022/c.jpg"):
        write_file(src, rel, rel.encode())
    sync(src, tmp_path / "state")
    code, _, _ = restore(tmp_path / "d1", "--path", "2021")
    assert code == 0 and sorted(tree(tmp_path / "d1")) == ["2021/a.jpg", "2021/deep/b.jpg"]
    code, _, _ = restore(tmp_path / "d2", "--path", "*/c.jpg", "--path", "2021/deep/*")
    assert code == 0 and sorted(tree(tmp_path / "d2")) == ["2021/deep/b.jpg", "2022/c.jpg"]
    code, _, err = restore(tmp_path / "d3", "--path", "1999/*")
    assert code == 2 and "matches --path" in err
    # Another device's files: --source-id picks its default prefix; none there.
    code, _, err = restore(tmp_path / "d4", "--source-id", "otherhost")
    assert code == 2 and "--source-id" in err and not (tmp_path / "d4").exists()


# -- damage and conflicts ---------------------------------------------------------------------------------
def test_corrupted_blob_is_reported_and_not_written(tmp_path: Path, container: ContainerClient) -> None:
    src = tmp_path / "src"
    write_file(src, "good.jpg", det_bytes(10, 4000))
    write_file(src, "bad.jpg", det_bytes(11, 4000))
    write_file(src, "short.jpg", det_bytes(12, 4000))
    sync(src, tmp_path / "state")
    for rel, data in (("bad.jpg", det_bytes(99, 4000)), ("short.jpg", det_bytes(12, 3999))):
        sha = hashlib.sha256((src / rel).read_bytes()).hexdigest()
        blob = container.get_blob_client(f"{PREFIX}/{sha[:2]}/{sha}/{rel}")
        md = blob.get_blob_properties().metadata
        blob.upload_blob(data, overwrite=True, metadata=md)  # bit rot with the metadata left intact

    dest = tmp_path / "dest"
    code, s, err = restore(dest)
    assert code == 1
    assert (s["restored"], s["corrupt"]) == (1, 2)
    assert {p["path"] for p in s["problems"]} == {"bad.jpg", "short.jpg"}
    assert "corrupt" in err and "bad.jpg" in err
    assert sorted(tree(dest)) == ["good.jpg"]  # no corrupt file, no temp file left behind


def test_local_file_kept_unless_overwrite(tmp_path: Path, container: ContainerClient, table_name: str) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    write_file(src, "a.jpg", b"archived", mtime_ns=MTIME)
    sync(src, tmp_path / "state")
    write_file(dest, "a.jpg", b"local edit")
    code, s, err = restore(dest)
    assert (code, s["kept"]) == (1, 1) and "--overwrite" in err
    assert (dest / "a.jpg").read_bytes() == b"local edit"
    code, s, _ = restore(dest, "--overwrite")
    assert (code, s["restored"]) == (0, 1)
    assert tree(dest) == {"a.jpg": (b"archived", MTIME)}


# -- interrupted restore ----------------------------------------------------------------------------------
class StopAfter:
    """A progress sink that interrupts the run (as Ctrl-C would) after ``n`` files."""

    def __init__(self, n: int):
        self.n = n
        self.done: list[RestoreOutcome] = []

    def planned(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def note(self, text: str, *, verbose: bool = False) -> None:
        pass

    def file_done(self, outcome: RestoreOutcome) -> None:
        self.done.append(outcome)
        if len(self.done) == self.n:
            raise KeyboardInterrupt


def test_interrupted_restore_resumes(tmp_path: Path, container: ContainerClient, table_name: str) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    sizes = {f"f{i:02d}.jpg": 50_000 + i for i in range(20)}
    for i, (rel, size) in enumerate(sizes.items()):
        write_file(src, rel, det_bytes(100 + i, size), mtime_ns=MTIME + i)
    sync(src, tmp_path / "state")

    opts = RestoreOptions(dest=dest, max_workers=2, index="listing")
    stop = StopAfter(5)
    with pytest.raises(KeyboardInterrupt):
        RestoreEngine(container, PREFIX, opts, progress=stop).run()
    first = {p.name for p in dest.iterdir() if not p.name.startswith(".azps-restore-")}
    partial = sum(p.stat().st_size for p in dest.glob(".azps-restore-*"))  # in-flight ones stopped mid-way
    assert 5 <= len(first) < 20  # queued downloads were cancelled
    # A crash mid-download leaves a partial temp file and perhaps a truncated target; neither is trusted.
    f19 = (src / "f19.jpg").read_bytes()
    (dest / temp_name("f19.jpg", hashlib.sha256(f19).hexdigest())).write_bytes(b"partial")

    s = RestoreEngine(container, PREFIX, opts).run()
    assert s.exit_code == 0
    assert s.present == len(first) and s.restored == 20 - len(first)
    # Only missing files were fetched; the bogus partial of f19 cost one extra (whole) download at most.
    missing = sum(size for rel, size in sizes.items() if rel not in first)
    assert missing - partial <= s.bytes_received <= missing + len(f19)
    assert tree(dest) == tree(src)


def test_partial_download_is_resumed_only_when_trustworthy(tmp_path: Path, container: ContainerClient) -> None:
    src, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "outside"
    data = {name: det_bytes(i, 300_000) for i, name in enumerate(["good.mov", "torn.mov", "hard.mov", "sym.mov"])}
    for name, content in data.items():
        write_file(src, name, content, mtime_ns=MTIME)
    sync(src, tmp_path / "state")
    dest.mkdir()
    outside.mkdir()
    secret = outside / "secret.bin"
    secret.write_bytes(b"s" * 100_000)

    def part(name: str) -> Path:
        return dest / temp_name(name, hashlib.sha256(data[name]).hexdigest())

    part("good.mov").write_bytes(data["good.mov"][:100_000])  # a clean prefix: resumed
    part("torn.mov").write_bytes(b"x" * 100_000)  # not a prefix of the blob: downloaded again, whole
    os.link(secret, part("hard.mov"))  # a hard link to a file outside: never written through
    part("sym.mov").symlink_to(secret)  # a symbolic link: never followed

    s = RestoreEngine(container, PREFIX, RestoreOptions(dest=dest, index="listing")).run()
    assert (s.exit_code, s.restored) == (0, 4)
    assert s.bytes_received == 200_000 + (200_000 + 300_000) + 300_000 + 300_000
    assert tree(dest) == tree(src)
    assert secret.read_bytes() == b"s" * 100_000 and _snapshot(outside) == {"secret.bin"}


def test_corrupt_blob_behind_a_partial_is_still_reported(
    tmp_path: Path, container: ContainerClient, table_name: str, azurite
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    content = det_bytes(5, 50_000)
    write_file(src, "a.mov", content)
    sync(src, tmp_path / "state")
    sha = hashlib.sha256(content).hexdigest()
    blob = container.get_blob_client(f"{PREFIX}/{sha[:2]}/{sha}/a.mov")
    blob.upload_blob(content[:1000], overwrite=True, metadata=blob.get_blob_properties().metadata)  # truncated
    dest.mkdir()
    (dest / temp_name("a.mov", sha)).write_bytes(content[:20_000])  # longer than what the blob still holds
    table = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(table_name)
    s = RestoreEngine(container, PREFIX, RestoreOptions(dest=dest, index="table"), table=table).run()
    assert (s.corrupt, s.restored) == (1, 0)
    assert "got 1000 bytes" in s.problems[0]["detail"]
    assert _snapshot(dest) == set()


# -- hostile names ----------------------------------------------------------------------------------------
def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_hostile_names_stay_inside_dir(
    tmp_path: Path, container: ContainerClient, table_name: str, azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, work = tmp_path / "src", tmp_path / "work"
    write_file(src, "ok.jpg", b"fine", mtime_ns=MTIME)
    write_file(src, "album/x.jpg", b"in an album")
    write_file(src, "link.jpg", b"target of a planted link")
    sync(src, tmp_path / "state")

    data = b"payload that must never land outside"
    sha = hashlib.sha256(data).hexdigest()
    base = f"{PREFIX}/{sha[:2]}/{sha}/"

    # The container: names the service stores (Azurite turns '\' into '/', so '..' segments get in).
    for rel in ("..\\..\\..\\evil.jpg", "/abs.jpg", "C:/Windows/evil.jpg", "a//b.jpg"):
        container.upload_blob(base + rel, data, metadata=build_metadata(BlobMeta(sha, rel, len(data), MTIME, "x")))
    container.upload_blob(base + "..\\..\\nometa.jpg", data)  # no metadata: the name alone speaks
    # A valid name whose metadata claims another path.
    container.upload_blob(
        base + "meta.jpg", data, metadata=build_metadata(BlobMeta(sha, "../../meta.jpg", len(data), MTIME, "x"))
    )
    # The Table: rows pointing outside, with the real blob behind them so a naive restore would write them.
    tables = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(table_name)
    from sync_core.index.table_index import partition_key, row_key

    hostile_rows = [
        ("../../escape.jpg", base + "../../escape.jpg"),
        ("/etc/evil.jpg", base + "/etc/evil.jpg"),
        ("a\\..\\..\\evil.jpg", base + "a\\..\\..\\evil.jpg"),
        ("C:\\evil.jpg", base + "C:\\evil.jpg"),
        ("nul\x00byte.jpg", base + "nul\x00byte.jpg"),
        ("ok-name.jpg", base + "../../../outside.jpg"),  # row and blob name disagree
        ("other.jpg", f"elsewhere/{sha[:2]}/{sha}/other.jpg"),  # a blob outside the prefix
    ]
    for rel, blob in hostile_rows:
        tables.upsert_entity({
            "PartitionKey": partition_key(PREFIX, sha), "RowKey": row_key(sha, rel + "#" + uuid.uuid4().hex),
            "BlobName": blob, "RelPath": rel, "Size": len(data), "MtimeNs": EntityProperty(MTIME, EdmType.INT64),
            "Sha256": sha, "SourceId": "testhost", "IsCurrent": True,
        })  # fmt: skip

    dest = work / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.jpg").write_bytes(b"precious")
    dest.mkdir(parents=True)
    (dest / "album").symlink_to(outside, target_is_directory=True)  # a symlinked parent
    (dest / "link.jpg").symlink_to(outside / "target.jpg")  # a symlinked target
    before = _snapshot(tmp_path)

    for index, hostile in (("table", len(hostile_rows)), ("listing", 6)):
        code, s, err = restore(dest, "--index", index)
        assert code == 1, err
        assert (s["rejected"], s["restored"] + s["present"]) == (hostile + 2, 1), s
        assert (dest / "ok.jpg").read_bytes() == b"fine"
        problems = {p["path"]: p["detail"] for p in s["problems"]}
        assert "symbolic link" in problems["album/x.jpg"]
        assert "symbolic link" in problems["link.jpg"]
        assert all(p["kind"] == "rejected" for p in s["problems"])
        after = _snapshot(tmp_path)
        assert {p for p in after - before if not p.startswith("work/dest/")} == set()
        assert _snapshot(outside) == {"target.jpg"} and (outside / "target.jpg").read_bytes() == b"precious"
    # Each hostile table row was reported by name.
    code, s, _ = restore(dest, "--index", "table")
    reported = " ".join(p["path"] for p in s["problems"])
    for needle in ("escape.jpg", "/etc/evil.jpg", "C:", "nul", "ok-name.jpg", "other.jpg"):
        assert needle in reported, (needle, reported)
    code, s, _ = restore(dest, "--index", "listing")
    reported = " ".join(p["path"] for p in s["problems"])
    for needle in ("evil.jpg", "abs.jpg", "C:/Windows", "a//b.jpg", "../../meta.jpg", "../../nometa.jpg"):
        assert needle in reported, (needle, reported)


UNSAFE = ["", "../x", "a/../../x", "/abs", "C:/x", "c:x", "a:b.jpg", "a\x00b", "a//b", "./x", "a/."]


@pytest.mark.parametrize("rel", [*UNSAFE, "a/", "\ud800"])
def test_unsafe_names(rel: str) -> None:
    assert unsafe_reason(rel) is not None


# A backslash or a control character is part of a POSIX file name (backed up under an encoded blob name).
@pytest.mark.parametrize(
    "rel", ["a.jpg", "2021/x y/ü 日本.heic", "..a/b..jpg", "ab:c.jpg", "...hidden", "a\\b", "a\x1fb"]
)
def test_safe_names(rel: str) -> None:
    assert unsafe_reason(rel) is None


def test_path_selection() -> None:
    assert path_selected("2021/a/b.jpg", ["2021"]) and path_selected("2021/a/b.jpg", ["2021/"])
    assert not path_selected("20210/b.jpg", ["2021"])
    assert path_selected("x/y.JPG", ["*.JPG"]) and not path_selected("x/y.JPG", ["*.jpg"])
    assert path_selected("anything", [])
    assert RestoreKind.CORRUPT.value == "corrupt"


def test_devices_sharing_a_prefix(tmp_path: Path, container: ContainerClient) -> None:
    """--source-id picks one device's files on a shared prefix; without it the newest upload wins."""
    for i, device in enumerate(("laptop", "nas")):
        src = tmp_path / device
        write_file(src, "same/path.jpg", f"{device}'s version".encode(), mtime_ns=MTIME + i)
        write_file(src, f"only-{device}.jpg", device.encode())
        r = run_cli("sync", "--source", str(src), "--state-dir", str(tmp_path / f"state-{device}"),
                    "--prefix", "photos/family", "--source-id", device, "--json")  # fmt: skip
        assert r.code == 0, r.err

    for index in ("table", "listing"):
        code, s, _ = restore(tmp_path / f"laptop-{index}", "--prefix", "photos/family", "--source-id", "laptop",
                             "--index", index)  # fmt: skip
        assert (code, s["superseded"]) == (0, 0)
        assert tree(tmp_path / f"laptop-{index}") == tree(tmp_path / "laptop")
        code, s, _ = restore(tmp_path / f"all-{index}", "--prefix", "photos/family", "--index", index)
        assert (code, s["superseded"], s["restored"]) == (0, 1, 3)
        assert tree(tmp_path / f"all-{index}")["same/path.jpg"][0] == b"nas's version"  # synced last


def test_a_path_that_matches_nothing_says_so_and_reports_no_unrelated_row(
    tmp_path: Path, container: ContainerClient, table_name: str, azurite
) -> None:
    """Rows and blobs that cannot be restored (here a row and a blob whose names escape the folder) are
    reported only when the path they claim is selected: ``--path`` matching nothing says "nothing matches"."""
    from sync_core.index.table_index import partition_key, row_key

    src = tmp_path / "src"
    write_file(src, "2021/a.jpg", b"a photo")
    sync(src, tmp_path / "state")
    data = b"elsewhere"
    sha = hashlib.sha256(data).hexdigest()
    base = f"{PREFIX}/{sha[:2]}/{sha}/"
    meta = build_metadata(BlobMeta(sha, "..\\..\\x.jpg", 9, MTIME, "x"))
    container.upload_blob(base + "..\\..\\x.jpg", data, metadata=meta)  # Azurite stores it as ../../x.jpg
    tables = TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(table_name)
    tables.upsert_entity({
        "PartitionKey": partition_key(PREFIX, sha), "RowKey": row_key(sha, "escape"), "BlobName": base + "../../x.jpg",
        "RelPath": "../../x.jpg", "Size": 9, "MtimeNs": EntityProperty(MTIME, EdmType.INT64), "Sha256": sha,
        "SourceId": "testhost", "IsCurrent": True,
    })  # fmt: skip
    for index in ("table", "listing"):
        code, s, err = restore(tmp_path / f"n-{index}", "--index", index, "--path", "1999/*")
        assert code == 2 and "matches --path 1999/*" in err, (index, s, err)
        assert not (tmp_path / f"n-{index}").exists()
        # A --path that selects something reports only what it selected.
        code, s, err = restore(tmp_path / f"y-{index}", "--index", index, "--path", "2021")
        assert (code, s["restored"], s["rejected"]) == (0, 1, 0), (index, s, err)
    # Without --path, the broken entry is still reported.
    code, s, _ = restore(tmp_path / "all", "--index", "table")
    assert code == 1 and s["rejected"] == 1
