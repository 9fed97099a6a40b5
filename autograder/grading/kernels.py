"""The kernels student code runs in: a jupyter_client kernel manager that puts each kernel in its sandbox
(sandbox.py), forked from the worker's zygote where there is one (zygote.py), and the warm pool that starts the
next student's kernel ahead.

A grading worker sets `CURRENT` to the student's sandbox before nbgrader starts the kernel (nbgrader builds its own
kernel manager, so the sandbox cannot be passed down as an argument). Every kernel serves one student and is killed
after; `LAUNCHED` records them all, `FORKED` those that came from the zygote.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from autograder.grading import cgroups, zygote
from autograder.grading.sandbox import (
    SANDBOX_HOST_ID,
    SANDBOX_ID,
    Spec,
    kernel_env,
    kill_tree,
    own,
    prepare,
    sandbox_rlimits,
    teardown,
    wrap,
)
from autograder.submissions import SHADOWING_NAMES

# ---------------------------------------------------------------------------------------------- the kernel manager

# The sandbox the next kernel gets. A grading worker grades one student at a time and sets it before nbgrader
# starts the kernel (nbgrader builds its own kernel manager, so the spec cannot be passed down as an argument).
CURRENT: Spec | None = None
# Every kernel launched in this process, as (kernel id, pid of its sandbox, work folder): the warm-pool test and
# the end-of-batch check read it.
LAUNCHED: list[tuple[str, int, str]] = []


def _kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """A kernel in `CURRENT`'s sandbox, reached over ipc sockets in its bound folder."""

        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            spec = CURRENT
            if spec is None:
                raise RuntimeError("no sandbox set for this kernel (autograder.grading.sandbox.CURRENT)")
            self._spec = spec
            prepare(spec)  # before anything is staged in the work folder (it may become a tmpfs)
            self.transport = "ipc"
            self.ip = str(spec.conn / "k")
            self.connection_file = str(spec.conn / "kernel.json")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: object) -> None:
            stage_work_folder(Path(str(kw.pop("cwd", "") or self._spec.work)), self._spec.work)
            kw["cwd"] = str(self._spec.work)
            argv = zygote.ipykernel_argv(list(kernel_cmd))
            forked = ZYGOTE is not None and self._spec.kind == "bwrap" and argv is not None
            if forked:
                try:
                    await self._launch_forked(argv or [], dict(kw))
                except (zygote.ZygoteError, OSError) as exc:
                    forked = False
                    _give_up_zygote(f"{type(exc).__name__}: {exc}")
                    await self._drop_placeholder()
            if not forked:
                cmd, env = wrap(list(kernel_cmd), self._spec)
                kw["env"] = env
                # The kernel's own start-up chatter goes to a log outside its work folder.
                log = self._spec.conn / "kernel.log"
                with open(log, "a") as out:  # noqa: ASYNC230 - a local file
                    out.write(" ".join(cmd) + "\n")
                kw["stdout"] = kw["stderr"] = open(log, "ab")  # noqa: SIM115, ASYNC230 - the kernel holds it
                await super()._async_launch_kernel(cmd, **kw)
            pid = getattr(self.provisioner, "pid", None) or 0
            LAUNCHED.append((str(self.kernel_id), int(pid), str(self._spec.work)))
            if forked:
                FORKED.add(str(self.kernel_id))

        async def _launch_forked(self, argv: list[str], kw: dict[str, object]) -> None:
            """The sandbox with a placeholder in it, then the kernel forked into it by the zygote (zygote.py)."""
            spec, log = self._spec, self._spec.conn / "kernel.log"
            cmd, env = wrap(list(zygote.PLACEHOLDER), spec)
            kernel_vars = dict(env)  # jupyter_client adds its own (JPY_PARENT_PID) to the dict it launches with
            log.write_text(" ".join(cmd) + "\n" + "kernel: forked by the worker's zygote into this sandbox\n")
            own(spec)  # the kernel, once it is the sandbox's user, appends to its log and reads its connection file
            keep_r, keep_w = os.pipe()
            ready_r, ready_w = os.pipe()
            status_r, status_w = os.pipe()
            ours = {keep_r, keep_w, ready_r, ready_w, status_r, status_w}  # closed here once each is handed on

            def close(*fds: int) -> None:
                for fd in fds:
                    ours.discard(fd)
                    os.close(fd)

            try:
                kw.update(env=env, stdin=keep_r, stdout=ready_w,
                          stderr=open(log, "ab"))  # noqa: SIM115, ASYNC230 - the placeholder holds it
                await super()._async_launch_kernel(cmd, **kw)
                close(keep_r, ready_w)  # the placeholder has its own copies
                zygote.read_line(ready_r, 30, "the sandbox")
                assert ZYGOTE is not None
                ZYGOTE.spawn({"target": zygote.sandbox_leaf(int(self.provisioner.pid)),  # type: ignore[union-attr]
                              "procs": [str(p) for p in cgroups.procs(spec.name)],
                              "ids": [SANDBOX_ID, SANDBOX_ID], "rlimits": sandbox_rlimits(spec),
                              "env": kernel_vars, "cwd": str(spec.work), "log": str(log), "argv": argv},
                             keep_w, status_w)
                close(keep_w, status_w)  # the kernel holds them now
                answer = zygote.read_line(status_r, 30, "the zygote's kernel")
            finally:
                close(*ours)
            if answer != "ok":
                raise zygote.ZygoteError(answer)

        async def _drop_placeholder(self) -> None:
            process = getattr(self.provisioner, "process", None)
            if process is not None and process.poll() is None:
                kill_tree(process.pid, timeout=5)
                process.wait()

        async def _async_interrupt_kernel(self) -> None:
            # A signal to the sandbox's outer process would not reach the kernel in its own pid namespace and
            # session; ipykernel interrupts itself on an interrupt_request over the control channel.
            if self.has_kernel:
                msg = self.session.msg("interrupt_request", content={})
                self._connect_control_socket()
                self.session.send(self._control_socket, msg)
            else:
                await super()._async_interrupt_kernel()

        interrupt_kernel = _async_interrupt_kernel  # the base class binds its own at class creation

        async def _async_kill_kernel(self, restart: bool = False) -> None:
            # A container outlives its killed `run` client, and a cgroup outlives its tasks: tear both down.
            await super()._async_kill_kernel(restart=restart)
            teardown(self._spec)

    return SandboxKernelManager


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


# Whether a bubblewrap batch's workers fork their kernels from a zygote (bench/bench_grading.py turns it off to
# measure the difference in one run).
FORK_KERNELS = True
# The worker's zygote (zygote.py), when it has one: bubblewrap kernels are forked from it instead of started.
ZYGOTE: zygote.Zygote | None = None
# Why the zygote was given up in this process, if it was (kernels are then started the usual way).
ZYGOTE_FAILED: list[str] = []
# The ids of the kernels launched in this process that were forked from the zygote.
FORKED: set[str] = set()


def new_zygote(preimports: tuple[str, ...] = ()) -> zygote.Zygote:
    """A zygote with a kernel's environment and no sandbox of its own (the engine starts one per worker ahead,
    while it builds the batch); `preimports` from zygote.preimports_for."""
    return zygote.Zygote(kernel_env(Spec(work=Path("/nonexistent"), conn=Path("/nonexistent"))), preimports)


def start_zygote(ready: zygote.Zygote | None = None, preimports: tuple[str, ...] = ()) -> None:
    """Give this process a zygote (a grading worker, for a bubblewrap batch): `ready`, or a new one."""
    global ZYGOTE
    if ZYGOTE is None and FORK_KERNELS:
        ZYGOTE = ready or new_zygote(preimports)


def stop_zygote() -> None:
    global ZYGOTE
    if ZYGOTE is not None:
        ZYGOTE.close()
        ZYGOTE = None


def _give_up_zygote(why: str) -> None:
    ZYGOTE_FAILED.append(why)
    stop_zygote()


def kernel_manager_class() -> type:
    global _KM_CLASS
    if _KM_CLASS is None:
        _KM_CLASS = _kernel_manager_class()
    return _KM_CLASS


_KM_CLASS: type | None = None


# ---------------------------------------------------------------------------------------------- the warm pool

# Kernels started ahead in this process, each in a fresh sandbox of its own that no student has touched: a worker
# starts the next one while it grades the current student, so a kernel is ready when the next student is. Each
# is taken ONCE (`take_warm`), used for one student and killed; none is ever handed to a second student.
WARM: list[tuple[object, Spec]] = []
KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]  # what nbgrader's Execute passes to a python kernel


def prestart(spec: Spec) -> None:
    from jupyter_core.utils import run_sync

    global CURRENT
    saved, CURRENT = CURRENT, spec
    try:
        km = kernel_manager_class()(kernel_name="python3")
        run_sync(km.start_kernel)(extra_arguments=list(KERNEL_ARGS), cwd=str(spec.work))
    finally:
        CURRENT = saved
    WARM.append((km, spec))


def take_warm() -> tuple[object, Spec] | None:
    """A kernel started ahead and still alive, or None. It is removed from the pool: it serves one student."""
    from jupyter_core.utils import run_sync

    while WARM:
        km, spec = WARM.pop(0)
        try:
            if run_sync(km.is_alive)():  # type: ignore[attr-defined]
                return km, spec
        except Exception:  # noqa: BLE001, S110 - a dead or broken warm kernel is simply not used
            pass
        discard(km)
    return None


def discard(km: object) -> None:
    from jupyter_core.utils import run_sync

    # Whatever fails here, it is being thrown away; its sandbox dies with its process.
    with contextlib.suppress(Exception):
        run_sync(km.shutdown_kernel)(now=True)  # type: ignore[attr-defined]
