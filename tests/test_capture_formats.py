"""Capture date and camera from every format that carries them, with the time zone and sub-seconds the file
records, and no implausible date. Each file is written by the format's own library (libheif, FFmpeg, Pillow)
or laid out as the camera does; every expected value below is what exiftool 12.57 reads from the same file."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync_core.local.capture import Capture, quicktime_capture, read_capture
from tests.conftest import write_file
from tests.media_corpus import cr3, exif, heif, raf, still, video, x3f

SONY = Capture("2021-07-14T09:30:05.641-05:00", "DSC-RX100M7")
TOMORROW_PLUS = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y:%m:%d %H:%M:%S")

CASES = {
    # HEIF: the container's own EXIF item, whatever the brand (libheif writes 'heic'; Sony and Canon 'heix')
    "sony/DSC00001.HEIC": (heif(exif_data=exif(offset="-05:00", subsec="641")), SONY),
    "sony/DSC00002.HIF": (heif(exif_data=exif(offset="-05:00", subsec="641"), brand=b"heix"), SONY),
    "canon/IMG_0001.HIF": (heif(exif_data=exif(model="Canon EOS R6", offset="+09:00"), brand=b"heix"),
                           Capture("2021-07-14T09:30:05+09:00", "Canon EOS R6")),
    # RAW formats outside the TIFF family
    "canon/IMG_0002.CR3": (cr3(), Capture("2022-11-05T14:03:22+01:00", "Canon EOS R5")),
    "fuji/DSCF0001.RAF": (raf(exif_data=exif(model="X-T3", offset="+09:00", subsec="12")),
                          Capture("2021-07-14T09:30:05.12+09:00", "X-T3")),
    "sigma/SDIM0001.X3F": (x3f(), Capture("2014-05-13T16:53:20", "SIGMA DP2 Merrill")),
    # video: QuickTime user data (UserData:Model), Apple's local creation date with its offset
    "cam/00001.MOV": (video("mov", metadata={"model": "HDR-CX405", "creation_time": "2021-07-14T07:30:05Z"}),
                      Capture("2021-07-14T07:30:05Z", "HDR-CX405")),
    "cam/00002.mp4": (video("mov", metadata={"model": "HDR-CX405", "creation_time": "2021-07-14T07:30:05Z"}),
                      Capture("2021-07-14T07:30:05Z", "HDR-CX405")),
    "phone/IMG_0003.MOV": (video("mov", metadata={"com.apple.quicktime.creationdate": "2021-07-14T09:30:05+0200",
                                                  "com.apple.quicktime.model": "iPhone 12",
                                                  "creation_time": "2021-07-14T07:30:05Z"}, mdta=True),
                           Capture("2021-07-14T09:30:05+02:00", "iPhone 12")),
    # EXIF: sub-seconds, 'Z', MPO, a JPEG recognised by its content
    "a/subsec.jpg": (still("JPEG", 1, exif(subsec="007", offset="+05:30")),
                     Capture("2021-07-14T09:30:05.007+05:30", "DSC-RX100M7")),
    "a/exif.webp": (still("WEBP", 8, exif(offset="+01:00")), Capture("2021-07-14T09:30:05+01:00", "DSC-RX100M7")),
    "a/exif.avif": (still("AVIF", 9, exif(offset="+01:00")), Capture("2021-07-14T09:30:05+01:00", "DSC-RX100M7")),
    "a/utc.jpg": (still("JPEG", 2, exif(offset="Z")), Capture("2021-07-14T09:30:05Z", "DSC-RX100M7")),
    "3d/DSCF0002.MPO": (still("MPO", 3, exif(model="FinePix REAL 3D W3")),
                        Capture("2021-07-14T09:30:05", "FinePix REAL 3D W3")),
    "no extension/IMG_0004": (still("JPEG", 4, exif()), Capture("2021-07-14T09:30:05", "DSC-RX100M7")),
    # implausible clocks are not capture dates
    "bad/1800.jpg": (still("JPEG", 5, exif(taken="1800:01:01 00:00:00")), Capture(None, "DSC-RX100M7")),
    "bad/future.jpg": (still("JPEG", 6, exif(taken=TOMORROW_PLUS)), Capture(None, "DSC-RX100M7")),
    "bad/1826.jpg": (still("JPEG", 7, exif(taken="1826:06:01 12:00:00")),
                     Capture("1826-06-01T12:00:00", "DSC-RX100M7")),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_capture_from_every_format(tmp_path: Path, name: str) -> None:
    data, expected = CASES[name]
    p = write_file(tmp_path, name, data)
    assert read_capture(str(p), data) == expected  # bytes in memory (small files)
    assert read_capture(str(p)) == expected  # read from disk (large files)


def test_a_video_with_an_implausible_local_date_falls_back_to_mvhd() -> None:
    data = video("mov", metadata={"com.apple.quicktime.creationdate": "1700-01-01T00:00:00+0100",
                                  "creation_time": "2021-07-14T07:30:05Z"}, mdta=True)  # fmt: skip
    assert quicktime_capture(io.BytesIO(data)).time == "2021-07-14T07:30:05Z"
