"""Shared fixtures: one real Azurite per test session (OS-chosen loopback ports), a fresh container per
test, and helpers to build sample libraries and run the CLI in-process."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from agent.emulator import Azurite, start_azurite
from sync_core.config import StorageConfig


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    az = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield az
    finally:
        az.stop()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test may read or write the real ``~/.azphotosync``: HOME points at a fresh folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AZPHOTOSYNC_STATE_DIR", raising=False)
    return home


@pytest.fixture
def storage_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing the agent at Azurite with a fresh, unique container and index table of the
    same name (created by the ``container`` fixture or the test)."""
    name = f"t{uuid.uuid4().hex[:20]}"
    for var in ("AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_TABLE", "AZURE_STORAGE_TABLE_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AZURE_STORAGE_CONTAINER": name,
        "AZURE_STORAGE_TABLE": name,
        "AZPHOTOSYNC_SOURCE_ID": "testhost",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def container(azurite: Azurite, storage_env: dict[str, str]) -> ContainerClient:
    svc = BlobServiceClient.from_connection_string(azurite.connection_string)
    c = svc.get_container_client(storage_env["AZURE_STORAGE_CONTAINER"])
    c.create_container()
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    tables.create_table(storage_env["AZURE_STORAGE_TABLE"])
    return c


@pytest.fixture
def cfg(azurite: Azurite, storage_env: dict[str, str]) -> StorageConfig:
    return StorageConfig(
        container=storage_env["AZURE_STORAGE_CONTAINER"],
        table=storage_env["AZURE_STORAGE_TABLE"],
        prefix="photos",
        source_id="testhost",
        connection_string=azurite.connection_string,
    )


def write_file(root: Path, rel: str, data: bytes, mtime_ns: int | None = None) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mtime_ns is not None:
        os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def det_bytes(seed: int, size: int) -> bytes:
    """Deterministic pseudo-random bytes (incompressible, reproducible)."""
    import random

    return random.Random(seed).randbytes(size)


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def run_cli(*args: str) -> CliResult:
    """Run ``azphotosync`` in-process, capturing stdout/stderr and the exit code."""
    from agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def client(cfg: StorageConfig, container: ContainerClient) -> ContainerClient:
    """The container as the agent opens it: our retry policy, throttle hook and transport."""
    from sync_core.storage.clients import blob_service, open_container

    return open_container(blob_service(cfg), cfg)


def container_via(blob_url: str, azurite: Azurite, cfg: StorageConfig) -> ContainerClient:
    """The agent's container client, its blob requests sent to ``blob_url`` (a fault proxy before Azurite)."""
    import dataclasses

    from agent.emulator import ACCOUNT, ACCOUNT_KEY
    from sync_core.storage.clients import blob_service, open_container

    cs = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={blob_url};TableEndpoint={azurite.table_url};"
    )
    pcfg = dataclasses.replace(cfg, connection_string=cs)
    return open_container(blob_service(pcfg), pcfg)
