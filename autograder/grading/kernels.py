"""The kernels student code runs in: the work folder staged for each, the worker's zygote (zygote.py) and the
warm pool that starts the next student's kernel ahead. The kernel manager and its provisioner, which put each
kernel in its sandbox, are in provisioner.py.

Every kernel serves one student and is killed after; the worker's state (run.WorkerState) records them all in
`launched`, and in `forked` those that came from the zygote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from autograder.grading import zygote
from autograder.grading.run import WorkerState
from autograder.grading.sandbox import SANDBOX_HOST_ID, Spec, kernel_env
from autograder.submissions import SHADOWING_NAMES


def stage_work_folder(source: Path, work: Path) -> None:
    """Copy the lab's files nbgrader prepared in `source` (the student's editable files, the lab's others) into
    the kernel's own work folder: no notebook (the one nbgrader runs holds the hidden tests), no symlinks."""
    if source.resolve() == work.resolve() or not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_symlink() or path.suffix == ".ipynb" or rel.parts[0] in SHADOWING_NAMES:
            continue
        dest = work / rel
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        else:
            continue
        if os.geteuid() == 0:  # the student's code runs as the sandbox's user and may change its own files
            os.chown(dest, SANDBOX_HOST_ID, SANDBOX_HOST_ID, follow_symlinks=False)


def new_zygote(preimports: tuple[str, ...] = ()) -> zygote.Zygote:
    """A zygote with a kernel's environment and no sandbox of its own (the engine starts one per worker ahead,
    while it builds the batch); `preimports` from zygote.preimports_for."""
    return zygote.Zygote(kernel_env(Spec(work=Path("/nonexistent"), conn=Path("/nonexistent"))), preimports)


def start_zygote(state: WorkerState, ready: zygote.Zygote | None = None, preimports: tuple[str, ...] = ()) -> None:
    """Give this grading process a zygote (a worker of a bubblewrap batch): `ready`, or a new one."""
    if state.zygote is None and state.options.fork_kernels:
        state.zygote = ready or new_zygote(preimports)


def stop_zygote(state: WorkerState) -> None:
    if state.zygote is not None:
        state.zygote.close()
        state.zygote = None


def give_up_zygote(state: WorkerState, why: str) -> None:
    """The zygote failed: kernels are started the usual way from now on in this process."""
    state.zygote_failed.append(why)
    stop_zygote(state)


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
