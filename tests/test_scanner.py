"""The scan's entries: the path each opens, and what a first sync of a large library holds per file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync_core.local.exclude import ExcludeRules
from sync_core.local.scanner import ScanResult, scan


@pytest.mark.parametrize("trailing", ["", "/"])
def test_each_entry_opens_its_own_file_and_a_folder_shares_one_path_string(tmp_path: Path, trailing: str) -> None:
    names = ["a.jpg", "b.jpg", "sub/c.jpg", "sub/deeper/d.jpg", os.fsdecode(b"\xff odd.jpg")]
    for i, rel in enumerate(names):
        p = tmp_path / "lib" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bytes([i]) * (i + 1))
    root = str(tmp_path / "lib") + trailing
    entries = list(scan(root, ExcludeRules(), ScanResult()))
    assert sorted(e.relpath for e in entries) == sorted(names)
    for e in entries:
        assert e.path == os.path.join(str(tmp_path / "lib"), *e.relpath.split("/"))
        with open(e.path, "rb") as f:
            assert len(f.read()) == e.size
    top = [e for e in entries if "/" not in e.relpath]
    assert all(e.dirpath is top[0].dirpath for e in top)  # one string per folder, not one per file
    assert all(e.dev is entries[0].dev for e in entries)  # one int per device
