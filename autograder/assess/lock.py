"""One latency probe at a time on this machine: every `assess`, every deploy check's, every grading worker's latency
probes take this lock, since two services timed at once would each count the other's load. The holder writes its
pid and start time into the lock file, so that a waiting assessment can say whom it waits for.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


LOCK_PATH = "/tmp/mlinfra-assess-latency.lock"
LOCK_WAIT_S = 900.0
# The longest an assessment holds the lock for its latency probes (or its breakdown): its requests fail after it,
# so a service that trickles its answers cannot keep every other assessment on the machine waiting. An honest
# service needs well under a minute; a busy machine's re-measured rounds a few.
LOCK_HOLD_S = 300.0


@contextmanager
def latency_lock(path: str = LOCK_PATH, wait_s: float = LOCK_WAIT_S) -> Iterator[float]:
    """One latency probe at a time on this machine (every `assess`, every deploy check's, every grading worker's):
    two services timed at once would each count the other's load. Yields the seconds waited; after `wait_s` it
    goes on without the lock (a holder that hangs cannot stop grading), and the calibration then shows the load."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # no shared temporary folder: nothing to coordinate with
        yield 0.0
        return
    start = time.monotonic()
    try:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                _mark_holder(fd)
                break
            except BlockingIOError:
                if not said:
                    say(f"waiting for another assessment's latency probes to finish ({_holder(fd)}; one at a "
                        f"time on a machine, at most {wait_s:g} s, then measured beside it)")
                    said = True
                if time.monotonic() - start > wait_s:
                    say(f"waited {wait_s:g} s for the latency lock ({_holder(fd)}): measuring beside it")
                    break
                time.sleep(0.1)
        yield time.monotonic() - start if said else 0.0
    finally:
        os.close(fd)  # releases the lock


def _mark_holder(fd: int) -> None:
    """Who holds the lock and since when, for a waiting assessment to say (best effort: the lock is the flock)."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
    except OSError:
        pass


def _holder(fd: int) -> str:
    try:
        pid, since = os.pread(fd, 64, 0).decode().split()
        return f"pid {int(pid)} has held it for {max(0.0, time.time() - float(since)):.0f} s"
    except (OSError, ValueError):
        return "held by another process"
