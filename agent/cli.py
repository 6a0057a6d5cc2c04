"""``azphotosync``: the command line. Parsing and exit codes only; the work is in :mod:`sync_core`."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from sync_core import __version__
from sync_core.errors import ConfigError, first_line, redact

from .lock import LockHeldError

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
    "album": ("agent.album_cmd", "create albums and add files to them; list albums, folders and the timeline"),
    "thumbnails": (
        "agent.thumbnails_cmd",
        "make the missing thumbnails (WebP renditions) and record sizes in the index table",
    ),
    "gallery": ("agent.gallery_cmd", "browse the archive in a private web gallery on this computer"),
    "share": ("agent.share_cmd", "create, list and revoke share links to an album or a set of paths"),
}
DEFAULT_COMMAND = "sync"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written, and a command column wide enough for every command name on its own line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):  # argparse measures commands one indent short
            longest = max((len(name) for name in action.choices), default=0)
            self._action_max_length = max(self._action_max_length, longest + self._current_indent + 4)


def build_parser(command: str | None = None, *, full: bool = True) -> argparse.ArgumentParser:
    """The whole parser (``full``), or one where only ``command`` is complete and the others are stubs that
    carry just their help line (enough for the top-level --help)."""
    parser = argparse.ArgumentParser(
        prog="azphotosync",
        description="Back up a photo and video library to Azure Blob Storage, incrementally and verifiably. "
        "Without a command, runs `sync`.",
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
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
    if DEFAULT_COMMAND in sub.choices and (full or command == DEFAULT_COMMAND):
        parser.epilog = _default_command_help(sub.choices[DEFAULT_COMMAND]) + "\n" + EXIT_CODES_HELP
    for p in sub.choices.values():
        p.epilog = EXIT_CODES_HELP
        p.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _default_command_help(default: argparse.ArgumentParser) -> str:
    """The default command's usage and options, for the top-level --help: the seed's command line
    (``azphotosync --source DIR --dry-run --verbose``) has no command word, so its options belong there."""
    return (
        f"default command ({DEFAULT_COMMAND}, also without the word: azphotosync --source DIR [--dry-run] "
        "[--verbose]):\n\n" + default.format_help()
    )


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """The lazily built parser: complete for the command that runs (for the top-level --help, the default
    command, whose options it shows), stubs for the others."""
    if argv[0] in COMMANDS:
        return build_parser(argv[0], full=False)
    return build_parser(DEFAULT_COMMAND if argv[0] in ("-h", "--help") else None, full=False)


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
            parser = _parser_for(argv)
        finally:
            gc.freeze()
            gc.enable()
    else:
        parser = _parser_for(argv)
    code = _main(parser, argv)
    if own_process and code == EXIT_INTERRUPTED:
        # The lock is released and the index closed by now, but workers may still be blocked in I/O until
        # their timeouts; the interpreter's exit would join them. Ctrl-C means now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if own_process:
        # The interpreter's shutdown runs the cyclic collector over every object the SDKs left (a visible share
        # of an unchanged rerun's CPU: docs/benchmarks.md) only to free memory the exit frees anyway. Everything that
        # needs closing (index, lock, connection pools) is closed by now; frozen objects are skipped.
        gc.freeze()
    return code


def exit_code_for(exc: BaseException) -> int:
    """The exit code a command ends with when ``exc`` escapes it (also what its run row records)."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, LockHeldError):
        return EXIT_LOCKED
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else EXIT_INTERNAL
    return EXIT_INTERNAL


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
            _print_traceback()
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
            _print_traceback()
        first = first_line(exc)
        print(
            f"azphotosync: internal error: {type(exc).__name__}: {first} (rerun with --verbose for details)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _print_traceback() -> None:
    """The current exception's traceback for --verbose, redacted: exception texts quote request URLs."""
    print(redact(traceback.format_exc()), end="", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
