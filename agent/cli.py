"""``azphotosync``: the command line. Parsing and exit codes only; the work is in :mod:`sync_core`."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from sync_core import __version__
from sync_core.errors import ConfigError, first_line

from .lock import LockHeldError

EXIT_OK = 0
EXIT_FILES_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0    everything succeeded
  1    the run finished but some files failed (listed; retried on the next run)
  2    usage or configuration error: nothing was done (the message says what to fix)
  3    another azphotosync run holds the state dir lock
  4    internal error (please report it, with the output of --verbose)
  130  interrupted (Ctrl-C); the next run resumes
"""

# Each command module offers add_parser(subparsers, parents) and sets ``func`` on its parser. Only the module
# of the command that runs is imported (the others pull in SDKs and code a sync never needs: start-up time
# is most of an unchanged rerun); the top-level --help lists the others from their one-line help, kept equal
# to the modules' own by tests/test_cli_lazy.py.
COMMANDS: dict[str, tuple[str, str]] = {
    "sync": ("agent.sync_cmd", "back up new and changed files (default command)"),
    "restore": ("agent.restore_cmd", "restore backed-up files into a folder, SHA-256-verified"),
    "status": ("agent.status_cmd", "show whether all is well: local index, last sync, mirror lag, cloud verification"),
    "index": ("agent.index_cmd", "rebuild the local index from the cloud, or mirror it to the index table now"),
    "verify": ("agent.verify_cmd", "check every blob against the index table now (what the cloud does nightly)"),
    "gallery": ("agent.gallery_cmd", "browse the archive in a private web gallery on this computer"),
    "share": ("agent.share_cmd", "create, list and revoke share links to an album or a set of paths"),
}
DEFAULT_COMMAND = "sync"


def build_parser(command: str | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The whole parser (``full``), or one where only ``command`` is complete and the others are stubs that
    carry just their help line (enough for the top-level --help)."""
    parser = argparse.ArgumentParser(
        prog="azphotosync",
        description="Back up a photo and video library to Azure Blob Storage, incrementally and verifiably. "
        "Without a command, runs `sync`.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"azphotosync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from .options import storage_options  # with the SDKs: imported here, under main()'s start-up

    parents = [storage_options()]
    for name, (module_name, help_line) in COMMANDS.items():
        if full or name == command:
            importlib.import_module(module_name).add_parser(sub, parents)
        else:
            sub.add_parser(name, help=help_line)
    for p in sub.choices.values():
        p.epilog = EXIT_CODES_HELP
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """The seed's form ``azphotosync --source X …`` means ``azphotosync sync --source X …``."""
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. ``argv`` None means the process's own command line (the console script, ``python -m
    agent.cli``): the process ends when this returns. In-process callers (tests) pass ``argv``."""
    own_process = argv is None
    argv = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    if own_process:
        # Importing the SDKs makes ~50k long-lived objects; the cyclic collector would walk them in passes
        # during the imports and in every full pass of the run. Import without it, then freeze what exists.
        gc.disable()
        try:
            parser = build_parser(argv[0] if argv[0] in COMMANDS else None, full=False)
        finally:
            gc.freeze()
            gc.enable()
    else:
        parser = build_parser(argv[0] if argv[0] in COMMANDS else None, full=False)
    code = _main(parser, argv)
    if own_process:
        # The interpreter's shutdown runs the cyclic collector over every object the SDKs left (~0.07 s of
        # CPU, 8% of an unchanged 100k-file rerun) only to free memory the exit frees anyway. Everything that
        # needs closing (index, lock, connection pools) is closed by now; frozen objects are skipped.
        gc.freeze()
    return code


def _main(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The SDK's HTTP logging would print request URLs; keep it quiet even with --verbose.
    logging.getLogger("azure").setLevel(logging.ERROR)
    verbose = getattr(args, "verbose", False)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        if verbose:
            traceback.print_exc()
        print(f"azphotosync: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LockHeldError as exc:
        print(f"azphotosync: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        print("azphotosync: interrupted; the next run resumes where this one stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        first = first_line(exc)
        print(
            f"azphotosync: internal error: {type(exc).__name__}: {first} (rerun with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
