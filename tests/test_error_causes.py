"""Errors keep their cause: a one-line message for the user, and under --verbose the traceback shows the
exception that caused it (``raise … from exc``, never ``from None``)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
# A connection string the client refuses when it is built (no request is sent): a ConfigError with a cause.
BAD_ENDPOINT = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=bm90IGEga2V5;BlobEndpoint=http://[::1:99999/a"


def _run(tmp_path: Path, *extra: str):
    (tmp_path / "src").mkdir(exist_ok=True)
    args = ("--source", str(tmp_path / "src"), "--state-dir", str(tmp_path / "state"))
    return run_cli(*args, "--connection-string", BAD_ENDPOINT, *extra)


def test_a_config_error_prints_its_cause_under_verbose(tmp_path: Path):
    quiet = _run(tmp_path)
    assert quiet.code == 2
    assert quiet.err.splitlines() == ["azphotosync: error: storage configuration not usable: Invalid IPv6 URL"]

    verbose = _run(tmp_path, "--verbose")
    assert verbose.code == 2
    assert "ValueError: Invalid IPv6 URL" in verbose.err
    assert "The above exception was the direct cause of the following exception" in verbose.err
    assert verbose.err.splitlines()[-1] == quiet.err.splitlines()[0]


def test_no_error_drops_its_cause():
    """``from None`` hides why; chain the cause instead."""
    files = [ROOT / "function_app.py", *(ROOT / "agent").rglob("*.py"), *(ROOT / "gallery").rglob("*.py")]
    files += list((ROOT / "sync_core").rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant) and node.cause.value is None
    ]
    assert offenders == []
