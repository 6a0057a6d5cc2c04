"""Adaptive parallelism: back off when the service pushes back, grow again when it is calm (AIMD).

The SDK pipeline already retries each throttled request (see :mod:`sync_core.clients`). Retrying alone
keeps the pressure on, though: eight workers that are each told "503 ServerBusy" come back eight at a time.
So every HTTP response is also reported to a :class:`ThrottleSignal` (the clients install it as the
pipeline's ``raw_response_hook``), and the sync pipeline's :class:`AdaptiveLimiter` listens: a throttling
answer halves the number of files in flight (at most once per cool-down, so one burst of 503s counts as
one signal); every ``limit`` successful responses add one back, up to the configured ``--max-workers``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

THROTTLE_STATUSES = frozenset({500, 503})
THROTTLE_ERROR_CODES = frozenset({"ServerBusy", "OperationTimedOut", "InternalError"})


class ThrottleListener(Protocol):
    def on_throttle(self) -> None: ...

    def on_success(self) -> None: ...


def is_throttle(status: int, error_code: str | None) -> bool:
    return status in THROTTLE_STATUSES or (status >= 500 and error_code in THROTTLE_ERROR_CODES)


class ThrottleSignal:
    """Fans out the pipeline's per-attempt responses to the listeners registered for the current run.

    One instance per process (:data:`THROTTLE`): the clients are created before the run that listens."""

    def __init__(self) -> None:
        self._listeners: list[ThrottleListener] = []
        self._lock = threading.Lock()

    def __call__(self, response: Any) -> None:
        """``raw_response_hook``: called by the SDK with each attempt's ``PipelineResponse``."""
        with self._lock:
            listeners = list(self._listeners)
        if not listeners:
            return
        http = response.http_response
        status = http.status_code
        if is_throttle(status, http.headers.get("x-ms-error-code")):
            for listener in listeners:
                listener.on_throttle()
        elif status < 400:
            for listener in listeners:
                listener.on_success()

    @contextlib.contextmanager
    def listening(self, listener: ThrottleListener) -> Iterator[None]:
        with self._lock:
            self._listeners.append(listener)
        try:
            yield
        finally:
            with self._lock:
                self._listeners.remove(listener)


THROTTLE = ThrottleSignal()


class AdaptiveLimiter:
    """A semaphore whose size follows AIMD between ``minimum`` and ``maximum``. Thread-safe."""

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = self.maximum
        self.cooldown = cooldown
        self.lowest = self.limit
        self._clock = clock
        self._in_use = 0
        self._successes = 0
        self._last_cut = float("-inf")
        self._cond = threading.Condition()
        self._changes: list[str] = []

    # -- slots -------------------------------------------------------------------------------------
    def acquire(self) -> None:
        with self._cond:
            while self._in_use >= self.limit:
                self._cond.wait()
            self._in_use += 1

    def release(self) -> None:
        with self._cond:
            self._in_use -= 1
            self._cond.notify()

    def __enter__(self) -> AdaptiveLimiter:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- feedback ----------------------------------------------------------------------------------
    def on_throttle(self) -> None:
        """Multiplicative decrease, once per cool-down."""
        with self._cond:
            now = self._clock()
            self._successes = 0
            if now - self._last_cut < self.cooldown:
                return
            self._last_cut = now
            new = max(self.minimum, self.limit // 2)
            if new != self.limit:
                self._changes.append(f"storage is throttling: parallelism {self.limit} -> {new}")
                self.limit = new
                self.lowest = min(self.lowest, new)

    def on_success(self) -> None:
        """Additive increase: one more slot per ``limit`` calm responses after the cool-down."""
        with self._cond:
            if self.limit >= self.maximum or self._clock() - self._last_cut < self.cooldown:
                return
            self._successes += 1
            if self._successes >= self.limit:
                self._successes = 0
                self._changes.append(f"storage is calm: parallelism {self.limit} -> {self.limit + 1}")
                self.limit += 1
                self._cond.notify()

    def drain_changes(self) -> list[str]:
        """The changes since the last call, as lines for ``--verbose``."""
        with self._cond:
            out, self._changes = self._changes, []
            return out
