"""The kernels student code runs in: the work folder staged for each, the worker's zygote (zygote.py) and the
warm pool that starts the next student's kernel ahead. The kernel manager and its provisioner, which put each
kernel in its sandbox, are in provisioner.py.

Every kernel serves one student and is killed after; the worker's state (run.WorkerState) records them all in
`launched`, and in `forked` those that came from the zygote.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from autograder.grading import zygote
from autograder.grading.run import WorkerState
from autograder.grading.sandbox import Spec, kernel_env


def new_zygote(preimports: tuple[str, ...] = ()) -> zygote.Zygote:
    """A zygote with a kernel's environment and no sandbox of its own (the engine starts one per worker ahead,
    while it builds the batch); `preimports` from zygote.preimports_for."""
    return zygote.Zygote(kernel_env(Spec(work=Path("/nonexistent"), conn=Path("/nonexistent"))), preimports)


def start_zygote(state: WorkerState, ready: zygote.Zygote | None = None, preimports: tuple[str, ...] = ()) -> None:
    """Give this grading process a zygote (a worker of a bubblewrap batch): `ready`, or a new one."""
    if state.zygote is None and state.options.fork_kernels:
        state.zygote = ready or new_zygote(preimports)


def new_kernel_manager(spec: Spec, state: WorkerState, kernel_name: str = "python3") -> Any:
    """A kernel manager for a kernel in `spec`'s sandbox (provisioner.py)."""
    from autograder.grading.provisioner import SandboxKernelManager

    return SandboxKernelManager(spec, state, kernel_name=kernel_name)


# ---------------------------------------------------------------------------------------------- the warm pool

# A worker starts the next student's kernel ahead, in a fresh sandbox of its own, while it grades the current
# student (`WorkerState.warm`), so a kernel is ready when the next student is.
KERNEL_ARGS = ("--HistoryManager.hist_file=:memory:",)  # what nbgrader's Execute passes to a python kernel


def prestart(state: WorkerState, spec: Spec) -> None:
    from jupyter_core.utils import run_sync

    km = new_kernel_manager(spec, state)
    run_sync(km.start_kernel)(extra_arguments=list(KERNEL_ARGS), cwd=str(spec.work))
    state.warm.append((km, spec))


def take_warm(state: WorkerState) -> tuple[Any, Spec] | None:
    """A kernel started ahead and still alive, or None. It is removed from the pool: it serves one student."""
    from jupyter_core.utils import run_sync

    while state.warm:
        km, spec = state.warm.pop(0)
        try:
            if run_sync(km.is_alive)():
                return km, spec
        except Exception:  # noqa: BLE001, S110 - a dead or broken warm kernel is simply not used
            pass
        discard(km)
    return None


def discard(km: Any) -> None:
    from jupyter_core.utils import run_sync

    # Whatever fails here, it is being thrown away; its sandbox dies with its process.
    with contextlib.suppress(Exception):
        run_sync(km.shutdown_kernel)(now=True)
