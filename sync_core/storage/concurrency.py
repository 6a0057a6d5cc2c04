"""Adaptive parallelism: back off when the service pushes back, grow again when it is calm (AIMD); and
stop altogether when it does not answer at all.

The SDK pipeline already retries each throttled request (see :mod:`sync_core.storage.clients`). Retrying alone
keeps the pressure on, though: eight workers that are each told "503 ServerBusy" come back eight at a time.
So every HTTP response is also reported to a :class:`ThrottleSignal` (the clients install it as the
pipeline's ``raw_response_hook``), and the sync pipeline's :class:`AdaptiveLimiter` listens: a throttling
answer halves the number of files in flight (at most once per cool-down, so one burst of 503s counts as
one signal); every ``limit`` successful responses add one back, up to the configured ``--max-workers``.

A service that does not answer at all (connections refused or timing out, requests never answered) is
another matter: waiting helps nobody, and each file would otherwise spend its whole retry budget on its own.
The retry policies report every such failure to the same signal; an :class:`OutageWatch` listening for the
run decides when the service is known to be unreachable, and from then on the retry policies stop retrying,
so the run ends within seconds and says so once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from sync_core.errors import first_line

UNREACHABLE_AFTER = 8  # failures in a row, across all requests, with no answer in between...
UNREACHABLE_SECONDS = 120.0  # ...or at least three of them spread over this long (one slow worker)

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

    def on_transport_failure(self, error: BaseException) -> None:
        """Called by the retry policies when an attempt got no answer (connect or read failure, timeout)."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            report = getattr(listener, "on_transport_failure", None)
            if report is not None:
                report(error)

    def unreachable(self) -> bool:
        """True when a run listening has found the service unreachable: retrying is pointless."""
        with self._lock:
            return any(getattr(listener, "tripped", False) for listener in self._listeners)

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


class OutageWatch:
    """Decides, for one run, that the service is unreachable: :data:`UNREACHABLE_AFTER` attempts in a row got
    no answer, or three or more did over :data:`UNREACHABLE_SECONDS`, with no answer in between. Any answer
    (even a throttling one) starts the count again; once tripped it stays tripped. Thread-safe.

    Only failures count, never slowness: on a slow uplink many blocks may be in flight for minutes without
    an answer, and that is not an outage."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._streak = 0
        self._since = 0.0
        self.tripped = False
        self.last_error = ""

    def on_transport_failure(self, error: BaseException) -> None:
        with self._lock:
            now = self._clock()
            if self._streak == 0:
                self._since = now
            self._streak += 1
            self.last_error = first_line(error)
            if self._streak >= UNREACHABLE_AFTER or (self._streak >= 3 and now - self._since >= UNREACHABLE_SECONDS):
                self.tripped = True

    def on_success(self) -> None:
        with self._lock:
            self._streak = 0

    on_throttle = on_success  # a throttling answer is still an answer

    def describe(self) -> str:
        """One line for the user, once."""
        with self._lock:
            return f"storage is not answering ({self._streak} requests in a row failed; last: {self.last_error})"


# The longest a main thread sleeps waiting on its workers. The kernel may deliver a process's SIGINT to any
# thread, and Python runs the handler in the main thread only when that thread next runs.
WAKE_SECONDS = 0.5


@contextlib.contextmanager
def abandoning_pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor]:
    """A thread pool that is waited for when its block ends normally, and abandoned (queued work cancelled,
    running work left to end on its own) when an exception ends it: Ctrl-C must not wait for a worker
    blocked in I/O until its timeouts run out."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
