"""Exceptions that carry a user-facing, one-line message."""


class ConfigError(Exception):
    """Bad configuration or usage: the run cannot start. The message says what to do (exit code 2)."""


class UnstorableNameError(ValueError):
    """A file name that Azure Blob Storage cannot store exactly; reported, never silently altered."""
