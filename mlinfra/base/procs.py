"""Processes the tools start: a free port for a server, stopping a server's whole process group, and ending a set
of processes found earlier (a server started by an earlier command, recorded by pid).

Every server the workbook starts runs in its own session (`start_new_session=True`), so its process group id is
its pid and one signal reaches everything it forked (task processes, kernels, workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from typing import Any


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago, for a server process we start next.

    Racy (bound, released, handed on), and acceptable for servers we start ourselves: one that loses the port fails
    to bind and says so. Where a server can take a bound socket (uvicorn), pass the socket instead.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[Any], grace: float = 20.0) -> None:
    """Stop a process started in its own session and everything in its group: TERM, up to `grace` seconds, then
    KILL whatever the group still holds (also when the leader exited by itself but left children behind)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def end_processes(procs: list[Any], *, grace: float, terminate: bool = True) -> None:
    """End `procs` (psutil.Process objects found earlier): TERM each (unless `terminate` is False: the caller asked
    them to stop another way), wait up to `grace` seconds, KILL what is left, wait. psutil checks that each is still
    the process that was found, so a pid reused meanwhile is never signalled."""
    import psutil

    if terminate:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)
