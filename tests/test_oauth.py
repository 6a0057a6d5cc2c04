"""The token path for real: Azurite over HTTPS (a self-signed certificate made here) with ``--oauth basic``,
and the agent configured with an account URL and a token credential — no key or connection string
anywhere. This is the code path ``DefaultAzureCredential`` takes in production: ``BlobServiceClient(url,
credential=<TokenCredential>)`` with bearer tokens, which the SDK only sends over HTTPS.

Azurite's basic OAuth checks a token's shape, lifetime (nbf/exp/iat), issuer (an Azure AD STS) and audience
(``https://storage.azure.com``) but not its signature, so the test mints one.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.emulator import Azurite, start_azurite
from sync_core.storage import clients

from .conftest import det_bytes, run_cli, write_file
from .test_secrets import find_secrets, state_text

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, valid for a day: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azphotosync test azurite")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def mint_jwt(audience: str = "https://storage.azure.com", lifetime: int = 3600) -> tuple[str, int]:
    now = int(time.time())
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60, "nbf": now - 60,
              "exp": now + lifetime, "oid": str(uuid.uuid4()), "tid": TENANT}  # fmt: skip
    signature = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{signature}", now + lifetime


class MintedCredential:
    """A :class:`azure.core.credentials.TokenCredential`, as DefaultAzureCredential is one."""

    def __init__(self, audience: str = "https://storage.azure.com"):
        self.audience = audience
        self.scopes: list[tuple[str, ...]] = []
        self.tokens: list[str] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        token, expires = mint_jwt(self.audience)
        self.tokens.append(token)
        return AccessToken(token, expires)


@pytest.fixture(scope="module")
def https_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Azurite, Path]]:
    folder = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = self_signed_cert(folder)
    az = start_azurite(folder / "data", extra_args=("--oauth", "basic", "--cert", str(cert), "--key", str(key)))
    try:
        assert az.scheme == "https"
        yield az, cert
    finally:
        az.stop()


@pytest.fixture
def token_env(https_azurite, monkeypatch: pytest.MonkeyPatch) -> tuple[Azurite, str, str]:
    """The agent's environment for the token path: an account URL, the CA to trust, and nothing secret."""
    az, cert = https_azurite
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL"):
        monkeypatch.delenv(var, raising=False)
    container, table = f"t{uuid.uuid4().hex[:20]}", f"t{uuid.uuid4().hex[:20]}"
    monkeypatch.setenv("AZURE_STORAGE_CONTAINER", container)
    monkeypatch.setenv("AZURE_STORAGE_TABLE", table)
    monkeypatch.setenv("AZPHOTOSYNC_SOURCE_ID", "tokenhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # how a user trusts a private CA with requests
    return az, container, table


def test_sync_with_account_url_and_token_credential(token_env, monkeypatch, tmp_path):
    az, container_name, _ = token_env
    cred = MintedCredential()
    monkeypatch.setattr(clients, "_credential", cred)  # what default_credential() hands out
    src = tmp_path / "lib"
    files = {f"2025/IMG_{i}.JPG": det_bytes(i, 40_000) for i in range(4)}
    files["video/big.MP4"] = det_bytes(9, 9 * 1024 * 1024)  # the block path too
    for rel, data in files.items():
        write_file(src, rel, data)
    state = tmp_path / "state"
    table_url = az.table_url
    args = ("--source", str(src), "--state-dir", str(state), "--account-url", az.blob_url,
            "--table-endpoint", table_url, "--create-container", "--verbose", "--json")  # fmt: skip
    r = run_cli(*args)
    assert r.code == 0, r.err
    s = r.json()
    assert (s["uploaded"], s["failed"]) == (5, 0)
    assert cred.tokens and all(sc == ("https://storage.azure.com/.default",) for sc in cred.scopes)

    reader = BlobServiceClient(az.blob_url, credential=MintedCredential()).get_container_client(container_name)
    assert sorted(b.name.split("/", 4)[4] for b in reader.list_blobs()) == sorted(files)
    assert find_secrets(r.out + r.err + state_text(state), cred.tokens) == []  # no bearer token at rest

    again = run_cli(*args)
    assert again.code == 0 and again.json()["unchanged"] == 5

    # verification's direct List Blobs requests go through the same token pipeline (and the private CA)
    v = run_cli("verify", "--state-dir", str(state), "--account-url", az.blob_url, "--table-endpoint", table_url,
                "--reports-container", f"r{container_name[1:]}"[:40], "--json")  # fmt: skip
    assert v.code == 0, v.err
    doc = v.json()
    assert doc["rows"] == 5 and doc["counts"]["ok"] == 5 and doc["requests"]["listing_pages"] == 16


def test_token_with_wrong_audience_is_refused_clearly(token_env, monkeypatch, tmp_path):
    """The control: Azurite really checks the token, and the agent says what to do in one line."""
    az, _, _ = token_env
    monkeypatch.setattr(clients, "_credential", MintedCredential(audience="https://vault.azure.net"))
    src = tmp_path / "lib"
    write_file(src, "a.jpg", b"a")
    r = run_cli("--source", str(src), "--state-dir", str(tmp_path / "s"), "--account-url", az.blob_url,
                "--table-endpoint", az.table_url, "--create-container")  # fmt: skip
    assert r.code == 2, r.err
    line = r.err.strip().splitlines()[-1]
    assert "authentication failed" in line.lower() or "denied" in line.lower(), line
