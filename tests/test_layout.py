"""The map of the code stays true: sync_core's package docstring and docs/architecture.md name only packages
and modules that exist, and every sub-package is on the map."""

from __future__ import annotations

import re
from pathlib import Path

import sync_core

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sync_core"


def _modules() -> set[str]:
    """Every module's short name and every sub-package's name (``scanner``, ``local``, ``config``…)."""
    return {p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }


def test_the_package_docstring_names_only_what_exists():
    doc = sync_core.__doc__ or ""
    named = set(re.findall(r"``([a-z_]+)``", doc))
    listed = set(re.findall(r"^    ([a-z]+)  ", doc, flags=re.MULTILINE))
    assert named and listed
    assert named - _modules() == set()
    assert listed == {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_architecture_md_names_only_what_exists():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    packages = set(re.findall(r"`sync_core/([a-z_]+)`", text))
    assert packages == {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    for package, module in re.findall(r"\b(contracts|local|storage|index|sync|verify|restore|derived)/([a-z_]+)", text):
        assert (PACKAGE / package / f"{module}.py").exists(), f"{package}/{module}"
    for module in re.findall(r"\(`([a-z_]+)`", text):
        assert module in _modules(), module
