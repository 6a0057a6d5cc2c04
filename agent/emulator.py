"""Start, reuse and stop a local Azurite (the npm package pinned in the repo's package.json).

Used by ``--emulator`` (a try-it-now mode with no Azure account), by the test suite and by the benchmark.
Ports are chosen by the OS (port 0) and read back from Azurite's own start-up lines, so parallel
instances never collide.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# Azurite's documented, public development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTEN_RE = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at (https?)://([^:]+):(\d+)")
REPO_ROOT = Path(__file__).resolve().parents[1]


class EmulatorError(Exception):
    """Azurite could not be found or started; the message says how to fix it."""


def find_azurite() -> str:
    """The azurite launcher: $AZURITE_BIN, the repo's node_modules, or one on PATH."""
    candidates = [os.environ.get("AZURITE_BIN"), str(REPO_ROOT / "node_modules" / ".bin" / "azurite")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    found = shutil.which("azurite")
    if found:
        return found
    raise EmulatorError(
        "Azurite is not installed: run `npm ci` in the azphotosync repo (or `npm install -g azurite@3.37.0`), "
        "or set AZURITE_BIN"
    )


@dataclass
class Azurite:
    """A running Azurite: its endpoints, its process id and how to stop it."""

    pid: int
    host: str
    blob_port: int
    queue_port: int
    table_port: int
    scheme: str = "http"
    location: str = ""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def blob_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.blob_port}/{ACCOUNT}"

    @property
    def table_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.table_port}/{ACCOUNT}"

    @property
    def queue_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.queue_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_url};QueueEndpoint={self.queue_url};TableEndpoint={self.table_url};"
        )

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        with contextlib.suppress(OSError), socket.create_connection((self.host, self.blob_port), timeout=1):
            return True
        return False

    def stop(self, timeout: float = 10) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGTERM)

    def to_json(self) -> str:
        keys = ("pid", "host", "blob_port", "queue_port", "table_port", "scheme", "location")
        return json.dumps({k: getattr(self, k) for k in keys})


def start_azurite(
    location: str | Path,
    *,
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
    detach: bool = False,
    timeout: float = 60,
    in_memory: bool = False,
) -> Azurite:
    """Start Azurite with its data in ``location`` on OS-chosen ports; wait until all three listen.

    ``in_memory``: data and metadata stay in the emulator's memory (``--inMemoryPersistence``; only its log
    is written to ``location``): nothing is written to disk or rewritten on an autosave timer, so the
    benchmark measures the clients rather than the emulator's persistence."""
    location = Path(location)
    location.mkdir(parents=True, exist_ok=True)
    log_path = location / "azurite.out"
    args = [
        find_azurite(),
        "--blobHost", host, "--queueHost", host, "--tableHost", host,
        "--blobPort", "0", "--queuePort", "0", "--tablePort", "0",
        *(("--inMemoryPersistence",) if in_memory else ("--location", str(location))),
        "--skipApiVersionCheck", "--disableTelemetry", "--loose", *extra_args,
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detach,
            cwd=location,  # whatever it writes beside its data stays in the folder it was given
        )
    ports: dict[str, tuple[str, int]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        for m in _LISTEN_RE.finditer(text):
            ports[m.group(1)] = (m.group(2), int(m.group(4)))
        if len(ports) == 3:
            az = Azurite(
                proc.pid, host, ports["Blob"][1], ports["Queue"][1], ports["Table"][1],
                scheme=ports["Blob"][0], location=str(location), _proc=None if detach else proc,
            )  # fmt: skip
            return az
        if proc.poll() is not None:
            raise EmulatorError(f"Azurite exited at start-up: {text.strip()[-500:]}")
        time.sleep(0.1)
    proc.kill()
    raise EmulatorError(f"Azurite did not start within {timeout:.0f}s (log: {log_path})")


def ensure_emulator(state_dir: Path) -> Azurite:
    """Reuse the Azurite this state dir started before if it still answers, otherwise start one that
    keeps running after the agent exits (its data lives under ``<state dir>/azurite``)."""
    info = state_dir / "azurite.json"
    if info.exists():
        try:
            az = Azurite(**json.loads(info.read_text()))
        except (ValueError, TypeError):
            az = None
        if az is not None and az.alive():
            return az
    az = start_azurite(state_dir / "azurite", detach=True)
    info.write_text(az.to_json())
    return az
