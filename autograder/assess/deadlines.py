"""Wall-clock deadlines for the assessment's HTTP requests, enforced on the trusted side.

httpx's timeouts bound each read, so a service that sends a byte (or an `HTTP/1.1 102` line) every few seconds
would never be given up on. Here every socket read and write of the assessment's clients is bounded by what is
left of the request's own deadline (targets.REQUEST_TIMEOUT_S for the whole answer) and of every budget open at
the time (`budget`: a hand-in's whole assessment, the time the machine-wide latency lock may be held). A budget
that ran out makes every later request fail at once with its reason, so the assessment ends and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Budget:
    """One open budget: until when (time.monotonic) and what to say once it has run out."""

    until: float
    reason: str
    ran_out: bool = False


# Open budgets, process-wide: the probes' worker threads (concurrency, throughput) are bound by them too.
_budgets: list[Budget] = []
_lock = threading.Lock()
_local = threading.local()  # the deadline of the request this thread is sending
_limits: list[tuple[float, str]] = []  # open per-request limits (seconds, reason), process-wide like the budgets


@contextmanager
def budget(seconds: float, reason: str) -> Iterator[Budget]:
    """Requests sent inside the block end by `seconds` from now; after that they fail with `reason`."""
    entry = Budget(time.monotonic() + seconds, reason)
    with _lock:
        _budgets.append(entry)
    try:
        yield entry
    finally:
        with _lock:
            _budgets.remove(entry)


@contextmanager
def request_limit(seconds: float, reason: str) -> Iterator[None]:
    """Each request started inside the block has at most `seconds` for its whole answer (a phase that expects
    quick answers, e.g. the unscored breakdown after the latency check passed), on every thread."""
    entry = (seconds, reason)
    with _lock:
        _limits.append(entry)
    try:
        yield
    finally:
        with _lock:
            _limits.remove(entry)


def for_request(timeout_s: float) -> tuple[float, str]:
    """The deadline (time.monotonic) of a request starting now, and what to say when it is reached."""
    until, why = time.monotonic() + timeout_s, f"no complete answer within {timeout_s:g} s (the whole answer's limit)"
    with _lock:
        for seconds, reason in _limits:
            if time.monotonic() + seconds < until:
                until, why = time.monotonic() + seconds, reason
        for entry in _budgets:
            if entry.until < until:
                until, why = entry.until, entry.reason
        for entry in _budgets:
            if entry.until <= time.monotonic():
                entry.ran_out = True
    return until, why


def set_current(until: float | None) -> None:
    _local.until = until


def remaining(timeout: float | None) -> float | None:
    """`timeout` (a read's or write's own) cut to what is left of this thread's request deadline."""
    until = getattr(_local, "until", None)
    if until is None:
        return timeout
    left = until - time.monotonic()
    with _lock:
        for entry in _budgets:
            if entry.until <= time.monotonic():
                entry.ran_out = True
    return left if timeout is None else min(timeout, left)


class _Stream:
    """A network stream whose every read and write ends by the request's deadline."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        import httpcore

        left = remaining(timeout)
        if left is not None and left <= 0:
            raise httpcore.ReadTimeout("the request's deadline passed")
        return self._inner.read(max_bytes, left)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        import httpcore

        left = remaining(timeout)
        if left is not None and left <= 0:
            raise httpcore.WriteTimeout("the request's deadline passed")
        self._inner.write(buffer, left)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        return _Stream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend:
    """httpcore's synchronous network backend, its streams bounded by the request's deadline."""

    def __init__(self) -> None:
        import httpcore

        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **kwargs: Any) -> Any:
        return _Stream(self._inner.connect_tcp(host, port, remaining(timeout), **kwargs))

    def connect_unix_socket(self, path: str, timeout: float | None = None, **kwargs: Any) -> Any:
        return _Stream(self._inner.connect_unix_socket(path, remaining(timeout), **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport() -> Any:
    """An httpx transport whose connections honour the deadlines. httpx takes no network backend itself, so its
    connection pool's is replaced; a test (test_pack_hostile) fails if a new httpx moves it."""
    import httpx

    made = httpx.HTTPTransport()
    pool = made._pool
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("httpcore's ConnectionPool has no _network_backend: the request deadlines cannot be set")
    pool._network_backend = _Backend()
    return made


def ran_out(outermost: bool = False) -> str:
    """The reason of an open budget that has run out ('' if none); with `outermost`, only the first one opened
    (the whole assessment's), not one a phase opened inside it."""
    now = time.monotonic()
    with _lock:
        for entry in _budgets[:1] if outermost else _budgets:
            if entry.ran_out or entry.until <= now:
                return entry.reason
    return ""
