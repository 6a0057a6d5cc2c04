"""Exceptions that carry a user-facing, one-line message."""


class ConfigError(Exception):
    """Bad configuration or usage: the run cannot start. The message says what to do (exit code 2)."""


class UnstorableNameError(ValueError):
    """A file name that Azure Blob Storage cannot store exactly; reported, never silently altered."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text: service errors carry multi-line XML, users get one line."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
