"""The four contenders and the command lines each is run with (one place, so the docs can quote them).

* ``azphotosync`` — this project's agent, as a user installs it: ``bench/.tools/agent-venv`` holds
  ``pip install -e .`` without the dev extra (made by ``bench/install_tools.sh``). The dev venv also has
  aiohttp (from azure-functions-durable), which azure-storage-blob imports when present: ~0.15 s of start-up
  a user's install does not pay. Without that venv the dev venv's agent is used.
* ``rclone`` — ``copy`` (first sync and reruns: it compares size and modtime), ``check`` for verification.
* ``azcopy`` — ``copy`` for the first sync, ``sync`` for reruns, a container SAS and ``--from-to LocalBlob``.
* ``sdk`` — a plain azure-storage-blob thread pool (first sync only: it has no notion of a rerun).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS_DIR = REPO / "bench" / ".tools"
AGENT_VENV_AGENT = TOOLS_DIR / "agent-venv" / "bin" / "azphotosync"
AGENT = AGENT_VENV_AGENT if AGENT_VENV_AGENT.exists() else REPO / ".venv" / "bin" / "azphotosync"
VENV_PY = REPO / ".venv" / "bin" / "python"
VENV_PY = VENV_PY if VENV_PY.exists() else Path(sys.executable)  # a git worktree has no .venv of its own
RCLONE = TOOLS_DIR / "venv" / "bin" / "rclone"
AZCOPY = TOOLS_DIR / "node_modules" / "@azure-tools" / "azcopy-linux" / "dist" / "bin" / "azcopy_linux_amd64"
WORKERS = 8  # the agent's default --max-workers; peers get the same parallelism where they take one


@dataclass
class Target:
    """Where one tool writes: a container on the benchmark's Azurite."""

    blob_url: str  # http://127.0.0.1:PORT/devstoreaccount1
    account: str
    key: str
    connection_string: str
    container: str
    table: str
    state_dir: Path
    rclone_dir: str = ""  # rclone's copy under this folder of the container (the shared verification case)

    @property
    def rclone_remote(self) -> str:
        return f"az:{self.container}" + (f"/{self.rclone_dir}" if self.rclone_dir else "")

    def sas_url(self, path: str = "") -> str:
        """The container's URL with a SAS, or of ``path`` inside it (e.g. ``rclone/*``)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        perms = ContainerSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True)
        expiry = datetime.now(UTC) + timedelta(hours=6)
        sas = generate_container_sas(
            self.account, self.container, account_key=self.key, permission=perms, expiry=expiry
        )
        return f"{self.blob_url}/{self.container}" + (f"/{path}" if path else "") + f"?{sas}"


def base_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZPHOTOSYNC_", "RCLONE_", "AZCOPY_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's machine caches compiled modules (install_tools.sh)
    env["HOME"] = str(work / "home")  # no tool reads or writes the user's own config
    (work / "home").mkdir(parents=True, exist_ok=True)
    return env


def agent_env(work: Path, t: Target) -> dict[str, str]:
    env = base_env(work)
    env["AZURE_STORAGE_CONNECTION_STRING"] = t.connection_string
    return env


def agent_sync(src: Path, t: Target) -> list[str]:
    return [
        str(AGENT), "sync", "--source", str(src), "--state-dir", str(t.state_dir), "--container", t.container,
        "--table", t.table, "--source-id", "bench", "--create-container", "--json",
    ]  # fmt: skip


def agent_help(sub: str = "") -> str:
    cmd = [str(AGENT), *([sub] if sub else []), "--help"]
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def rclone_env(work: Path, t: Target) -> dict[str, str]:
    env = base_env(work)
    env.update(
        RCLONE_CONFIG=str(work / "rclone.conf"),  # absent: the remote comes from the variables below
        RCLONE_CONFIG_AZ_TYPE="azureblob",
        RCLONE_CONFIG_AZ_ACCOUNT=t.account,
        RCLONE_CONFIG_AZ_KEY=t.key,
        RCLONE_CONFIG_AZ_ENDPOINT=t.blob_url,
    )
    return env


def rclone_copy(src: Path, t: Target) -> list[str]:
    return [str(RCLONE), "copy", str(src), t.rclone_remote, "--transfers", str(WORKERS)]


def rclone_check(src: Path, t: Target) -> list[str]:
    return [str(RCLONE), "check", str(src), t.rclone_remote, "--one-way", "--checkers", str(2 * WORKERS)]


def azcopy_env(work: Path) -> dict[str, str]:
    env = base_env(work)
    env["AZCOPY_LOG_LOCATION"] = str(work / "azcopy" / "logs")
    env["AZCOPY_JOB_PLAN_LOCATION"] = str(work / "azcopy" / "plans")
    env["AZCOPY_DISABLE_SYSLOG"] = "true"
    return env


def azcopy_copy(src: Path, t: Target) -> list[str]:
    return [str(AZCOPY), "copy", f"{src}/*", t.sas_url(), "--recursive", "--from-to", "LocalBlob",
            "--log-level", "ERROR", "--output-level", "essential"]  # fmt: skip


def azcopy_sync(src: Path, t: Target) -> list[str]:
    """A rerun; against rclone's copy when the target has one (AzCopy compares the blobs' last-modified
    times with the files' mtimes, so it takes any uploader's copy as up to date)."""
    url = t.sas_url(t.rclone_dir)
    return [str(AZCOPY), "sync", str(src), url, "--recursive", "--from-to", "LocalBlob",
            "--log-level", "ERROR", "--output-level", "essential"]  # fmt: skip


# -- restore: every tool downloads a container's copy of a corpus into an empty folder ------------------------
def agent_restore(dest: Path, t: Target) -> list[str]:
    """Our restore: every file SHA-256-checked before it is moved into place."""
    return [str(AGENT), "restore", "--to", str(dest), "--state-dir", str(t.state_dir), "--container", t.container,
            "--table", t.table, "--source-id", "bench", "--json"]  # fmt: skip


def rclone_restore(dest: Path, t: Target) -> list[str]:
    """``rclone copy remote: local``: checks each download against the blob's Content-MD5 when it has one."""
    return [str(RCLONE), "copy", t.rclone_remote, str(dest), "--transfers", str(WORKERS)]


def azcopy_restore(dest: Path, t: Target) -> list[str]:
    """``azcopy copy`` (download): ``--check-md5`` defaults to FailIfDifferent (checked where the blob has one)."""
    src = t.sas_url(f"{t.rclone_dir}/*" if t.rclone_dir else "*")
    return [str(AZCOPY), "copy", src, str(dest), "--recursive", "--from-to", "BlobLocal",
            "--log-level", "ERROR", "--output-level", "essential"]  # fmt: skip


def sdk_env(work: Path, t: Target) -> dict[str, str]:
    env = base_env(work)
    env["AZURE_STORAGE_CONNECTION_STRING"] = t.connection_string
    return env


def sdk_upload(src: Path, t: Target) -> list[str]:
    script = str(Path(__file__).with_name("sdk_upload.py"))
    return [str(VENV_PY), script, "--src", str(src), "--container", t.container, "--workers", str(WORKERS)]


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
        except OSError as exc:
            return f"unavailable ({exc})"
        return out.strip().splitlines()[0] if out.strip() else "?"

    import azure.storage.blob

    from sync_core import __version__

    azurite = "?"
    pkg = REPO / "node_modules" / "azurite" / "package.json"
    if pkg.exists():
        m = re.search(r'"version":\s*"([^"]+)"', pkg.read_text())
        azurite = m.group(1) if m else "?"
    return {
        "azphotosync": __version__,
        "python": sys.version.split()[0],
        "azure-storage-blob": azure.storage.blob.__version__,
        "rclone": first_line([str(RCLONE), "version"]),
        "azcopy": first_line([str(AZCOPY), "--version"]),
        "azurite": azurite,
    }
