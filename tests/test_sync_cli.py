"""The command line as a user and a scheduler see it: the seed's commands, errors and exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from .conftest import det_bytes, run_cli, write_file

CLI = str(Path(sys.executable).with_name("azphotosync"))


@pytest.fixture
def library(tmp_path: Path) -> Path:
    src = tmp_path / "Pictures"
    write_file(src, "2024/a.jpg", det_bytes(1, 2000))
    write_file(src, "2024/b.mov", det_bytes(2, 3000))
    return src


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_seed_commands_verbatim(storage_env, container, library, tmp_path):
    state = tmp_path / "state"
    dry = run_cli("--source", str(library), "--dry-run", "--verbose", "--state-dir", str(state))
    assert dry.code == 0, dry.err
    assert "would upload 2 file(s)" in dry.out
    assert "would_upload" in dry.err and "2024/a.jpg" in dry.err
    assert list(container.list_blobs()) == []

    real = run_cli("--source", str(library), "--state-dir", str(state), "--max-workers", "8")
    assert real.code == 0, real.err
    assert "uploaded 2" in real.out
    assert len(list(container.list_blobs())) == 2

    again = run_cli("--source", str(library), "--state-dir", str(state), "--json")
    assert again.code == 0
    summary = again.json()
    assert (summary["uploaded"], summary["unchanged"], summary["exit_code"]) == (0, 2, 0)


def test_console_script_and_help_document_exit_codes(tmp_path):
    helped = subprocess.run([CLI, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    assert "exit codes" in helped.stdout and "130" in helped.stdout
    missing = subprocess.run([CLI, "--source", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "does not exist" in one_line_error(missing.stderr)


def test_missing_and_non_directory_source(storage_env, tmp_path):
    r = run_cli("--source", str(tmp_path / "missing"), "--state-dir", str(tmp_path / "s"))
    assert r.code == 2 and "does not exist" in one_line_error(r.err)
    f = write_file(tmp_path, "file.jpg", b"x")
    r = run_cli("--source", str(f), "--state-dir", str(tmp_path / "s"))
    assert r.code == 2 and "not a folder" in one_line_error(r.err)


def test_invalid_container_name(storage_env, library, tmp_path):
    r = run_cli("--source", str(library), "--state-dir", str(tmp_path / "s"), "--container", "Bad_Name")
    assert r.code == 2
    assert "invalid container name 'Bad_Name'" in one_line_error(r.err)


def test_missing_container_then_create_container(storage_env, azurite, library, tmp_path):
    name = storage_env["AZURE_STORAGE_CONTAINER"]
    r = run_cli("--source", str(library), "--state-dir", str(tmp_path / "s"))
    line = one_line_error(r.err)
    assert r.code == 2 and name in line and "--create-container" in line

    for _ in range(2):  # creating is harmless when it exists
        r = run_cli("--source", str(library), "--state-dir", str(tmp_path / "s"), "--create-container")
        assert r.code == 0, r.err
    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert len(list(svc.get_container_client(name).list_blobs())) == 2


def test_no_credentials(monkeypatch, library, tmp_path):
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL"):
        monkeypatch.delenv(var, raising=False)
    r = run_cli("--source", str(library), "--state-dir", str(tmp_path / "s"))
    line = one_line_error(r.err)
    assert r.code == 2
    for needle in ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_CONNECTION_STRING", "az login"):
        assert needle in line


def test_unwritable_state_dir(storage_env, container, library, tmp_path):
    blocker = write_file(tmp_path, "not-a-dir", b"x")
    r = run_cli("--source", str(library), "--state-dir", str(blocker / "state"))
    assert r.code == 2
    assert "state dir" in one_line_error(r.err)
    assert list(container.list_blobs()) == []


def test_traceback_only_with_verbose(storage_env, tmp_path):
    quiet = run_cli("--source", str(tmp_path / "missing"))
    assert "Traceback" not in quiet.err
    loud = run_cli("--source", str(tmp_path / "missing"), "--verbose")
    assert loud.code == 2 and "Traceback" in loud.err


def test_failed_file_gives_exit_1_and_others_are_backed_up(storage_env, container, library, tmp_path):
    # A name that is not UTF-8 cannot be carried by the metadata or the index (a backslash, which used to
    # fail here, is now stored under an encoded blob name).
    with open(os.path.join(os.fsencode(library), b"bad\xffname.jpg"), "wb") as f:
        f.write(b"x")
    r = run_cli("--source", str(library), "--state-dir", str(tmp_path / "s"), "--json")
    assert r.code == 1
    summary = r.json()
    assert (summary["uploaded"], summary["failed"]) == (2, 1)
    assert "name.jpg" in r.err and "UTF-8" in r.err  # each failure is named on stderr


def test_usage_error_is_exit_2(tmp_path):
    r = run_cli("--source", str(tmp_path), "--max-workers", "lots")
    assert r.code == 2


def test_emulator_mode_starts_and_reuses_azurite(monkeypatch, library, tmp_path):
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_CONTAINER"):
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / "state"
    try:
        first = run_cli("--source", str(library), "--state-dir", str(state), "--emulator", "--json")
        assert first.code == 0, first.err
        assert first.json()["uploaded"] == 2
        pid = json.loads((state / "azurite.json").read_text())["pid"]
        second = run_cli("--source", str(library), "--state-dir", str(state), "--emulator", "--json")
        assert second.json()["unchanged"] == 2
        assert json.loads((state / "azurite.json").read_text())["pid"] == pid  # reused, not restarted
        assert (state / "azurite").is_dir()
    finally:
        info = state / "azurite.json"
        if info.exists():
            with contextlib.suppress(OSError):
                os.kill(json.loads(info.read_text())["pid"], signal.SIGTERM)


def test_relative_state_dir(storage_env, container, library, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli("--source", str(library), "--state-dir", "rel-state").code == 0
    dry = run_cli("--source", str(library), "--state-dir", "rel-state", "--dry-run")  # opens the DB read-only
    assert dry.code == 0, dry.err
    assert "0 file(s)" in dry.out and (tmp_path / "rel-state" / "index.db").exists()


# -- configuration errors: named for what is wrong, exit 2, and nothing left in the state dir ----------------
def _sas_connection_string(azurite, *, expired: bool) -> str:
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    from agent.emulator import ACCOUNT, ACCOUNT_KEY

    sas = generate_account_sas(
        ACCOUNT, ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, update=True),
        start=datetime.now(UTC) - timedelta(hours=3),
        expiry=datetime.now(UTC) + (timedelta(hours=-2) if expired else timedelta(hours=1)),
        services="bt",
    )  # fmt: skip
    return f"BlobEndpoint={azurite.blob_url};TableEndpoint={azurite.table_url};SharedAccessSignature={sas}"


def test_a_wrong_account_key_or_an_expired_sas_is_named(
    azurite, storage_env, container, library, tmp_path, monkeypatch
):
    """Not "grant this identity a role": the key or the SAS is what the service refused."""
    wrong_key = azurite.connection_string.replace(
        "AccountKey=", "AccountKey=" + "A" * 20, 1
    )  # still base64, but not the account's key
    cases = {"account key": wrong_key, "SAS": _sas_connection_string(azurite, expired=True)}
    for what, conn in cases.items():
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
        state = tmp_path / f"s-{what.replace(' ', '-')}"
        r = run_cli("--source", str(library), "--state-dir", str(state))
        line = one_line_error(r.err)
        assert r.code == 2, r.err
        assert what in line and "refused" in line and "grant this identity" not in line, line
        assert not state.exists()  # a configuration error leaves nothing behind
        s = run_cli("status", "--state-dir", str(state), "--json")
        assert what in s.json()["cloud_error"], s.out
    # The control: a valid SAS works.
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", _sas_connection_string(azurite, expired=False))
    assert run_cli("--source", str(library), "--state-dir", str(tmp_path / "ok")).code == 0


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AZURE_STORAGE_CONNECTION_STRING": "this is not a connection string"}, "malformed"),
        ({"AZURE_STORAGE_CONNECTION_STRING": "AccountName=devstoreaccount1"}, "AccountKey"),
        (
            {
                "AZURE_STORAGE_CONNECTION_STRING": "",
                "AZURE_STORAGE_ACCOUNT_URL": "http://acct.blob.core.windows.net/?sv=2024-05-04&sig=c2VjcmV0c2ln",
            },
            "https",
        ),
        ({"AZURE_STORAGE_CONTAINER": "Bad_Name"}, "container name"),
        ({"AZURE_STORAGE_CONTAINER": "no-such-container-here"}, "does not exist"),
    ],
)
def test_configuration_errors_exit_2_before_the_state_dir_is_touched(
    storage_env, container, library, tmp_path, monkeypatch, env, needle
):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    state = tmp_path / "state"
    r = run_cli("--source", str(library), "--state-dir", str(state))
    assert r.code == 2, r.err
    line = one_line_error(r.err)
    assert needle in line and "sig=c2Vj" not in r.err, line
    assert not state.exists(), sorted(p.name for p in state.iterdir())  # no index.db, no lock, no source id
    # A state dir that exists already keeps what it had: no source id is remembered by a failed start.
    state.mkdir()
    r = run_cli("--source", str(library), "--state-dir", str(state), "--source-id", "elsewhere")
    assert r.code == 2 and sorted(p.name for p in state.iterdir()) == []


def test_a_dry_run_with_emulator_starts_nothing_and_writes_nothing(monkeypatch, library, tmp_path):
    """--dry-run --emulator says "nothing was written": it neither creates the state dir nor starts Azurite
    (decided: a dry run plans from the local index alone, which needs no storage)."""
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL"):
        monkeypatch.delenv(var, raising=False)
    state = tmp_path / "state"
    r = run_cli("--source", str(library), "--state-dir", str(state), "--dry-run", "--emulator")
    assert r.code == 0, r.err
    assert "would upload 2 file(s)" in r.out and "nothing was written" in r.out
    assert not state.exists()  # no index, no azurite.json: no emulator was started
