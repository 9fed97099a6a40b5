"""Running a notebook in a fresh kernel and reading its graded cells (`run_notebook`): the engine behind
`autograder check` (autograder/check.py is the verb).

Execution errors become checks naming the failing cell, never a traceback wall (as nbmake does).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from autograder.labs import Lab
from mlinfra.base.results import (
    COMPLETED,
    ERROR,
    FAILED,
    KERNEL_DIED,
    NOT_RUN,
    PASSED,
    STOPPED,
    TIMEOUT,
    UNREADABLE,
    Check,
    Outcome,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


MAX_JSON_CONTAINERS = 300_000  # objects and arrays in one notebook's JSON (a lab's holds a few thousand)


def read_notebook(path: Path) -> Any:
    """Read a notebook, or raise UsageError naming the file and what is wrong with it."""
    import nbformat

    if not path.is_file():
        raise UsageError(f"{path}: no such notebook")
    with open(path, "rb") as fh:
        raw = fh.read()
    # Parsing and validating a JSON of millions of tiny objects costs the reader gigabytes (a 5.7 MB notebook of
    # `[{}, {}, ...]` metadata took a grader to 5 GB): count the brackets, an upper bound, before parsing.
    containers = raw.count(b"{") + raw.count(b"[")
    if containers > MAX_JSON_CONTAINERS:
        raise UsageError(f"{path}: holds {containers} JSON objects or arrays, more than the {MAX_JSON_CONTAINERS} a "
                         "notebook of this course needs; clear its outputs and metadata, or restore it from labs/")
    try:
        return nbformat.reads(raw.decode("utf-8", errors="replace"), as_version=4)
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as exc:
        raise UsageError(f"{path}: not a readable notebook ({str(exc).splitlines()[0][:120]}); "
                         "restore it from labs/ or your last good copy") from None
    except Exception as exc:  # noqa: BLE001 - nbformat raises a zoo of validation errors
        raise UsageError(f"{path}: not a valid notebook ({type(exc).__name__}: {str(exc)[:120]})") from None


def graded_cells(nb: Any) -> list[tuple[int, Any]]:
    return [(i, c) for i, c in enumerate(nb.cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            and c.cell_type == "code"]


# What a cell interrupted at its time limit shows: nbclient's own error, or the KeyboardInterrupt the interrupt raised.
TIMEOUT_ERRORS = frozenset({"CellTimeoutError", "KeyboardInterrupt", "TimeoutError"})


def cell_error(cell: Any) -> tuple[str, str] | None:
    """(exception name, its message) of the first error a code cell's outputs hold, None when it raised nothing.
    Self-check and grading both read results this way."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            name, value = out.get("ename", "Error"), _ANSI.sub("", out.get("evalue", ""))
            if not value.strip():  # a bare `raise NotImplementedError()` says nothing: name the function that raised
                frames = _FRAME.findall(_ANSI.sub("", "\n".join(out.get("traceback", []))))
                if frames:
                    stub = " (still the released stub: write it)" if name == "NotImplementedError" else ""
                    value = f"raised in {frames[-1]}(){stub}"
            return name, value
    return None


_FRAME = re.compile(r"(?:^|\n)(?:Cell In\[\d+\]|File [^\n]*), line \d+, in (?!<module>)(\w+)\(")


def cell_outcome(cell: Any, cell_timeout: float, *, timed_out: bool = False,
                 not_run: str = "never executed") -> tuple[str, str]:
    """(status, message) of a graded code cell after a run, the one classification self-check (run_notebook) and
    grading (grading/worker.py) share: interrupted at its time limit (`timed_out`, or the error an interrupt
    leaves) is TIMEOUT; an AssertionError FAILED; any other error ERROR; no count and no output NOT_RUN
    (`not_run` says why); else PASSED. Grading may then turn a PASSED into FAILED from nbgrader's score."""
    error = cell_error(cell)
    if timed_out or (error and error[0] in TIMEOUT_ERRORS):
        return TIMEOUT, f"ran past {cell_timeout} s and was interrupted"
    if error:
        return (FAILED if error[0] == "AssertionError" else ERROR), f"{error[0]}: {error[1]}".strip().rstrip(":")
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return NOT_RUN, not_run
    return PASSED, ""


def kill_now(km: Any) -> None:
    """SIGKILL the kernel's process group at once, as jupyter_client's own kill does, without its wait (a poll
    every 0.1 s). A sandboxed kernel's group is the sandbox's launcher: what runs inside dies with it
    (--die-with-parent, the pid namespace). The caller still reaps it (`shutdown_kernel` or a wait)."""
    import signal

    provisioner = getattr(km, "provisioner", None)
    pgid, process = getattr(provisioner, "pgid", None), getattr(provisioner, "process", None)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGKILL)
        elif process is not None:
            process.kill()
    except OSError:  # already gone
        pass


def _kill_and_reap(km: Any, timeout: float = 5.0) -> None:
    import subprocess

    kill_now(km)
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None:
        # A SIGKILLed process is gone in milliseconds; if not, jupyter_client's own kill and wait follow.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)


async def wait_until_ready(kc: Any, timeout: float, is_alive: Any) -> None:
    """Wait until the kernel behind client `kc` answers and its IOPub reaches us, without jupyter_client's
    `wait_for_ready` tail: after the answer it drains IOPub until 0.2 s pass in silence, 0.2 s of every kernel
    start on the critical path. Seeing the `idle` status of our own kernel_info request on IOPub proves the same
    thing (IOPub is subscribed, and our request left nothing behind); nbclient ignores IOPub messages whose
    parent is not its own request, so anything earlier is harmless. `is_alive` is the kernel manager's coroutine
    function; RuntimeError when the kernel dies or `timeout` seconds pass, as jupyter_client raises."""
    from queue import Empty

    deadline = time.monotonic() + timeout
    while True:
        msg_id = kc.kernel_info()
        reply = None
        try:
            while reply is None:  # skip replies to an earlier attempt
                msg = await kc.shell_channel.get_msg(timeout=1)
                if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
                    reply = msg
            # the status messages of this request on IOPub: a missed subscription shows as silence
            seen_by = time.monotonic() + 0.5
            while time.monotonic() < seen_by:
                msg = await kc.iopub_channel.get_msg(timeout=max(0.01, seen_by - time.monotonic()))
                if (msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"].get("execution_state") == "idle"):
                    kc._handle_kernel_info_reply(reply)
                    return
        except Empty:
            pass
        if not await is_alive():
            raise RuntimeError("Kernel died before replying to kernel_info")
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")


# What one message from a kernel may weigh, and how many may wait unread: the kernel is the student's process,
# and everything it sends is held in the grader's memory (docs/grading.md, "Bounded reading").
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_QUEUED_MESSAGES = 32


def _bound_messages(kc: Any) -> None:
    """Set the limits on the client's sockets before they are made: a larger message drops the connection (the
    kernel is then dead to us), and past the queue's length further output is dropped, never buffered."""
    import zmq

    kc.context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    kc.context.setsockopt(zmq.RCVHWM, MAX_QUEUED_MESSAGES)


async def start_ready_client(client: Any) -> Any:
    """nbclient's `async_start_new_kernel_client` with `wait_until_ready` in place of jupyter_client's wait:
    the same client, channels and clean-up on failure, 0.2 s sooner."""
    from jupyter_core.utils import ensure_async
    from nbclient.util import run_hook

    assert client.km is not None
    try:
        client.kc = client.km.client()
        _bound_messages(client.kc)
        await ensure_async(client.kc.start_channels())
        await wait_until_ready(client.kc, client.startup_timeout, client.km.is_alive)
    except Exception as exc:
        client.log.error(f"Error occurred while starting new kernel client for kernel "
                         f"{getattr(client.km, 'kernel_id', None)}: {exc}")
        await client._async_cleanup_kernel()
        raise
    client.kc.allow_stdin = False
    await run_hook(client.on_notebook_start, notebook=client.nb)
    return client.kc


def run_notebook(path: Path, lab: Lab) -> Outcome:
    """Run a copy of the notebook at `path` in a fresh kernel, with the lab's folder as the working directory.

    The file on disk is never modified. Each cell gets `lab.cell_timeout` seconds; a cell past it is
    interrupted and reported as a timeout, and the rest of the notebook still runs. The kernel is killed at the
    end rather than asked to shut down (a graceful shutdown costs up to seconds and nothing of it is kept).
    One check per graded cell; the outcome's status says how far the run got.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from autograder.nbgrader_course import ensure_venv_tools_on_path

    try:
        nb = read_notebook(path)
    except UsageError as exc:
        return Outcome(str(path), notes=[str(exc)], status=UNREADABLE)
    ensure_venv_tools_on_path()
    # As nbgrader's own validate does: lab cells that start servers or long demos skip themselves when set.
    os.environ["NBGRADER_EXECUTION"] = "validate"
    nb = copy.deepcopy(nb)
    timed_out: set[int] = set()

    def on_cell_error(cell: Any, cell_index: int, execute_reply: Any) -> None:
        return None

    from nbclient.util import run_sync

    class _ReadySoonerClient(NotebookClient):
        async def async_start_new_kernel_client(self) -> Any:
            return await start_ready_client(self)

        start_new_kernel_client = run_sync(async_start_new_kernel_client)

        async def _async_cleanup_kernel(self) -> None:
            if self.km is not None and self.km.has_kernel:
                _kill_and_reap(self.km)
            await super()._async_cleanup_kernel()

        _cleanup_kernel = run_sync(_async_cleanup_kernel)

    client = _ReadySoonerClient(
        nb, timeout=lab.cell_timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        resources={"metadata": {"path": str(path.parent)}}, on_cell_error=on_cell_error,
        shutdown_kernel="immediate",
    )
    status, reason = COMPLETED, ""
    timing = {"kernel start": 0.0, "cells": 0.0, "kernel kill": 0.0}
    started = time.monotonic()
    try:
        with client.setup_kernel():
            timing["kernel start"] = time.monotonic() - started
            for index, cell in enumerate(nb.cells):
                began = time.monotonic()
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    timed_out.add(index)
                finally:
                    timing["cells"] += time.monotonic() - began
            ended = time.monotonic()
        timing["kernel kill"] = time.monotonic() - ended
    except DeadKernelError as exc:
        status, reason = KERNEL_DIED, f"the kernel died ({str(exc)[:100]}): out of memory, or os._exit?"
    except CellTimeoutError:
        status, reason = STOPPED, f"a cell ran past {lab.cell_timeout} s"
    checks = []
    for index, cell in graded_cells(nb):
        meta = cell.metadata["nbgrader"]
        max_points = float(meta.get("points", 0))
        cell_status, message = cell_outcome(cell, lab.cell_timeout, timed_out=index in timed_out,
                                            not_run=reason or "never executed")
        checks.append(Check(meta.get("grade_id", f"cell-{index + 1}"), cell_status,
                            max_points if cell_status == PASSED else 0.0, max_points, message, f"cell {index + 1}"))
    if timed_out and status == COMPLETED:
        reason = f"{len(timed_out)} cell(s) ran past {lab.cell_timeout} s"
    timing = {k: round(v, 3) for k, v in timing.items()}
    return Outcome(str(path), checks, notes=[reason] if reason else [], status=status, data={"timing": timing})
