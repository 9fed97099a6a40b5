"""The kernel of one student in its sandbox (sandbox.py), forked from the worker's zygote where there is one
(zygote.py): a jupyter_client kernel provisioner, the hook jupyter_client documents for launching kernels in an
environment of one's own, and the kernel manager that uses it.

Provisioners are normally named in a kernel spec and found through the `jupyter_client.kernel_provisioners`
entry point, which builds them with nothing but the kernel spec. Ours needs the student's sandbox and the
worker's state, so the kernel manager creates it with them and sets it as its `provisioner` before the kernel
starts: jupyter_client only looks a provisioner up when none is set (`KernelManager.pre_start_kernel`), so no
entry point is registered and no other kernel on the machine can be launched this way by accident.

Imports jupyter_client at module level: only the processes that launch kernels import this module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner

from autograder.grading import cgroups, zygote
from autograder.grading.run import WorkerState
from autograder.grading.sandbox import (
    SANDBOX_HOST_ID,
    SANDBOX_ID,
    Spec,
    kill_tree,
    own,
    prepare,
    sandbox_rlimits,
    teardown,
    wrap,
)
from autograder.submissions import SHADOWING_NAMES


class SandboxProvisioner(LocalProvisioner):  # type: ignore[misc]
    """Launches the kernel in `spec`'s sandbox (forked into it by the worker's zygote when it can), records it
    in the worker's state, and tears the sandbox down with the kernel."""

    def __init__(self, spec: Spec, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.state = state

    async def launch_kernel(self, cmd: list[str], **kw: Any) -> KernelConnectionInfo:
        spec, state = self.spec, self.state
        stage_work_folder(Path(str(kw.pop("cwd", "") or spec.work)), spec.work)
        kw["cwd"] = str(spec.work)
        argv = zygote.ipykernel_argv(list(cmd))
        forked = state.zygote is not None and spec.kind == "bwrap" and argv is not None
        if forked:
            try:
                await self._launch_forked(argv or [], dict(kw))
            except (zygote.ZygoteError, OSError) as exc:
                forked = False
                state.give_up_zygote(f"{type(exc).__name__}: {exc}")
                self._drop_placeholder()
        if not forked:
            wrapped, env = wrap(list(cmd), spec)
            kw["env"] = env
            # The kernel's own start-up chatter goes to a log outside its work folder.
            log = spec.conn / "kernel.log"
            with open(log, "a") as out:  # noqa: ASYNC230 - a local file
                out.write(" ".join(wrapped) + "\n")
            kw["stdout"] = kw["stderr"] = open(log, "ab")  # noqa: SIM115, ASYNC230 - the kernel holds it
            await super().launch_kernel(wrapped, **kw)
        kernel_id = str(self.parent.kernel_id) if self.parent is not None else str(self.kernel_id)
        state.launched.append((kernel_id, int(self.pid or 0), str(spec.work)))
        if forked:
            state.forked.add(kernel_id)
        return self.connection_info

    async def _launch_forked(self, argv: list[str], kw: dict[str, Any]) -> None:
        """The sandbox with a placeholder in it, then the kernel forked into it by the zygote (zygote.py)."""
        spec, log = self.spec, self.spec.conn / "kernel.log"
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
            await super().launch_kernel(cmd, **kw)
            close(keep_r, ready_w)  # the placeholder has its own copies
            zygote.read_line(ready_r, 30, "the sandbox")
            assert self.state.zygote is not None
            self.state.zygote.spawn({"target": zygote.sandbox_leaf(int(self.pid or 0)),
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

    def _drop_placeholder(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            kill_tree(process.pid, timeout=5)
            process.wait()

    async def cleanup(self, restart: bool = False) -> None:
        # A container outlives its killed `run` client, and a cgroup outlives its tasks: tear both down.
        await super().cleanup(restart=restart)
        if not restart:
            teardown(self.spec)


class SandboxKernelManager(AsyncKernelManager):  # type: ignore[misc]
    """A kernel in `spec`'s sandbox, reached over ipc sockets in its bound folder, launched by our provisioner."""

    def __init__(self, spec: Spec, state: WorkerState, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        prepare(spec)  # before anything is staged in the work folder (it may become a tmpfs)
        self.transport = "ipc"
        self.ip = str(spec.conn / "k")
        self.connection_file = str(spec.conn / "kernel.json")
        if self.kernel_spec is not None:
            # A signal to the sandbox's outer process would not reach the kernel in its own pid namespace and
            # session; ipykernel interrupts itself on an interrupt_request over the control channel, which is
            # what jupyter_client sends for a kernel spec whose interrupt mode is "message" (this manager's own
            # copy of the spec: the installed kernel.json is not touched).
            self.kernel_spec.interrupt_mode = "message"
        self.provisioner = SandboxProvisioner(spec, state, kernel_spec=self.kernel_spec, parent=self)
        self.spec = spec


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
