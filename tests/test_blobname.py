"""The blob-name, metadata and content-type contracts, checked against independent references."""

from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync_core.contracts.blobmeta import BlobMeta, build_metadata, parse_metadata
from sync_core.contracts.blobname import (
    QUOTE,
    blob_name,
    check_relpath,
    decode_path,
    encode_path,
    is_name_of,
    parse_blob_name,
)
from sync_core.contracts.mediatypes import content_type, is_media
from sync_core.errors import UnstorableNameError
from sync_core.local.exclude import ExcludeRules


def test_blob_name_matches_hashlib_reference() -> None:
    data = b"holiday photo bytes"
    sha = hashlib.sha256(data).hexdigest()
    assert blob_name("photos/nas", sha, "2024/Beach Day/IMG 0001.JPG") == (
        f"photos/nas/{sha[:2]}/{sha}/2024/Beach Day/IMG 0001.JPG"
    )
    assert parse_blob_name("photos/nas", blob_name("photos/nas", sha, "a/b.jpg")) == (sha, "a/b.jpg")


def test_names_are_not_normalised() -> None:
    sha = "ab" * 32
    nfc = unicodedata.normalize("NFC", "café.jpg")
    nfd = unicodedata.normalize("NFD", "café.jpg")
    assert nfc != nfd
    assert blob_name("p", sha, nfc).endswith(nfc)
    assert blob_name("p", sha, nfd).endswith(nfd)
    assert blob_name("p", sha, "Mixed/CASE.JPG").endswith("Mixed/CASE.JPG")


@pytest.mark.parametrize("bad", ["a/../b.jpg", "./a.jpg", "a//b.jpg", "bad\udcff.jpg"])
def test_paths_no_file_can_have_are_rejected(bad: str) -> None:
    with pytest.raises(UnstorableNameError):
        check_relpath(bad)


SHA = "ab" * 32
# Names a filesystem holds that the service cannot store as they are: each gets an encoded blob name.
HOSTILE = {
    "back\\slash.jpg": "back\u201b\uff3cslash.jpg",
    "dot./x.jpg": "dot\u201b\uff0e/x.jpg",
    "x.jpg.": "x.jpg\u201b\uff0e",
    "tab\there.jpg": "tab\u201b\u2409here.jpg",
    "del\x7f.jpg": "del\u201b\u2421.jpg",
    "c1\x85.jpg": "c1\u201b\u2465.jpg",
    # a literal quote is doubled only where a decoder would misread it
    "q\u201b\uff3c.jpg": "q\u201b\u201b\uff3c.jpg",
    "q\u201b\\.jpg": "q\u201b\u201b\u201b\uff3c.jpg",
    "q\u201b~.jpg": "q\u201b\u201b~.jpg",
}


@pytest.mark.parametrize(("true", "stored"), HOSTILE.items())
def test_unstorable_names_are_encoded_not_refused(true: str, stored: str) -> None:
    name = blob_name("p", SHA, true)
    assert name == f"p/ab/{SHA}/{stored}"
    assert parse_blob_name("p", name) == (SHA, stored)
    assert decode_path(stored) == true
    assert is_name_of("p", name, SHA, true)


@pytest.mark.parametrize(
    "kept",
    ["a/b.jpg", "sp /x.jpg ", "q\u201b.jpg", "q\u201bx\u201b", "lookalike\uff3c\u2409\uff0e.jpg", "\u201b/\u201b"],
)
def test_storable_names_are_unchanged(kept: str) -> None:
    assert blob_name("p", SHA, kept) == f"p/ab/{SHA}/{kept}"


def test_too_long_name_is_shortened_with_a_hash_of_the_true_path() -> None:
    long_a, long_b = "d/" * 500 + "a.jpg", "d/" * 500 + "b.jpg"
    name_a, name_b = blob_name("p", SHA, long_a), blob_name("p", SHA, long_b)
    assert len(name_a.encode("utf-16-le")) // 2 <= 1024
    assert name_a != name_b
    _, stored = parse_blob_name("p", name_a)
    assert decode_path(stored) is None  # not invertible: the true name lives in the metadata
    assert stored.endswith(QUOTE + "~" + hashlib.sha256(long_a.encode()).hexdigest()[:32])
    assert is_name_of("p", name_a, SHA, long_a) and not is_name_of("p", name_a, SHA, long_b)
    emoji = "\U0001f4f7" * 600 + ".jpg"  # 1,204 code points but 2,404 UTF-16 units, as the service counts
    assert len(blob_name("p", SHA, emoji).encode("utf-16-le")) // 2 <= 1024


_paths = st.lists(
    st.text(
        st.sampled_from(
            [
                "a",
                ".",
                " ",
                "\\",
                "\t",
                "\x7f",
                "\x9f",
                "\ufffe",
                QUOTE,
                "~",
                "\uff3c",
                "\u2409",
                "\uff0e",
                "é",
                "\U0001f4f7",
            ]
        ),
        min_size=1,
        max_size=12,
    ).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=4,
).map("/".join)


@settings(max_examples=800, deadline=None)
@given(_paths)
def test_encoding_round_trips_and_stays_storable(rel: str) -> None:
    stored = encode_path(rel)
    assert decode_path(stored) == rel
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff\\]", stored)
    assert not any(seg.endswith(".") for seg in stored.split("/"))
    assert stored.count("/") == rel.count("/")


@settings(max_examples=500, deadline=None)
@given(_paths, _paths)
def test_encoding_is_injective(a: str, b: str) -> None:
    if a != b:
        assert encode_path(a) != encode_path(b)


@settings(max_examples=500, deadline=None)
@given(_paths.map(lambda p: p * 40))
def test_shortened_names_fit_and_differ(rel: str) -> None:
    name = blob_name("photos/nas", SHA, rel)
    assert len(name.encode("utf-16-le")) // 2 <= 1024
    assert blob_name("photos/nas", SHA, rel + "x") != name


def test_metadata_round_trip_is_ascii() -> None:
    meta = BlobMeta("cd" * 32, "Ålbum/über #1?&+%.heic", 123, 1_700_000_000_123_456_789, "nas-1")
    md = build_metadata(meta)
    for k, v in md.items():
        assert k.isidentifier()
        assert v.isascii()
    assert parse_metadata(md) == meta
    assert parse_metadata({k.upper(): v for k, v in md.items()}) == meta  # keys are case-insensitive
    assert parse_metadata({"sha256": "x"}) is None


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("a.HEIC", "image/heic"),
        ("a.heif", "image/heif"),
        ("a.avif", "image/avif"),
        ("a.webp", "image/webp"),
        ("a.JPG", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.gif", "image/gif"),
        ("a.tif", "image/tiff"),
        ("a.dng", "image/x-adobe-dng"),
        ("a.CR2", "image/x-canon-cr2"),
        ("a.cr3", "image/x-canon-cr3"),
        ("a.nef", "image/x-nikon-nef"),
        ("a.arw", "image/x-sony-arw"),
        ("a.orf", "image/x-olympus-orf"),
        ("a.rw2", "image/x-panasonic-rw2"),
        ("a.MOV", "video/quicktime"),
        ("a.mp4", "video/mp4"),
        ("a.m4v", "video/x-m4v"),
        ("a.3gp", "video/3gpp"),
        ("a.avi", "video/x-msvideo"),
        ("a.mkv", "video/x-matroska"),
        ("a.MTS", "video/mp2t"),
    ],
)
def test_content_types(name: str, ctype: str) -> None:
    assert is_media(name)
    assert content_type(name) == ctype


def test_exclude_rules() -> None:
    rules = ExcludeRules()
    assert rules.skip_file(".DS_Store", ".DS_Store")
    assert rules.skip_file("Thumbs.db", "a/Thumbs.db")
    assert rules.skip_file("video.mp4.part", "video.mp4.part")
    assert rules.skip_file("x.jpg.crdownload", "x.jpg.crdownload")
    assert rules.skip_file("notes.txt", "notes.txt")
    assert not rules.skip_file("IMG.JPG", "IMG.JPG")
    assert rules.skip_dir("@eaDir", "a/@eaDir")
    assert rules.skip_dir(".thumbnails", ".thumbnails")
    assert rules.skip_dir(".hidden", ".hidden")
    assert not ExcludeRules(all_files=True).skip_file("notes.txt", "notes.txt")
    globbed = ExcludeRules(globs=("raw/*", "*.png"))
    assert globbed.skip_file("a.png", "x/a.png")
    assert globbed.skip_file("a.jpg", "raw/a.jpg")
    assert not globbed.skip_file("a.jpg", "x/a.jpg")
