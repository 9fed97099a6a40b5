"""A learner's app under uvicorn inside the grading sandbox, for `assess --pack` and `assess --app --sandbox`.

What the app sees (autograder.grading.sandbox, the same sandbox as a graded kernel): the interpreter, the venv and
the course library (mlinfra) read-only, the course model folder read-only, the launcher script alone, and one
writable folder of its own holding a copy of its service folder (its cwd and HOME). Not the home folder, the rest
of the repository (the grader's own code, autograder/, included: the probes' order is the grader's business),
solutions/, the gradebook, other hand-ins or the grader's environment (the environment is cleared); /etc/passwd,
/etc/group and /etc/hosts are the sandbox's own (its user and root), not the host's. It has no network: its own network namespace,
where uvicorn serves on a listening unix socket that the trusted side bound (in a folder of its own, never shown to
the sandbox) and handed down as a file descriptor; a relay on the host's 127.0.0.1 forwards the probes' TCP
connections to that socket. A socket crosses a network namespace, TCP does not; and since the sandbox can write
nothing on the socket's path, it cannot point the trusted relay at another socket of the host. Everything
it starts lives in its pid namespace and cgroup, so stopping the sandbox ends every process, daemons included.
The probes, the score and the report stay on the trusted side, and the report is written after the sandbox is gone.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MEMORY_MB = 4096
CPU_SECONDS = 1800  # the app's CPU time over the whole assessment (warm-up, latency rounds, breakdown)
FILE_MB = 64  # the largest file the app may write (its log included)
PROCESSES = 512  # tasks, threads included: torch's pools and uvicorn's
DISK_MB = 512  # its own folder and each of its tmpfs folders (/tmp, /run, /var/tmp)
LOG_TAIL_BYTES = 64 * 1024
MODEL_INSIDE = "/course-model"  # where the sandbox sees the course model folder (read-only), $MLINFRA_MODEL_DIR
# The launcher (uvicorn_on_fd.py, standard library and uvicorn only) bound alone: the rest of autograder/ is not shown.
LAUNCHER_INSIDE = "/course-launcher/launch.py"


class SandboxedServer:
    """The same face as server.UvicornServer (start, url, proc, exit_code, log_tail, close), with the app inside
    the sandbox. `service` is the app's folder (a private copy is made inside the sandbox's own folder), `module`
    the module uvicorn imports from it, `model_dir` the model folder the app may read."""

    def __init__(self, service: Path | None, module: str, attr: str, model_dir: Path | None, kind: str = "bwrap") -> None:
        self.service, self.module, self.attr, self.kind = service, module, attr, kind
        self.model_dir = model_dir
        self.root = Path(tempfile.mkdtemp(prefix="assess-sbx-"))
        # The sandbox's name derives from its work folder's grandparent (sandbox.Spec.name): one per assessment.
        self.work = self.root / "sandboxes" / "app" / "home"
        # A short folder of its own: a unix socket path must fit in 107 bytes.
        self.conn = Path(tempfile.mkdtemp(prefix="ag-app-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.log_path = self.root / "server.log"  # outside every folder the sandbox can see
        # A short path too (a unix socket's must fit in 107 bytes), outside every folder the sandbox can see.
        self.relay_dir = self.conn.with_name(self.conn.name + "-relay")
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay: Any = None
        self.spec: Any = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"

    def start(self) -> None:
        from autograder.assess.handin import copy_folder
        from autograder.grading import sandbox
        from autograder.relay import launch_relayed
        from mlinfra.modelstore import MODEL_DIR_ENV

        app_dir = self.work / "service"
        app_dir.mkdir(parents=True)
        if self.service is not None:  # else a module of the course packages (e.g. mlinfra.service:app)
            # The hand-in's limits, links never followed: the sandbox gets a private copy. A HandinProblem here
            # is the hand-in's outcome (assessment.assess_pack), or the caller's own app's (--app: a UsageError there).
            copy_folder(self.service, app_dir, [])
        from autograder.assess import uvicorn_on_fd

        # the course library alone on the path: the grader's code is not bound here
        env = {"PYTHONUNBUFFERED": "1", "PYTHONPATH": sandbox.course_pythonpath(grader_code=False)}
        moved = ((str(Path(str(uvicorn_on_fd.__file__)).resolve()), LAUNCHER_INSIDE),
                 *sandbox.identity_files(self.root / "etc", self.work))
        if self.model_dir is not None and self.model_dir.is_dir():
            # at a fixed path inside: the app never learns where the instructor keeps the model
            env[MODEL_DIR_ENV] = MODEL_INSIDE
            moved += ((str(self.model_dir.resolve()), MODEL_INSIDE),)
        self.spec = sandbox.Spec(work=self.work, conn=self.conn, kind=self.kind,
                                 limits=sandbox.Limits(memory_mb=MEMORY_MB, cpu_seconds=CPU_SECONDS, file_mb=FILE_MB,
                                                       processes=PROCESSES, disk_mb=DISK_MB),
                                 moved=moved, env=env, grader_code=False,
                                 # its folder a size-capped tmpfs (a root grader): many files cannot fill the disk
                                 tmpfs_home=True)
        path = self.relay_dir / "app.sock"
        self.relay_dir.mkdir(mode=0o700)
        app = self.target

        def inner(fd: int) -> list[str]:  # uvicorn, inside, serves on the socket we bound
            return [sys.executable, LAUNCHER_INSIDE, app, "--fd", str(fd), "--app-dir", str(app_dir)]

        self.proc, self.relay = launch_relayed(path, inner, lambda cmd: sandbox.wrap(cmd, self.spec), self.log_path)
        self.port = self.relay.port

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines the app wrote (read from the end: the app decides how much it writes)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        from mlinfra.base.output import printable

        # The app wrote these: its control characters (escape sequences) are shown, never sent to a terminal.
        return [printable(line)[:400] for line in text.splitlines() if line.strip()][-lines:]

    def stop(self) -> None:
        """Every process of the sandbox: bubblewrap and its pid namespace by pid, then the sandbox's cgroup (what
        left the namespace's tree still dies there), then the relay."""
        from autograder.grading.sandbox import kill_tree, teardown

        if self.proc is not None:
            if self.proc.poll() is None:
                kill_tree(self.proc.pid, timeout=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self.spec is not None:
            teardown(self.spec)
        if self.relay is not None:
            self.relay.close()
            self.relay = None

    def close(self) -> None:
        from autograder.grading.sandbox import release_connection

        self.stop()
        release_connection(self.conn)  # its tmpfs unmounted (a root grader mounts one), then removed
        shutil.rmtree(self.relay_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SandboxedServer:  # noqa: PYI034 - never subclassed: the concrete type reads plainer than Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sandbox_kind(requested: str) -> str:
    """The sandbox to run a learner's app in for --sandbox `requested` (auto|bwrap|none), or UsageError saying what
    to install. Only bubblewrap is supported here: the app must be reached through a socket bound into it."""
    from autograder.errors import UsageError
    from autograder.grading.sandbox import bwrap_works

    if requested == "none":
        return "none"
    if requested not in ("auto", "bwrap"):
        raise UsageError(f"--sandbox {requested!r}: choose auto, bwrap or none")
    why = bwrap_works()
    if why:
        raise UsageError(f"cannot sandbox the learner's app: {why}. Install bubblewrap with `make sandbox` (root, "
                         "Debian/Ubuntu: apt-get install bubblewrap), or pass --sandbox none to run it unsandboxed "
                         "as yourself (only for your own app: it could read and write whatever you can)")
    return "bwrap"
