"""What the Function App installs and what a Functions publish carries: requirements.txt lists exactly
pyproject.toml's runtime dependencies plus its functions extra, the Azure SDK majors are capped, and
.funcignore keeps the app's files and leaves out tests, bench, docs, infra, venvs, node_modules and .git."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;#]*)")


def _requirement(text: str) -> tuple[str, frozenset[str]]:
    """A requirement's normalised name and its set of specifiers (order and spacing do not matter)."""
    match = _REQ.match(text)
    assert match, text
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, frozenset(s.replace(" ", "") for s in match.group(3).split(",") if s.strip())


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_requirements_txt_is_pyprojects_runtime_dependencies_and_functions_extra():
    project = _pyproject()
    expected = [_requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["functions"]]
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    listed = [_requirement(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(expected)


def test_azure_sdk_majors_are_capped():
    project = _pyproject()
    every = [_requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["functions"]]
    azure = {name: specs for name, specs in every if name.startswith("azure-")}
    assert {"azure-core", "azure-storage-blob", "azure-data-tables", "azure-identity"} <= set(azure)
    for name, specs in azure.items():
        assert any(s.startswith("<") for s in specs) and any(s.startswith(">=") for s in specs), name


def _ignored(path: str, patterns: list[str]) -> bool:
    """.funcignore's patterns here are names (no slash): a path is left out when any of its parts matches."""
    return any(fnmatch.fnmatchcase(part, p) for part in path.split("/") for p in patterns)


def _patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    assert all("/" not in p and not p.startswith("!") for p in patterns), "keep the patterns plain names"
    return patterns


def test_funcignore_keeps_the_app_and_leaves_out_the_rest():
    patterns = _patterns()
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert tracked
    app = {"function_app.py", "host.json", "requirements.txt"}
    for path in tracked:
        wanted = path in app or path.split("/", 1)[0] in {"sync_core", "gallery"}
        assert _ignored(path, patterns) is not wanted, path
    # What is not tracked but lies in a working copy: venvs, caches, node_modules, git's own files.
    for path in (
        ".git/HEAD", ".venv/lib/python3.11/site-packages/x.py", ".venv-tools/bin/ruff", "node_modules/a/index.js",
        "sync_core/__pycache__/errors.cpython-311.pyc", "azphotosync.egg-info/PKG-INFO", ".pytest_cache/v/x",
        "local.settings.json", "bench/.tools/agent-venv/bin/python",
    ):  # fmt: skip
        assert _ignored(path, patterns), path
    for path in ("gallery/static/vendor/photoswipe.esm.js", "sync_core/data/storage-prices.json"):
        assert not _ignored(path, patterns), path
