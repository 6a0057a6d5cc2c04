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


# -- every message is redacted where it is made ---------------------------------------------------------------
@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection is given up after two quick attempts instead of the production budget: these
    tests are about what the final message says, not how long the client insists."""
    import sync_core.storage.clients as clients

    monkeypatch.setattr(clients, "RETRY_TOTAL", 1)
    monkeypatch.setattr(clients, "RETRY_FIRST_BACKOFF", 0.01)


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sas_parts(sas: str) -> list[str]:
    sig = urllib.parse.parse_qs(sas)["sig"][0]
    return [sas, sig, urllib.parse.quote(sig, safe=""), ACCOUNT_KEY]


def test_redact_removes_keys_sas_and_bearer_tokens():
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    from sync_core.errors import ConfigError, first_line, redact

    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0LXN1YmplY3QifQ.c2lnbmF0dXJlLXZhbHVl"
    texts = [
        f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
        "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2024-05-04&sig=Zm9vYmFyYmF6cXV4MTIz",
        "GET https://a.blob.core.windows.net/c/x.jpg?sv=2024-05-04&se=2030-01-01&sp=r&sig=Zm9vYmFyYmF6cXV4MTIz%3D",
        f"request failed; headers: Authorization: Bearer {jwt}",
        f"token {jwt} refused",
    ]
    for text in texts:
        assert find_secrets(redact(text), [ACCOUNT_KEY, jwt, "Zm9vYmFyYmF6cXV4MTIz"]) == [], redact(text)
        assert find_secrets(first_line(ServiceRequestError(text)), [ACCOUNT_KEY, jwt]) == []
        assert find_secrets(first_line(HttpResponseError(message=text)), [ACCOUNT_KEY, jwt]) == []
        assert find_secrets(str(ConfigError(f"cannot start: {text}")), [ACCOUNT_KEY, jwt]) == []
    # What is not a secret stays readable.
    assert redact("photos/ab/abcdef/IMG 1.jpg: size 12 != 13") == "photos/ab/abcdef/IMG 1.jpg: size 12 != 13"


def test_sas_never_leaks_when_the_endpoint_is_unreachable_at_start(
    azurite, storage_env, tmp_path, monkeypatch, quick_retries, captured_logs
):
    """The start-up error quotes the endpoint, whose URL carries the SAS: stderr for sync, stdout for status
    (text and --json), and nothing of it in the state dir."""
    src = tmp_path / "lib"
    write_file(src, "a.jpg", det_bytes(7, 2000))
    state = tmp_path / "state"
    dead = f"http://127.0.0.1:{closed_port()}/{ACCOUNT}"
    conn, sas = sas_connection_string(azurite, dead)
    conn = conn.replace(f"TableEndpoint={azurite.table_url}", f"TableEndpoint={dead}")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
    texts = []
    for args in (
        ("--source", str(src), "--state-dir", str(state)),
        ("--source", str(src), "--state-dir", str(state), "--verbose"),
        ("status", "--state-dir", str(state)),
        ("status", "--state-dir", str(state), "--json"),
        ("verify", "--state-dir", str(state)),
    ):
        r = run_cli(*args)
        assert r.code != 0
        texts += [r.out, r.err]
    text = "\n".join(texts)
    assert "cannot reach storage" in text  # the failure really happened and is reported
    assert find_secrets(text, sas_parts(sas)) == [], text
    assert find_secrets(captured_logs.text, sas_parts(sas)) == []
    assert find_secrets(state_text(state), sas_parts(sas)) == []


def test_sas_never_leaks_from_per_file_errors_into_output_index_or_status(
    azurite, storage_env, container, tmp_path, monkeypatch, quick_retries, captured_logs
):
    """The blob endpoint goes away during the uploads (the first upload's connection drops, every new one is
    refused): each file's error names the request URL. Neither the output, nor index.db and its WAL
    (``runs.summary``), nor ``status --local`` may show the SAS."""
    src = tmp_path / "lib"
    for i in range(4):
        write_file(src, f"{i}.jpg", det_bytes(200 + i, 3000))
    state = tmp_path / "state"
    with FaultProxy(azurite.blob_port) as proxy:

        def going_away(r) -> bool:
            if r.method == "PUT":
                proxy.stop_listening()
                return True
            return False

        proxy.set_plan(FaultPlan(reset=1.0, only=going_away))
        conn, sas = sas_connection_string(azurite, proxy.blob_url)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
        r = run_cli("--source", str(src), "--state-dir", str(state), "--verbose")
    assert r.code == 1 and "failed" in r.err, r.out + r.err
    local = run_cli("status", "--state-dir", str(state), "--local")
    local_json = run_cli("status", "--state-dir", str(state), "--local", "--json")
    assert local_json.json()["last_sync"]["failed"] == 4
    assert (state / "index.db-wal").exists() or (state / "index.db").exists()
    text = "\n".join([r.out, r.err, local.out, local.err, local_json.out])
    assert "storage error" in text
    assert find_secrets(text, sas_parts(sas)) == [], text
    assert find_secrets(captured_logs.text, sas_parts(sas)) == []
    assert find_secrets(state_text(state), sas_parts(sas)) == []


def test_sas_never_leaks_into_the_verification_report(
    azurite, storage_env, container, tmp_path, monkeypatch, quick_retries
):
    """The blob endpoint goes away while units are listed: the report's ``errors`` name the failed units
    without the SAS that was in each request's URL."""
    src = tmp_path / "lib"
    for i in range(6):
        write_file(src, f"v{i}.jpg", det_bytes(400 + i, 2000))
    state = tmp_path / "state"
    assert run_cli("--source", str(src), "--state-dir", str(state)).code == 0
    monkeypatch.setenv("VERIFY_REPORTS_CONTAINER", f"r{container.container_name[:20]}")
    with FaultProxy(azurite.blob_port) as proxy:

        def going_away(r) -> bool:
            if r.comp == "list" and r.query.get("prefix", "").startswith("photos/testhost/"):
                proxy.stop_listening()
                return True
            return False

        proxy.set_plan(FaultPlan(reset=1.0, only=going_away))
        conn, sas = sas_connection_string(azurite, proxy.blob_url)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
        r = run_cli("verify", "--state-dir", str(state), "--json")
    assert r.code == 1, r.err
    doc = r.json()
    assert doc["errors"] and doc["partitions_failed"] >= 1
    assert find_secrets(r.out + r.err, sas_parts(sas)) == [], r.out + r.err
