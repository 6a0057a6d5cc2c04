"""Albums, folders and the timeline on Azurite: user albums round-trip through the index table in their own
partitions, shared by every device of the archive; `restore --album` restores exactly an album's files."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import ContainerClient

from sync_core.derived.albums import AlbumStore, Member, album_name, resolve
from sync_core.derived.folders import folders
from sync_core.derived.timeline import Item, TakenRange, current_items, timeline
from sync_core.errors import ConfigError
from sync_core.index.table_index import (
    ALBUMS_PARTITION,
    BINDING_PARTITION,
    encode_key,
    is_reserved_partition,
    partition_key,
)
from sync_core.verify.partition import discover_prefixes
from tests.conftest import det_bytes, run_cli, write_file
from tests.media_samples import jpeg_with_exif, mp4_with_creation

PREFIX = "photos/testhost"
JAN_2020 = 1_579_000_000 * 10**9  # 2020-01-14 (UTC): mtimes of the files without a capture date


@pytest.fixture
def table(azurite, storage_env, container) -> TableClient:
    return TableServiceClient.from_connection_string(azurite.connection_string).get_table_client(
        storage_env["AZURE_STORAGE_TABLE"]
    )


def library(src: Path) -> None:
    files = {
        "2021/07 Beach/IMG_1.jpg": jpeg_with_exif(det_bytes(1, 3000), taken="2021:07:14 09:30:05"),
        "2021/07 Beach/IMG_2.jpg": jpeg_with_exif(det_bytes(2, 3000), taken="2021:07:20 18:00:00", offset="+02:00"),
        "2021/08 Hike/IMG_3.jpg": jpeg_with_exif(det_bytes(3, 3000), taken="2021:08:02 07:15:00"),
        "2022/clip.mp4": mp4_with_creation(datetime(2022, 5, 6, 7, 8, 9, tzinfo=UTC), mdat=det_bytes(4, 5000)),
        "scans/old photo #1.png": det_bytes(5, 2000),  # no capture date: dated by mtime
        "scans/sub/old photo 2.png": det_bytes(6, 2000),
        "top.gif": det_bytes(7, 100),
    }
    for i, (rel, data) in enumerate(files.items()):
        write_file(src, rel, data, mtime_ns=JAN_2020 + i * 10**9)


def sync(src: Path, state: Path) -> None:
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--create-container", "--json")
    assert r.code == 0, r.err


def album(*args: str) -> tuple[int, dict, str]:
    r = run_cli("album", *args, "--json")
    return r.code, (r.json() if r.code == 0 and r.out.strip() else {}), r.err


def paths(show: dict) -> list[str]:
    return sorted(i["path"] for i in show["items"])


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


# -- user albums through the table ----------------------------------------------------------------------
def test_album_round_trip_through_the_table(tmp_path: Path, table: TableClient, container: ContainerClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    blobs_before = sorted(b.name for b in container.list_blobs())
    code, out, err = album("create", "Summer 2021")
    assert code == 0 and out["created"] is True, err
    assert album("create", "Summer 2021")[1]["created"] is False  # idempotent

    code, out, err = album("add", "Summer 2021", "--path", "2021/07 Beach")
    assert code == 0 and (out["added"], out["already"]) == (2, 0), err
    code, out, err = album("add", "Summer 2021", "--taken", "2021-08..2022-05")
    assert code == 0 and (out["added"], out["already"]) == (2, 0), err  # IMG_3 and the clip (UTC creation time)
    code, out, _ = album("add", "Summer 2021", "--path", "2021/*")
    assert (out["added"], out["already"]) == (0, 3)  # merge: nothing written twice

    code, show, _ = album("show", "Summer 2021")
    assert code == 0
    assert paths(show) == [
        "2021/07 Beach/IMG_1.jpg",
        "2021/07 Beach/IMG_2.jpg",
        "2021/08 Hike/IMG_3.jpg",
        "2022/clip.mp4",
    ]
    assert {i["state"] for i in show["items"]} == {"current"}
    assert {i["date_source"] for i in show["items"]} == {"capture"}
    assert show["album"]["members"] == 4 and show["album"]["created_by"] == "testhost"
    _, listed, _ = album("list")
    assert [(a["name"], a["members"]) for a in listed["albums"]] == [("Summer 2021", 4)]

    code, out, _ = album("remove", "Summer 2021", "--taken", "2022")
    assert code == 0 and out["removed"] == 1
    code, out, _ = album("remove", "Summer 2021", "--path", "*/IMG_1.jpg")
    assert code == 0 and out["removed"] == 1
    assert paths(album("show", "Summer 2021")[1]) == ["2021/07 Beach/IMG_2.jpg", "2021/08 Hike/IMG_3.jpg"]

    # Stored in its own partitions, in the same table; the index rows and blobs are untouched.
    defs = list(table.query_entities(f"PartitionKey eq '{ALBUMS_PARTITION}'"))
    assert [d["Name"] for d in defs] == ["Summer 2021"]
    member_pk = f"%~album-{defs[0]['AlbumId']}"
    assert len(list(table.query_entities("PartitionKey eq @pk", parameters={"pk": member_pk}))) == 2
    code, out, _ = album("delete", "Summer 2021")
    assert code == 0 and out["members"] == 2
    assert album("list")[1]["albums"] == []
    album_rows = [e for e in table.list_entities() if is_reserved_partition(e["PartitionKey"])]
    assert [e for e in album_rows if e["PartitionKey"] != BINDING_PARTITION] == []  # the binding is not album data
    assert sorted(b.name for b in container.list_blobs()) == blobs_before
    assert len(list(current_items(table, PREFIX))) == 7


def test_names_differing_in_case_or_with_hostile_characters(tmp_path: Path, table: TableClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    names = ["Trip", "trip", "a/b\\c#d?e%2F f 'g' \"h\"", "日本 🎉 été", "%~albums", "..", "x" * 200]
    for i, name in enumerate(names):
        code, out, err = album("create", name)
        assert code == 0 and out["created"], (name, err)
        assert album("add", name, "--path", sorted(["top.gif", "2022/clip.mp4", "scans"])[i % 3])[0] == 0
    listed = [a["name"] for a in album("list")[1]["albums"]]
    assert sorted(listed) == sorted(names)
    assert album("show", "Trip")[1]["items"] != album("show", "trip")[1]["items"]  # two albums, not one
    for i, name in enumerate(names):
        code, show, err = album("show", name)
        assert code == 0, err
        assert show["album"]["name"] == name
        assert paths(show)[0].startswith(sorted(["top.gif", "2022/clip.mp4", "scans"])[i % 3])
    # A name is NFC text without surrounding blanks: the decomposed spelling finds the same album.
    assert album("show", "  日本 🎉 e\u0301te\u0301 ")[1]["album"]["name"] == "日本 🎉 été"
    code, _, err = album("show", "TRIP")
    assert code == 2 and "'Trip'" in err and "'trip'" in err and len(err.strip().splitlines()) == 1
    for bad in ("", "   ", "tab\there", "new\nline", "x" * 201):
        code, _, err = album("create", bad)
        assert code == 2 and err.startswith("azphotosync: error: an album name"), (bad, err)
    # Keys stay within what the Table allows.
    for e in table.query_entities(f"PartitionKey eq '{ALBUMS_PARTITION}'"):
        assert not any(c in e["RowKey"] for c in "/\\#?") and e["RowKey"] == encode_key(e["Name"])


def test_missing_album_is_a_one_line_usage_error(tmp_path: Path, table: TableClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    for args in (
        ("album", "show", "Nope"),
        ("album", "add", "Nope", "--path", "top.gif"),
        ("album", "remove", "Nope", "--path", "top.gif"),
        ("album", "delete", "Nope"),
        ("restore", "--album", "Nope", "--to", str(tmp_path / "dest")),
    ):
        r = run_cli(*args)
        assert r.code == 2, (args, r.err)
        assert r.err.strip().splitlines() == [
            "azphotosync: error: no album named 'Nope'; `azphotosync album list` shows them"
        ]
    assert not (tmp_path / "dest").exists()
    assert album("create", "Empty")[0] == 0
    r = run_cli("album", "add", "Empty", "--path", "nothing/*")
    assert r.code == 2 and "nothing added" in r.err
    r = run_cli("restore", "--album", "Empty", "--to", str(tmp_path / "dest"))
    assert r.code == 2 and "has no current files under prefix" in r.err


def test_two_devices_share_albums(tmp_path: Path, table: TableClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    laptop, nas = AlbumStore(table, "laptop"), AlbumStore(table, "nas")
    items = sorted(current_items(table, PREFIX), key=lambda i: i.relpath)
    a, created_a = laptop.create("Family")
    b, created_b = nas.create("Family")  # the same name from another device: the same album
    assert (created_a, created_b) == (True, False) and a.album_id == b.album_id
    assert laptop.add(a, items[:4]) == (4, 0)
    assert nas.add(b, items[2:]) == (3, 2)
    assert len(laptop.members(a)) == len(items)
    # A delete on one device while the other adds: the add says so, and a re-created album starts empty.
    laptop.delete("Family")
    with pytest.raises(ConfigError, match="was deleted while files were being added"):
        nas.add(b, items[:1])
    fresh, created = nas.create("Family")
    assert created and fresh.album_id != a.album_id and nas.members(fresh) == []


def test_members_follow_renames_and_edits(tmp_path: Path, table: TableClient) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    library(src)
    sync(src, state)
    assert album("create", "Keep")[0] == 0
    assert album("add", "Keep", "--path", "scans")[1]["added"] == 2
    assert album("add", "Keep", "--path", "top.gif")[1]["added"] == 1
    (src / "scans/old photo #1.png").rename(src / "scans/renamed.png")  # same content, new path
    write_file(src, "scans/sub/old photo 2.png", det_bytes(60, 2000))  # edited in place
    (src / "top.gif").unlink()  # deleted at the source
    sync(src, state)
    code, show, _ = album("show", "Keep")
    assert code == 0
    got = {i["member_path"]: (i["state"], i.get("path")) for i in show["items"]}
    assert got == {
        "scans/old photo #1.png": ("moved", "scans/renamed.png"),
        "scans/sub/old photo 2.png": ("edited", "scans/sub/old photo 2.png"),
        "top.gif": ("gone", None),
    }


# -- restore --album ------------------------------------------------------------------------------------
def test_restore_album_restores_exactly_its_files(tmp_path: Path, table: TableClient) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    library(src)
    write_file(src, "2021/07 Beach/IMG_1 copy.jpg", (src / "2021/07 Beach/IMG_1.jpg").read_bytes())  # a duplicate
    sync(src, state)
    assert album("create", "Best #1 / 100%")[0] == 0
    assert album("add", "Best #1 / 100%", "--path", "2021/07 Beach/IMG_1.jpg", "--path", "scans/sub")[0] == 0
    assert album("add", "Best #1 / 100%", "--taken", "2022-05-06")[1]["added"] == 1
    dest = tmp_path / "dest"
    r = run_cli("restore", "--album", "Best #1 / 100%", "--to", str(dest), "--json")
    assert r.code == 0, r.err
    want = ["2021/07 Beach/IMG_1.jpg", "2022/clip.mp4", "scans/sub/old photo 2.png"]
    assert r.json()["restored"] == r.json()["candidates"] == 3
    got = tree(dest)
    assert sorted(got) == want  # not the duplicate, nothing else
    assert all(got[p] == (src / p).read_bytes() for p in want)
    # With --path too, both must hold.
    r = run_cli("restore", "--album", "Best #1 / 100%", "--path", "scans", "--to", str(tmp_path / "d2"), "--json")
    assert r.code == 0 and sorted(tree(tmp_path / "d2")) == ["scans/sub/old photo 2.png"]
    # The file list from the blob listing: the album still comes from the table.
    r = run_cli("restore", "--album", "Best #1 / 100%", "--index", "listing", "--to", str(tmp_path / "d3"), "--json")
    assert r.code == 0 and r.json()["index"] == "listing" and sorted(tree(tmp_path / "d3")) == want


# -- timeline and folders ---------------------------------------------------------------------------------
def _item(rel: str, capture: str | None = None, mtime: datetime | None = None) -> Item:
    sha = hashlib.sha256(rel.encode()).hexdigest()
    mtime_ns = int((mtime or datetime(2000, 1, 1, tzinfo=UTC)).timestamp()) * 10**9
    return Item(PREFIX, rel, sha, f"{PREFIX}/{sha[:2]}/{sha}/{rel}", 1, mtime_ns, capture)


def test_timeline_order_months_and_mtime_fallback() -> None:
    items = [
        _item("a.jpg", "2023-05-01T12:34:56"),  # EXIF wall clock, as written
        _item("b.jpg", "2023-05-31T23:30:00+09:00"),  # with its offset: still the local wall clock
        _item("c.mp4", "2023-05-31T23:30:00Z"),  # QuickTime UTC: the viewer's clock (UTC+2 here)
        _item("d.png", mtime=datetime(2023, 4, 30, 23, 0, tzinfo=UTC)),  # no capture date: mtime, flagged
        _item("e.jpg", "garbage", mtime=datetime(2022, 12, 31, 12, 0, tzinfo=UTC)),  # unreadable: mtime
        _item("f.jpg", "2023-05-01T12:34:56"),  # same instant as a.jpg: ordered by path
    ]
    tz = timezone(timedelta(hours=2))
    years = timeline(items, tz)
    assert [y.year for y in years] == [2023, 2022]
    assert [(m.year, m.month, [d.item.relpath for d in m.items]) for y in years for m in y.months] == [
        (2023, 6, ["c.mp4"]),
        (2023, 5, ["b.jpg", "f.jpg", "a.jpg", "d.png"]),  # d.png: April 30 in UTC, May 1 on the viewer's clock
        (2022, 12, ["e.jpg"]),
    ]
    dated = {d.item.relpath: d for y in years for m in y.months for d in m.items}
    assert dated["c.mp4"].when == datetime(2023, 6, 1, 1, 30) and dated["c.mp4"].source == "capture"
    assert dated["b.jpg"].when == datetime(2023, 5, 31, 23, 30)
    assert dated["d.png"].when == datetime(2023, 5, 1, 1, 0) and dated["d.png"].source == "mtime"
    assert dated["e.jpg"].source == "mtime"
    assert (years[0].months[0].by_mtime, years[0].months[1].by_mtime, years[0].count) == (0, 1, 5)
    oldest_first = timeline(items, tz, newest_first=False)
    assert [d.item.relpath for y in oldest_first for m in y.months for d in m.items] == [
        "e.jpg", "d.png", "a.jpg", "f.jpg", "b.jpg", "c.mp4"
    ]  # fmt: skip


def test_taken_ranges() -> None:
    r = TakenRange.parse("2021-07..2021-08-02")
    assert datetime(2021, 7, 1) in r and datetime(2021, 8, 2, 23, 59) in r
    assert datetime(2021, 6, 30, 23, 59) not in r and datetime(2021, 8, 3) not in r
    assert datetime(2024, 12, 31, 23, 59) in TakenRange.parse("2024") and datetime(2025, 1, 1) not in TakenRange.parse(
        "2024"
    )
    assert datetime(1990, 1, 1) in TakenRange.parse("..2023") and datetime(2024, 1, 1) not in TakenRange.parse("..2023")
    assert datetime(2099, 1, 1) in TakenRange.parse("2023-12..")
    for bad in ("..", "2024-13", "2024-02-30", "24", "2024..2023", "yesterday"):
        with pytest.raises(ValueError):
            TakenRange.parse(bad)
    assert run_cli("album", "add", "X", "--taken", "2024-13").code == 2  # argparse: usage error


def test_folders_every_directory_is_an_album() -> None:
    items = [_item(p) for p in ("a/b/c/1.jpg", "a/b/2.jpg", "a/3.jpg", "x/4.jpg", "5.jpg", "a/b/c/6.jpg")]
    tree_ = folders(items)
    assert list(tree_) == ["", "a", "a/b", "a/b/c", "x"]
    assert [(f.path, len(f.items), f.total, f.subfolders) for f in tree_.values()] == [
        ("", 1, 6, ["a", "x"]),
        ("a", 1, 4, ["a/b"]),
        ("a/b", 1, 3, ["a/b/c"]),
        ("a/b/c", 2, 2, []),
        ("x", 1, 1, []),
    ]
    assert [i.relpath for i in tree_["a/b/c"].items] == ["a/b/c/1.jpg", "a/b/c/6.jpg"]


def test_folders_and_timeline_from_the_cli(tmp_path: Path, table: TableClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    code, out, err = album("list", "--folders")
    assert code == 0, err
    assert [(f["path"], f["files"], f["total"]) for f in out["folders"]] == [
        ("", 1, 7), ("2021", 0, 3), ("2021/07 Beach", 2, 2), ("2021/08 Hike", 1, 1), ("2022", 1, 1),
        ("scans", 1, 2), ("scans/sub", 1, 1),
    ]  # fmt: skip
    code, show, _ = album("show", "--folder", "scans")
    assert code == 0 and paths(show) == ["scans/old photo #1.png"]
    assert show["items"][0]["date_source"] == "mtime"
    assert album("show", "--folder", "nowhere")[0] == 2
    code, out, _ = album("list", "--timeline")
    assert code == 0
    months = [(m["year"], m["month"], m["count"], m["dated_by_mtime"]) for m in out["months"]]
    assert months[:3] == [(2022, 5, 1, 0), (2021, 8, 1, 0), (2021, 7, 2, 0)]
    assert sum(m[2] for m in months) == 7 and sum(m[3] for m in months) == 3  # the PNGs and the GIF
    code, show, _ = album("show", "--taken", "2021-07")
    assert paths(show) == ["2021/07 Beach/IMG_1.jpg", "2021/07 Beach/IMG_2.jpg"]
    text = run_cli("album", "show", "--folder", "scans")
    assert "* no capture date" in text.out


# -- the index's other readers are not disturbed -------------------------------------------------------------
def test_album_partitions_are_no_prefix(tmp_path: Path, table: TableClient) -> None:
    library(tmp_path / "src")
    sync(tmp_path / "src", tmp_path / "state")
    store = AlbumStore(table, "testhost")
    items = list(current_items(table, PREFIX))
    for i in range(30):
        a, _ = store.create(f"album {i:02}/ab")
        store.add(a, items[:2])
    calls = 0
    real = table.query_entities

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    table.query_entities = counting  # type: ignore[method-assign]
    assert discover_prefixes(table) == [PREFIX]
    assert calls <= 3  # the prefix, the album partitions in one step, the end
    assert all(not is_reserved_partition(partition_key(PREFIX, s)) for s in ("00", "ff"))
    r = run_cli("verify", "--json")
    assert r.code == 0, r.err
    assert {k: v for k, v in r.json()["counts"].items() if v} == {"ok": 7}


def test_album_names_and_resolution_rules() -> None:
    assert album_name("  e\u0301te\u0301 ") == "\u00e9t\u00e9"
    m = Member(PREFIX, "a" * 64, "p.jpg")
    other_prefix = Member("photos/nas", "a" * 64, "p.jpg")
    item = Item(PREFIX, "p.jpg", "a" * 64, "", 1, 0)
    assert [r.state for r in resolve([m, other_prefix], [item])] == ["current", "gone"]
    # Two copies of the content, one a member itself: a renamed member stands for the other copy.
    copy_a, copy_b = Item(PREFIX, "a.jpg", "b" * 64, "", 1, 0), Item(PREFIX, "z.jpg", "b" * 64, "", 1, 0)
    got = resolve([Member(PREFIX, "b" * 64, "a.jpg"), Member(PREFIX, "b" * 64, "old.jpg")], [copy_a, copy_b])
    assert [(r.state, r.item.relpath if r.item else None) for r in got] == [("current", "a.jpg"), ("moved", "z.jpg")]
