"""Exceptions that carry a user-facing, one-line message, and the redaction every message goes through."""

from __future__ import annotations

import re

# Secrets that can reach a message: a connection string's account key or SAS, any URL's query string (a
# SAS rides there: ``sig=``, and the ``se``/``sp`` around it say what it grants), a bare SAS signature,
# an Authorization header's bearer token, and a JWT wherever it stands. The markers left in their place
# name what was removed without repeating the ``Key=`` forms secret scanners look for.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"AccountKey\s*=\s*[^;\s'\"]*", re.I), "[account key redacted]"),
    (re.compile(r"SharedAccessSignature\s*=\s*[^;\s'\"]*", re.I), "[SAS redacted]"),
    (re.compile(r"SharedAccessKey\s*=\s*[^;\s'\"]*", re.I), "[access key redacted]"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?'\"<>]*)\?[^\s'\"<>]*", re.I), r"\1?[query redacted]"),
    (re.compile(r"([?&;\s]|^)sig=[^&;\s'\"]*", re.I), r"\1sig=[redacted]"),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]+", re.I), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}(?:\.[A-Za-z0-9_-]*)?"), "[token redacted]"),
)


def redact(text: str) -> str:
    """``text`` without account keys, SAS tokens, URL query strings or bearer tokens. Every message that is
    shown or recorded (stderr, stdout, the index's runs and repair log, verification reports) passes here."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class ConfigError(Exception):
    """Bad configuration or usage: the run cannot start. The message says what to do (exit code 2).

    Its message is redacted when it is made: start-up errors quote endpoints, which carry a SAS."""

    def __init__(self, message: object = "") -> None:
        super().__init__(redact(str(message)))


class UnstorableNameError(ValueError):
    """A file name that Azure Blob Storage cannot store exactly; reported, never silently altered."""


def first_line(exc: BaseException, *, limit: int | None = None) -> str:
    """The first line of an exception's text, redacted: service errors carry multi-line XML and request
    URLs (with a SAS in their query), users get one clean line (at most ``limit`` characters, for records
    that travel between functions)."""
    lines = str(exc).strip().splitlines()
    line = redact(lines[0]) if lines else type(exc).__name__
    return line if limit is None else line[:limit]
