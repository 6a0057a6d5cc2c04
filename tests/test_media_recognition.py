"""No photo is silently left out: media are recognised by extension and by content, and every file the rules
skip is counted, by reason and extension, in the summary, ``--json`` and ``status``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from sync_core.contracts.blobmeta import parse_metadata
from sync_core.contracts.mediatypes import SNIFF_BYTES, content_type, is_media, sniff
from sync_core.local.exclude import ExcludeRules
from sync_core.local.scanner import ScanResult, scan
from tests.conftest import det_bytes, run_cli, write_file
from tests.media_corpus import VIDEO_CODECS, heif, still, video

VIDEO_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "3gp": "video/3gpp", "matroska": "video/x-matroska",
               "webm": "video/webm", "avi": "video/x-msvideo", "asf": "video/x-ms-wmv", "mpegts": "video/mp2t",
               "mpeg": "video/mpeg"}  # fmt: skip
STILL_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
               "TIFF": "image/tiff", "WEBP": "image/webp", "BMP": "image/bmp", "AVIF": "image/avif"}  # fmt: skip
# Headers of formats no library here writes, as the cameras write them (first bytes per the format specs).
RAW_HEADERS = {
    b"II\x1a\x00\x00\x00HEAPCCDR": "image/x-canon-crw",
    b"FUJIFILMCCD-RAW 0201FF383501": "image/x-fuji-raf",
    b"FOVb\x00\x00\x02\x00": "image/x-sigma-x3f",
    b"\x00MRM\x00\x00\x00\x00": "image/x-minolta-mrw",
    b"IIRO\x08\x00\x00\x00": "image/x-olympus-orf",
    b"IIU\x00\x08\x00\x00\x00": "image/x-panasonic-rw2",
    b"II*\x00\x10\x00\x00\x00CR\x02\x00": "image/x-canon-cr2",
    b"MM\x00*\x00\x00\x00\x08": "image/tiff",  # DNG, NEF, ARW, PEF, SRW, 3FR, ERF, IIQ are TIFF inside
    bytes.fromhex("0000000c4a584c200d0a870a"): "image/jxl",
    b"\xff\x0a\xfa\x7f": "image/jxl",
    b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01": "image/x-canon-cr3",
    b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00": "image/heic",
    b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00": "image/heif",
}


@pytest.mark.parametrize("fmt", STILL_TYPES)
def test_stills_are_recognised_by_content(fmt: str) -> None:
    assert sniff(still(fmt)[:SNIFF_BYTES]) == STILL_TYPES[fmt]


@pytest.mark.parametrize("fmt", VIDEO_CODECS)
def test_videos_are_recognised_by_content(fmt: str) -> None:
    assert sniff(video(fmt)[:SNIFF_BYTES]) == VIDEO_TYPES[fmt]


@pytest.mark.parametrize(("head", "ctype"), RAW_HEADERS.items())
def test_raw_and_other_headers(head: bytes, ctype: str) -> None:
    assert sniff(head + bytes(SNIFF_BYTES)) == ctype


def test_heif_from_libheif_and_with_the_sony_canon_brand() -> None:
    assert sniff(heif()[:SNIFF_BYTES]) == "image/heic"
    assert sniff(heif(brand=b"heix")[:SNIFF_BYTES]) == "image/heic"


@pytest.mark.parametrize("data", [b"", b"plain text, nothing more\n" * 30, det_bytes(1, 600), b"GIF", b"\xff\xd8"])
def test_other_bytes_are_not_media(data: bytes) -> None:
    assert sniff(data[:SNIFF_BYTES]) is None


@pytest.mark.parametrize(
    ("name", "ctype"),
    [("a.mpo", "image/x-mpo"), ("a.JXL", "image/jxl"), ("a.hif", "image/heif"), ("a.crw", "image/x-canon-crw"),
     ("a.raf", "image/x-fuji-raf"), ("a.iiq", "image/x-phaseone-iiq"), ("a.x3f", "image/x-sigma-x3f"),
     ("a.3fr", "image/x-hasselblad-3fr"), ("a.erf", "image/x-epson-erf"), ("a.mrw", "image/x-minolta-mrw"),
     ("a.pef", "image/x-pentax-pef"), ("a.srw", "image/x-samsung-srw"), ("a.nrw", "image/x-nikon-nrw"),
     ("a.orf", "image/x-olympus-orf"), ("a.rw2", "image/x-panasonic-rw2"), ("a.arw", "image/x-sony-arw"),
     ("a.dng", "image/x-adobe-dng"), ("a.MTS", "video/mp2t"), ("a.m2ts", "video/mp2t"), ("a.wmv", "video/x-ms-wmv"),
     ("a.avi", "video/x-msvideo"), ("a.mkv", "video/x-matroska"), ("a.webm", "video/webm"), ("a.3gp", "video/3gpp"),
     ("a.mod", "video/mpeg")],
)  # fmt: skip
def test_extensions_people_have(name: str, ctype: str) -> None:
    assert is_media(name)
    assert content_type(name) == ctype


# A library as people have it: media under names the extension table does not know, and things to leave out.
def _library(src: Path) -> dict[str, str]:
    """Writes the files; returns the media among them -> the Content-Type each must be stored with."""
    media = {
        "3d/DSCF0001.MPO": (still("MPO", 1), "image/x-mpo"),
        "3d/HNI_0001.mpo": (still("MPO", 2), "image/x-mpo"),
        "no extension/IMG_0001": (still("JPEG", 3), "image/jpeg"),
        "renamed/holiday.jpg.bak": (still("JPEG", 4), "image/jpeg"),
        "renamed/scan.001": (still("TIFF", 5), "image/tiff"),
        "phone/clip.video": (video("mp4", 6), "video/mp4"),
        "camcorder/00001.ts": (video("mpegts", 7), "video/mp2t"),
        "old/clip.dat": (video("asf", 8), "video/x-ms-wmv"),
        "sony/DSC0001.HIF": (heif(9, brand=b"heix"), "image/heif"),
    }
    other = {
        "code/app.ts": b"export const x: number = 1;\n",  # TypeScript, not MPEG-TS
        "notes.txt": still("JPEG", 10),  # a known non-media extension is not read
        "misc/data.bin": det_bytes(11, 700),
        "misc/README": b"hello\n",
        ".hidden.jpg": still("JPEG", 12),
        "2021/Thumbs.db": b"junk",
        "2021/video.mp4.part": b"partial",
        ".git/config": b"[core]",
        "@eaDir/thumb.jpg": still("JPEG", 13),
    }
    for rel, (data, _) in media.items():
        write_file(src, rel, data)
    for rel, data in other.items():
        write_file(src, rel, data)
    return {rel: ctype for rel, (_, ctype) in media.items()}


LEFT_OUT = {
    "not a photo or video": {".ts": 1, ".txt": 1, ".bin": 1, "(none)": 1},
    "hidden": {".jpg": 1, "(folder)": 1},
    "system or thumbnail file": {".db": 1, "(folder)": 1},
    "partial download": {".part": 1},
}


def test_scanner_counts_what_it_leaves_out(tmp_path: Path) -> None:
    media = _library(tmp_path)
    result = ScanResult()
    assert sorted(e.relpath for e in scan(str(tmp_path), ExcludeRules(), result)) == sorted(media)
    assert result.left_out == LEFT_OUT
    assert result.left_out_total == 9


def test_a_fifo_with_an_unknown_extension_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    write_file(tmp_path, "a.jpg", b"x")
    result = ScanResult()
    assert [e.relpath for e in scan(str(tmp_path), ExcludeRules(), result)] == ["a.jpg"]
    assert "FIFO" in result.problems[0].reason


def test_sync_backs_up_media_by_content_and_reports_every_left_out_file(
    tmp_path: Path, container: ContainerClient
) -> None:
    src, state = tmp_path / "src", tmp_path / "state"
    media = _library(src)
    r = run_cli("sync", "--source", str(src), "--state-dir", str(state), "--json")
    assert r.code == 0, r.err
    s = r.json()
    assert (s["uploaded"], s["failed"]) == (len(media), 0)
    assert s["skipped"] == 9 and s["left_out"] == LEFT_OUT

    stored = {}
    for b in container.list_blobs(include=["metadata"]):
        stored[parse_metadata(b.metadata).relpath] = container.get_blob_client(b.name).get_blob_properties()
    assert {rel: p.content_settings.content_type for rel, p in stored.items()} == media

    human = run_cli("sync", "--source", str(src), "--state-dir", str(state))
    assert human.code == 0, human.err
    assert "skipped 9" in human.out
    assert "not a photo or video 4 (" in human.out and ".ts 1" in human.out and "hidden 2" in human.out

    st = run_cli("status", "--state-dir", str(state), "--local", "--json")
    last = st.json()["last_sync"]
    assert (last["skipped"], last["left_out"]) == (9, LEFT_OUT)
    text = run_cli("status", "--state-dir", str(state), "--local")
    assert "skipped 9" in text.out and "partial download 1 (.part 1)" in text.out
