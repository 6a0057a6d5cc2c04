"""The CLI imports only the module of the command that runs, and its --help still lists every command."""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
from pathlib import Path

from agent.cli import COMMANDS, build_parser, main


def _choices_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: str(a.help) for a in sub._choices_actions}


def test_stub_help_lines_equal_the_modules_own() -> None:
    full = _choices_help(build_parser(full=True))
    stubs = _choices_help(build_parser(None, full=False))
    assert list(full) == list(COMMANDS)
    assert stubs == full


def test_sync_imports_no_other_command_module() -> None:
    code = (
        "import sys\n"
        "from agent.cli import main\n"
        "try:\n"
        "    main(['sync', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent.') and m.endswith('_cmd')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "['agent.sync_cmd']"


def test_top_level_help_shows_the_default_commands_options() -> None:
    """The seed's usage has no command word (``azphotosync --source DIR --dry-run --verbose``): the top-level
    --help lists those options, next to the commands, and still imports only the default command's module."""
    code = (
        "import sys\n"
        "from agent.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent.') and m.endswith('_cmd')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    *text, modules = out.strip().splitlines()
    assert modules == "['agent.sync_cmd']"
    helped = "\n".join(text)
    for option in ("--source", "--dry-run", "--verbose", "--max-workers", "--exclude", "--bwlimit", "--json"):
        assert option in helped, option
    for command in COMMANDS:
        assert f"    {command} " in helped, command
    assert "exit codes" in helped


def test_in_process_main_leaves_the_collector_alone(tmp_path: Path) -> None:
    """Only the process's own command line freezes the heap at its end: tests call main() hundreds of times."""
    before = gc.get_freeze_count()
    assert main(["sync", "--dry-run", "--source", str(tmp_path / "missing")]) == 2  # usage error, nothing done
    assert gc.get_freeze_count() == before


def test_keeping_the_catalog_current_imports_no_image_library() -> None:
    """A sync refreshes the gallery's catalog: that path (sync_cmd, gallery_cmd's helper, the catalog) must not
    import Pillow, pillow-heif, PyAV or rawpy, which cost most of a second of every run's start."""
    code = (
        "import sys\n"
        "import agent.sync_cmd, agent.gallery_cmd, sync_core.derived.catalog\n"
        "print(sorted(m for m in ('PIL', 'pillow_heif', 'av', 'rawpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
