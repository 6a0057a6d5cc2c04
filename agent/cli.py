"""``azphotosync``: the command line. Parsing and exit codes only; the work is in :mod:`sync_core`."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from sync_core import __version__
from sync_core.errors import ConfigError, first_line

from . import index_cmd, restore_cmd, status_cmd, sync_cmd, verify_cmd
from .lock import LockHeldError
from .options import storage_options

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

# Each command module offers add_parser(subparsers, parents) and sets ``func`` on its parser.
COMMANDS = [sync_cmd, restore_cmd, status_cmd, index_cmd, verify_cmd]
DEFAULT_COMMAND = "sync"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azphotosync",
        description="Back up a photo and video library to Azure Blob Storage, incrementally and verifiably. "
        "Without a command, runs `sync`.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"azphotosync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [storage_options()]
    for module in COMMANDS:
        module.add_parser(sub, parents)
    for p in sub.choices.values():
        p.epilog = EXIT_CODES_HELP
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _with_default_command(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """The seed's form ``azphotosync --source X …`` means ``azphotosync sync --source X …``."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv and (argv[0] in sub.choices or argv[0] in ("-h", "--help", "--version")):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_with_default_command(parser, list(sys.argv[1:] if argv is None else argv)))
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
