"""The blob-name, metadata and content-type contracts, checked against independent references."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from sync_core.blobmeta import BlobMeta, build_metadata, parse_metadata
from sync_core.blobname import blob_name, check_relpath, parse_blob_name
from sync_core.errors import UnstorableNameError
from sync_core.exclude import ExcludeRules
from sync_core.mediatypes import content_type, is_media


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


@pytest.mark.parametrize(
    "bad",
    ["a/../b.jpg", "./a.jpg", "a//b.jpg", "tab\there.jpg", "back\\slash.jpg", "dot./x.jpg", "bad\udcff.jpg"],
)
def test_unstorable_names_are_rejected_not_altered(bad: str) -> None:
    with pytest.raises(UnstorableNameError):
        check_relpath(bad)


def test_too_long_name_is_rejected() -> None:
    with pytest.raises(UnstorableNameError, match="1024"):
        blob_name("p", "ab" * 32, "d/" * 500 + "x.jpg")


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
