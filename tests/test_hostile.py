"""Hostile input: strange names, links, special files, unreadable files and folders, read-only sources,
unusable state dirs, and files that change while being sent. Each is handled or reported; none crashes the
run; nothing already recorded is lost."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import unicodedata
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient

from agent.emulator import Azurite
from sync_core.contracts.blobname import blob_name
from sync_core.local.state import StateDB
from sync_core.storage.clients import blob_service, open_container
from sync_core.sync.pipeline import SyncEngine, SyncOptions
from sync_core.sync.progress import FileOutcome, Kind, NullProgress

from .conftest import det_bytes, run_cli, write_file
from .faultproxy import FaultPlan, FaultProxy, Request
from .test_faults import proxied_connection_string

MiB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]


class Recorder(NullProgress):
    def __init__(self) -> None:
        self.outcomes: dict[str, FileOutcome] = {}

    def file_done(self, outcome: FileOutcome) -> None:
        self.outcomes[outcome.relpath] = outcome


def content_matches_names(container: ContainerClient) -> list[str]:
    """Every blob's bytes hash to the SHA-256 in its name; returns the names checked."""
    names = []
    for b in container.list_blobs():
        sha = next(seg for seg in b.name.split("/") if len(seg) == 64)
        got = container.get_blob_client(b.name).download_blob().readall()
        assert hashlib.sha256(got).hexdigest() == sha, f"{b.name} holds other bytes than its name promises"
        names.append(b.name)
    return names


def indexed(state_dir: Path) -> dict[str, str]:
    with sqlite3.connect(state_dir / "index.db") as db:
        return dict(db.execute("SELECT relpath, sha256 FROM files"))


# -- files that change under us --------------------------------------------------------------------------
def test_large_file_modified_while_its_blocks_are_sent_is_not_recorded(azurite: Azurite, cfg, container, tmp_path):
    import dataclasses

    src = tmp_path / "lib"
    old = det_bytes(5, 10 * MiB)
    path = write_file(src, "video/growing.MOV", old)
    write_file(src, "ok.jpg", b"fine")

    def is_block(r: Request) -> bool:
        return r.method == "PUT" and r.comp == "block"

    with FaultProxy(azurite.blob_port, FaultPlan(delay=1.0, delay_seconds=0.5, only=is_block)) as proxy:

        def modify_after_first_block() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if any(is_block(e.request) and e.status == 201 for e in proxy.exchanges()):
                    with open(path, "r+b") as f:  # an editor saving in place, mid-upload
                        f.seek(9 * MiB)
                        f.write(b"\xff" * 4096)
                    return
                time.sleep(0.005)

        pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
        state = StateDB(tmp_path / "state")
        rec = Recorder()
        writer = threading.Thread(target=modify_after_first_block)
        writer.start()
        try:
            opts = SyncOptions(source=src, max_workers=2, block_size=2 * MiB, small_file_max=1 * MiB)
            s = SyncEngine(pcfg, state, open_container(blob_service(pcfg), pcfg), opts, rec).run()
        finally:
            writer.join()
            state.close()

    o = rec.outcomes["video/growing.MOV"]
    assert o.kind == Kind.SKIPPED and "changed" in o.detail
    assert s.failed == 0
    assert "video/growing.MOV" not in indexed(tmp_path / "state")  # not recorded as done
    assert "ok.jpg" in indexed(tmp_path / "state")
    content_matches_names(container)  # no blob holds bytes other than its name promises

    # The next run backs up the new content.
    state = StateDB(tmp_path / "state")
    try:
        opts = SyncOptions(source=src, block_size=2 * MiB, small_file_max=1 * MiB)
        s2 = SyncEngine(cfg, state, open_container(blob_service(cfg), cfg), opts).run()
    finally:
        state.close()
    assert s2.uploaded == 1
    new_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert indexed(tmp_path / "state")["video/growing.MOV"] == new_sha
    assert any(new_sha in n for n in content_matches_names(container))


# -- strange names, links, special files -------------------------------------------------------------------
def _deep_dir(root: Path, depth: int, seg: str) -> None:
    """Create a chain of folders whose full path is longer than PATH_MAX, one ``dir_fd`` hop at a time."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir(seg, dir_fd=fd)
            nfd = os.open(seg, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"deep")
    finally:
        os.close(fd)


def build_hostile_library(src: Path) -> dict[str, bytes]:
    """A library with every kind of trouble next to ordinary files; returns the files that must be stored."""
    good = {
        "ok.jpg": b"ordinary",
        unicodedata.normalize("NFC", "café.jpg"): b"nfc bytes",
        unicodedata.normalize("NFD", "café.jpg"): b"nfd bytes",  # a different file with a look-alike name
        "deep/" + "d" * 200 + "/" + "e" * 60 + ".jpg": b"long but storable",
        "/".join(["x" * 250] * 4) + "/too-long.jpg": b"blob name over 1024",  # stored under a shortened name
    }
    for rel, data in good.items():
        write_file(src, rel, data)
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9t\xe9.jpg"), "wb") as f:
        f.write(b"not utf-8 name")
    _deep_dir(src, 20, "p" * 220)  # a folder path over PATH_MAX (4096 bytes)
    os.symlink(".", src / "loop")
    os.symlink(src / "b-link", src / "a-link")
    os.symlink(src / "a-link", src / "b-link")
    os.symlink("/etc/passwd", src / "escape.jpg")
    os.symlink("/etc", src / "outside")
    os.symlink("../../..", src / "deep" / "up")
    os.mkfifo(src / "pipe.jpg")
    if os.geteuid() == 0:
        os.mknod(src / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    return good


def test_strange_names_links_and_special_files_are_reported_not_fatal(storage_env, container, tmp_path):
    src = tmp_path / "lib"
    good = build_hostile_library(src)
    state = tmp_path / "state"
    r = run_cli("--source", str(src), "--state-dir", str(state), "--json", "--verbose")
    assert r.code == 1, r.err  # some files failed; the rest were backed up
    assert "internal error" not in r.err and "Traceback" not in r.err
    s = r.json()
    failed = {f["path"]: f["error"] for f in s["failures"]}
    assert "not valid UTF-8" in failed[os.fsdecode(b"latin1-\xe9t\xe9.jpg")]
    assert not any(p.endswith("too-long.jpg") for p in failed)
    assert any("File name too long" in e for e in failed.values())  # the folder deeper than PATH_MAX
    for link in ("loop", "a-link", "b-link", "escape.jpg", "outside", "deep/up"):
        assert f"skipped      {link} (symlink not followed)" in r.err
    assert "pipe.jpg (not a regular file" in r.err
    assert s["uploaded"] == len(good)

    names = sorted(b.name for b in container.list_blobs())
    prefix = "/".join(names[0].split("/", 2)[:2])
    expected = sorted(blob_name(prefix, hashlib.sha256(d).hexdigest(), rel) for rel, d in good.items())
    assert names == expected  # exact names: NFC and NFD both kept
    content_matches_names(container)
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert not any(passwd in n for n in names)  # nothing from outside the source
    assert indexed(state).keys() == good.keys()

    again = run_cli("--source", str(src), "--state-dir", str(state), "--json")
    assert again.code == 1 and again.json()["uploaded"] == 0 and again.json()["deleted"] == 0
    assert indexed(state).keys() == good.keys()  # nothing recorded is lost


# -- unreadable files and folders, read-only source, unusable state dir -----------------------------------
def as_unprivileged() -> list[str]:
    """A command prefix that makes the agent subject to file permissions: as root, drop the capabilities
    that bypass them (CAP_DAC_*); the interpreter under /root stays reachable, unlike with another uid."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root without util-linux setpriv: cannot drop CAP_DAC_OVERRIDE")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search"]


def agent(*args: str, preexec_fn=None) -> subprocess.CompletedProcess[str]:
    cmd = [*as_unprivileged(), sys.executable, "-m", "agent.cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=dict(os.environ), capture_output=True, text=True, preexec_fn=preexec_fn)


def make_read_only(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            os.chmod(p, os.stat(p).st_mode & 0o555)
        os.chmod(dirpath, os.stat(dirpath).st_mode & 0o555)


def test_unreadable_files_and_folders_in_a_read_only_source(storage_env, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "a.jpg", b"a")
    write_file(src, "private/p1.jpg", b"p1")
    write_file(src, "private/sub/p2.jpg", b"p2")
    state = tmp_path / "state"
    assert run_cli("--source", str(src), "--state-dir", str(state), "--create-container").code == 0
    write_file(src, "locked.jpg", b"cannot open me")
    write_file(src, "new.jpg", b"new and readable")
    (src / "locked.jpg").chmod(0)
    (src / "private").chmod(0)
    make_read_only(src)
    try:
        r = agent("--source", str(src), "--state-dir", str(state), "--json")
    finally:
        (src / "private").chmod(0o755)
        (src / "locked.jpg").chmod(0o644)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    s = json.loads(r.stdout)
    failed = {f["path"]: f["error"] for f in s["failures"]}
    assert failed == {
        "private": "cannot read folder: Permission denied",
        "locked.jpg": "cannot read: Permission denied",
    }
    assert s["uploaded"] == 1 and s["deleted"] == 0  # the read-only source is no obstacle
    rows = indexed(state)
    assert {"private/p1.jpg", "private/sub/p2.jpg", "a.jpg", "new.jpg"} <= rows.keys()  # nothing lost
    with sqlite3.connect(state / "index.db") as db:
        assert db.execute("SELECT count(*) FROM blobs WHERE is_current = 0").fetchone()[0] == 0


def test_read_only_state_dir_is_a_clear_error(storage_env, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "a.jpg", b"a")
    state = tmp_path / "state"
    assert run_cli("--source", str(src), "--state-dir", str(state), "--create-container").code == 0
    write_file(src, "b.jpg", b"b")
    before = indexed(state)
    make_read_only(state)
    try:
        r = agent("--source", str(src), "--state-dir", str(state))
    finally:
        for p in [state, *state.iterdir()]:
            p.chmod(0o700 if p.is_dir() else 0o600)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "state dir" in lines[0] and "Permission denied" in lines[0]
    assert indexed(state) == before


def test_full_state_dir_stops_cleanly_and_keeps_what_was_recorded(storage_env, container, tmp_path):
    src = tmp_path / "lib"
    write_file(src, "first.jpg", b"first")
    state = tmp_path / "state"
    assert run_cli("--source", str(src), "--state-dir", str(state), "--create-container").code == 0
    for i in range(400):
        write_file(src, f"more/{i:03d}.jpg", det_bytes(i, 100))
    limit = (state / "index.db").stat().st_size

    def disk_full() -> None:  # no file of this process may grow past the database's current size
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = agent("--source", str(src), "--state-dir", str(state), preexec_fn=disk_full)
    assert r.returncode == 2, r.stderr
    assert "cannot write the index in state dir" in r.stderr and "Traceback" not in r.stderr
    assert "first.jpg" in indexed(state)  # the earlier record survived

    r2 = run_cli("--source", str(src), "--state-dir", str(state), "--json")
    assert r2.code == 0, r2.err
    assert len(indexed(state)) == 401
    assert sorted(b.name for b in container.list_blobs()) == sorted(
        f"photos/testhost/{sha[:2]}/{sha}/{rel}" for rel, sha in indexed(state).items()
    )  # blobs sent by the stopped run were adopted, none twice, none unknown


def test_small_file_modified_while_it_is_sent_is_kept_as_history_only(azurite, cfg, container, tmp_path):
    """A small file is read once into memory, so the blob holds exactly the hashed bytes; the file changed
    meanwhile, so it is not the current version: kept as history, not recorded as done."""
    import dataclasses

    src = tmp_path / "lib"
    path = write_file(src, "edit.jpg", b"version one")

    def is_put(r: Request) -> bool:
        return r.method == "PUT" and not r.comp

    with FaultProxy(azurite.blob_port, FaultPlan(delay=1.0, delay_seconds=1.5, only=is_put)) as proxy:
        pcfg = dataclasses.replace(cfg, connection_string=proxied_connection_string(azurite, proxy))
        rec = Recorder()

        # Every upload is held 1.5 s by the proxy: the edit lands while the bytes are on their way.
        def edit_during_put() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(is_put(r) for r in proxy.arrived()):
                time.sleep(0.002)
            path.write_bytes(b"version two, longer")

        editor = threading.Thread(target=edit_during_put)
        editor.start()
        state = StateDB(tmp_path / "state")
        try:
            SyncEngine(pcfg, state, open_container(blob_service(pcfg), pcfg), SyncOptions(source=src), rec).run()
        finally:
            editor.join()
            state.close()

    o = rec.outcomes["edit.jpg"]
    assert o.kind == Kind.SKIPPED and "changed while being uploaded" in o.detail
    assert "edit.jpg" not in indexed(tmp_path / "state")
    with sqlite3.connect(tmp_path / "state" / "index.db") as db:
        assert db.execute("SELECT is_current FROM blobs WHERE relpath = 'edit.jpg'").fetchall() == [(0,)]
    assert [n.split("/")[-1] for n in content_matches_names(container)] == ["edit.jpg"]  # v1, intact
