"""``--bwlimit``: one token bucket shared by every worker caps the bytes per second a run sends or fetches.

The transfer stages call :meth:`TokenBucket.consume` with the size of each block *before* sending it (or
after receiving a downloaded chunk). A block may be larger than the bucket: the bucket then goes into
debt and the next caller waits it off, so the long-run rate is the limit whatever the block size, and a
short burst is at most one second's worth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sync_core.errors import ConfigError
from sync_core.sizes import parse_size


def parse_rate(text: str) -> int:
    """Bytes per second from ``"500KB"``, ``"10MB"``, ``"2MiB/s"`` (decimal or binary units, as
    :func:`~sync_core.sizes.parse_size` reads them); :class:`ConfigError` for anything else or zero."""
    clean = text.strip()
    if clean.lower().endswith("/s"):
        clean = clean[:-2]
    try:
        rate = parse_size(clean, what="rate")
    except ConfigError:
        rate = 0
    if rate <= 0:
        raise ConfigError(f"invalid rate {text!r}: use bytes per second like 500KB, 10MB or 2MiB")
    return rate


class TokenBucket:
    """A thread-safe token bucket: ``rate`` bytes per second, bursts of up to ``burst`` bytes."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def consume(self, nbytes: int) -> float:
        """Take ``nbytes`` from the bucket, waiting as long as the limit requires; returns the wait."""
        if nbytes <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    __call__ = consume  # usable directly as ``Transfer(read_hook=bucket)``


def limiter(rate: int | None) -> TokenBucket | None:
    """The bucket for a ``--bwlimit`` value, or ``None`` for "unlimited"."""
    return TokenBucket(rate) if rate else None
