"""One readiness wait for every server the tools start: poll a probe until it answers, stop at once if the
process it waits for has exited, give up after a timeout.

Servers the workbook starts (JupyterLab, TorchServe, Airflow, a learner's container) offer no readiness signal to
their parent, so the parent polls. Watching the process as well is what a retry library's loop would not do: a
server that crashed during start-up ends the wait with its exit code instead of waiting out the timeout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import psutil

T = TypeVar("T")


class NotReady(TimeoutError):
    """The wait ended without a ready answer: `exit_code` is the process's code when it exited, None on timeout."""

    def __init__(self, what: str, timeout: float, waited: float, exit_code: int | None = None) -> None:
        self.what, self.timeout, self.waited, self.exit_code = what, timeout, waited, exit_code
        if exit_code is None:
            message = f"{what} was not ready within {timeout:g} s"
        else:
            message = f"{what} exited with code {exit_code} after {waited:.1f} s, before it was ready"
        super().__init__(message)


def exit_code_of(process: subprocess.Popen[Any] | psutil.Process) -> int | None:
    """The exit code of a `subprocess.Popen` or `psutil.Process` that has ended, else None (still running)."""
    if isinstance(process, subprocess.Popen):
        return process.poll()
    import psutil  # only callers that hand a psutil.Process pay for it

    try:
        code = process.wait(timeout=0)
    except psutil.TimeoutExpired:
        return None
    except psutil.NoSuchProcess:
        return -1  # gone, reaped by someone else: its code is not ours to know
    # psutil returns None for a process that is not our child once it is gone
    return -1 if code is None else int(code)


def wait_until(probe: Callable[[], T | None], *, process: subprocess.Popen[Any] | psutil.Process | None = None,
               timeout: float, what: str, interval: float = 0.2, max_interval: float | None = None,
               on_tick: Callable[[float], None] | None = None) -> T:
    """The first truthy answer of `probe()`, polled every `interval` seconds (growing by half each round up to
    `max_interval` when given). Raises NotReady naming `what` when `timeout` seconds pass, or at once when
    `process` (a Popen or psutil.Process) has exited. The probe is asked at least once; exceptions it raises end
    the wait (a probe that expects failures while the server starts catches them and returns None).
    `on_tick(seconds_waited)` runs before every round (progress lines)."""
    began = time.monotonic()
    delay = interval
    while True:
        waited = time.monotonic() - began
        if on_tick is not None:
            on_tick(waited)
        if process is not None:
            code = exit_code_of(process)
            if code is not None:
                raise NotReady(what, timeout, waited, code)
        answer = probe()
        if answer:
            return answer
        waited = time.monotonic() - began
        if waited >= timeout:
            raise NotReady(what, timeout, waited)
        time.sleep(min(delay, timeout - waited))
        if max_interval is not None:
            delay = min(delay * 1.5, max_interval)
