"""No secrets at rest or in logs: after ``--verbose`` runs — good ones and failing ones — search the output,
the logs and every file in the state dir (SQLite database, WAL, lock) for the account key, SAS
signatures, connection strings and bearer tokens."""

from __future__ import annotations

import logging
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

from agent.emulator import ACCOUNT, ACCOUNT_KEY, Azurite

from .conftest import det_bytes, run_cli, write_file
from .faultproxy import FaultPlan, FaultProxy

# Generic shapes of secrets, whatever their value.
SECRET_PATTERNS = [
    re.compile(r"AccountKey=", re.I),
    re.compile(r"SharedAccessSignature=", re.I),
    re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{10,}", re.I),
    re.compile(r"Bearer\s+[A-Za-z0-9._-]{10,}", re.I),
    re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),  # a JWT
]


def find_secrets(text: str, values: list[str]) -> list[str]:
    hits = [p.pattern for p in SECRET_PATTERNS if p.search(text)]
    return hits + [f"value {v[:6]}…" for v in values if v and v in text]


def state_text(state: Path) -> str:
    """Every byte of every file under the state dir (the database, its WAL, the lock), as text."""
    return "\n".join(p.read_bytes().decode("latin-1") for p in state.rglob("*") if p.is_file())


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of INFO and above. (urllib3's DEBUG lines would show request URLs, SAS query
    included; the agent never enables DEBUG, not even with --verbose — see docs/reliability.md.)"""
    caplog.set_level(logging.INFO)
    return caplog


def sas_connection_string(az: Azurite, blob_url: str | None = None) -> tuple[str, str]:
    sas = generate_account_sas(
        ACCOUNT,
        ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, write=True, list=True, create=True, add=True, update=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
        services="bt",  # blobs and the Table index
    )
    conn = f"BlobEndpoint={blob_url or az.blob_url};TableEndpoint={az.table_url};SharedAccessSignature={sas}"
    return conn, sas


def run_everything(src: Path, state: Path) -> str:
    """A first sync, an incremental one, a dry run and two failing ones, all with --verbose."""
    out = []
    for args in (
        ("--source", str(src), "--state-dir", str(state), "--verbose"),
        ("--source", str(src), "--state-dir", str(state), "--verbose", "--json"),
        ("--source", str(src), "--state-dir", str(state), "--verbose", "--dry-run"),
        ("--source", str(src), "--state-dir", str(state), "--verbose", "--container", "no-such-container"),
        ("--source", str(src / "missing"), "--state-dir", str(state), "--verbose"),
    ):
        r = run_cli(*args)
        out += [r.out, r.err]
    return "\n".join(out)


def test_account_key_connection_string_never_leaks(azurite, storage_env, container, tmp_path, captured_logs):
    src = tmp_path / "lib"
    for i in range(5):
        write_file(src, f"{i}.jpg", det_bytes(i, 3000))
    state = tmp_path / "state"
    text = run_everything(src, state)
    assert "uploaded" in text and "does not exist" in text  # the runs really happened, and really failed
    secrets = [ACCOUNT_KEY, storage_env["AZURE_STORAGE_CONNECTION_STRING"]]
    assert find_secrets(text, secrets) == []
    assert find_secrets(captured_logs.text, secrets) == []
    assert find_secrets(state_text(state), secrets) == []


def test_sas_token_never_leaks_even_when_requests_fail(
    azurite, storage_env, container, tmp_path, monkeypatch, captured_logs
):
    src = tmp_path / "lib"
    for i in range(5):
        write_file(src, f"{i}.jpg", det_bytes(100 + i, 3000))
    state = tmp_path / "state"
    with FaultProxy(azurite.blob_port) as proxy:
        conn, sas = sas_connection_string(azurite, proxy.blob_url)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
        text = run_everything(src, state)
        # Uploads refused (403): the failure lines and tracebacks must still be clean.
        write_file(src, "late.jpg", b"late")
        proxy.set_plan(FaultPlan(deny=1.0, only=lambda r: r.method == "PUT"))
        r = run_cli("--source", str(src), "--state-dir", str(state), "--verbose")
        text += r.out + r.err
    assert r.code == 1 and "late.jpg" in r.err
    assert sum(1 for _ in container.list_blobs()) == 5
    sig = urllib.parse.parse_qs(sas)["sig"][0]
    secrets = [sas, sig, urllib.parse.quote(sig, safe=""), conn, ACCOUNT_KEY]
    assert find_secrets(text, secrets) == []
    assert find_secrets(captured_logs.text, secrets) == []
    assert find_secrets(state_text(state), secrets) == []
