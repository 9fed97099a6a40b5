"""The sandbox around student code: every kernel, and everything it starts, runs under bubblewrap.

What the kernel sees (docs/grading.md, "Threat model"): the interpreter, the venv and the course packages
read-only, the system's /usr read-only (Java included, for the TorchServe lab), one writable work folder of its own
(cwd and HOME), and a folder holding its connection file and ipc sockets. It does not see the repository,
solutions/, the source notebook, the gradebook, other students or the grader's processes (own pid namespace), and
has no network (own network namespace; loopback is up). Limits on memory, CPU seconds and file size are set with
prlimit before bwrap execs, so the kernel and all it starts inherit them. The kernel talks to the trusted side
(nbgrader's executor, outside) over the Jupyter protocol on ipc sockets in the bound folder: TCP to the host's
127.0.0.1 cannot cross a network namespace.

Where bubblewrap is missing, a container engine gives the same view (containers.py). Either way the kernel and
everything it starts share one process limit that also holds for a root grader: a pids cgroup around bubblewrap
(cgroups.py), the engine's `--pids-limit` around a container.

Recipe and pitfalls (measured, docs/grading.md "Sandbox recipe"): ipc transport; `--unsetenv JPY_PARENT_PID`
(in a new pid namespace the parent is pid 1 and ipykernel's parent poller would shut the kernel down);
`--tmpfs /tmp` before any bind under /tmp; the base interpreter (sys.base_prefix) bound as well as the venv.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from autograder.errors import UsageError
from autograder.grading import cgroups, containers, zygote
from autograder.submissions import SHADOWING_NAMES

SANDBOXES = ("auto", "bwrap", "container", "none")
# The system folders a kernel may read (the TorchServe lab runs Java from /usr/lib/jvm).
_RO_SYSTEM = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
              "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/hosts", "/etc/nsswitch.conf",
              "/etc/passwd", "/etc/group", "/etc/java-17-openjdk", "/etc/fonts", "/etc/mime.types")
_MERGED_USR = ("bin", "sbin", "lib", "lib64", "lib32")



@dataclass
class Limits:
    memory_mb: int = 4096
    cpu_seconds: int = 600
    file_mb: int = 256  # the largest single file the kernel may write
    processes: int = 256  # tasks, threads included (torch starts a pool): a pids cgroup, or RLIMIT_NPROC


@dataclass
class Spec:
    """One kernel's sandbox: where it may write, where its sockets live, what it may read, its limits."""

    work: Path  # writable: cwd and HOME
    conn: Path  # connection file and ipc sockets
    limits: Limits = field(default_factory=Limits)
    kind: str = "bwrap"  # "bwrap", "container" or "none"
    readonly: tuple[str, ...] = ()  # extra read-only binds (same path inside)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The sandbox's name (its cgroup, its container), derived from its work folder: whoever knows the folder
        can tear the sandbox down, even after the process that started it died. It starts with the prefix of the
        folder holding the batch's sandboxes (`batch_prefix`), so one batch's sandboxes can be swept at once."""
        return batch_prefix(self.work.parent.parent) + _digest(self.work, 12)


def _digest(path: Path, size: int) -> str:
    return hashlib.sha1(str(path).encode()).hexdigest()[:size]


def batch_prefix(sandboxes: Path) -> str:
    """The name prefix of every sandbox whose folder is under `sandboxes` (a batch's work/sandboxes/<id>/home)."""
    return f"mlinfra-sbx-{_digest(sandboxes, 8)}-"


@lru_cache(maxsize=1)
def bwrap_works() -> str:
    """'' when bubblewrap can start a sandbox here, else why not (one line)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        proc = subprocess.run([exe, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                               "/bin/true"], capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start: {exc}"
    if proc.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {proc.stderr.decode(errors='replace').strip()[:150]}"
    return ""


def container_works() -> str:
    """'' when a container engine can run the container sandbox here, else why not (one line)."""
    return containers.engine_or_reason()[1]


def choose(requested: str) -> str:
    """The sandbox to use for `requested` (auto|bwrap|container|none), or UsageError saying what to install.
    auto: bubblewrap, else a container engine, else refuse."""
    if requested not in SANDBOXES:
        raise UsageError(f"--sandbox {requested!r}: choose one of {', '.join(SANDBOXES)}")
    if requested == "none":
        return "none"
    no_bwrap = ""
    if requested in ("auto", "bwrap"):
        no_bwrap = bwrap_works()
        if not no_bwrap:
            return "bwrap"
        if requested == "bwrap":
            raise UsageError(f"--sandbox bwrap: {no_bwrap}. Install it with `make sandbox` (root, Debian/Ubuntu: "
                             "apt-get install bubblewrap), or use --sandbox container where podman or Docker runs")
    no_engine = container_works()
    if not no_engine:
        return "container"
    if requested == "container":
        raise UsageError(f"--sandbox container: {no_engine}. Or install bubblewrap (`make sandbox`) and use "
                         "--sandbox bwrap")
    raise UsageError(f"cannot sandbox student code: {no_bwrap}, and {no_engine}. Install bubblewrap with `make "
                     "sandbox` (root, Debian/Ubuntu: apt-get install bubblewrap) or a container engine with `make "
                     "container-engine`, or pass --no-sandbox (--sandbox none) to run submissions unsandboxed "
                     "(they could then read solutions/ and the hidden tests, forge grades and touch your files)")


def process_limit(kind: str) -> str:
    """What bounds the number of tasks in a `kind` sandbox on this machine: "the engine's --pids-limit", "a pids
    cgroup", "RLIMIT_NPROC", or "none: <why>" (a root grader that cannot write cgroups)."""
    if kind == "container":
        return "the engine's --pids-limit"
    parent, why = cgroups.hierarchy()
    if parent is not None:
        return "a pids cgroup"
    if os.geteuid() != 0:
        return "RLIMIT_NPROC"
    return f"none: {why}"


def course_readonly_paths() -> tuple[str, ...]:
    """The interpreter, the venv and the course packages, each bound read-only at its own path."""
    import autograder.errors
    import mlinfra.base

    venv = Path(sys.prefix)
    paths = {str(venv), str(Path(sys.base_prefix).resolve())}
    for module in (mlinfra.base, autograder.errors):  # a package's own file: tests/ may hold a same-named folder
        paths.add(str(Path(module.__file__).resolve().parents[1 if module is mlinfra.base else 0]))
    if Path(sys.base_prefix) != Path(sys.base_prefix).resolve():
        paths.add(str(Path(sys.base_prefix)))
    return tuple(sorted(paths))


def kernel_env(spec: Spec) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(spec.work),
        "IPYTHONDIR": str(spec.work / ".ipython"),
        "JUPYTER_CONFIG_DIR": str(spec.work / ".jupyter"),
        "JUPYTER_DATA_DIR": str(spec.work / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(spec.conn),
        "MPLCONFIGDIR": str(spec.work / ".config" / "matplotlib"),
        "MPLBACKEND": "Agg",
        "TMPDIR": "/tmp",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": os.environ.get("NBGRADER_EXECUTION", "autograde"),
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    env.update(spec.env)
    return env


def prlimit_prefix(limits: Limits) -> list[str]:
    exe = shutil.which("prlimit")
    if exe is None:
        return []
    mem = limits.memory_mb * 1024 * 1024
    args = [exe, f"--data={mem}", f"--cpu={limits.cpu_seconds}", f"--fsize={limits.file_mb * 1024 * 1024}",
            "--core=0"]
    if os.geteuid() != 0:
        # RLIMIT_NPROC counts every process of the real uid; for root it is not enforced (and would count the
        # whole machine's): a root grader limits processes with a pids cgroup instead (cgroups.py).
        args.append(f"--nproc={limits.processes}")
    return [*args, "--"]


def wrap(cmd: list[str], spec: Spec) -> tuple[list[str], dict[str, str]]:
    """The command line that runs `cmd` in `spec`'s sandbox, and the environment to start it with. For bubblewrap
    and none, this makes the sandbox's pids cgroup (where cgroups can be written): `teardown` removes it."""
    env = kernel_env(spec)
    if spec.kind == "container":
        return containers.wrap(cmd, spec, env, [*_RO_SYSTEM, *course_readonly_paths(), *spec.readonly])
    join = cgroups.join_prefix(cgroups.create(spec.name, spec.limits.processes))
    if spec.kind == "none":
        # Unsandboxed: limits and a clean environment only.
        return [*join, *prlimit_prefix(spec.limits), *cmd], env
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--tmpfs", "/var/tmp"]
    for path in _RO_SYSTEM:
        args += ["--ro-bind-try", path, path]
    for name in _MERGED_USR:
        target = os.path.join("/", name)
        if os.path.islink(target):
            args += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            args += ["--ro-bind", target, target]
    for path in (*course_readonly_paths(), *spec.readonly):
        args += ["--ro-bind", path, path]
    args += ["--bind", str(spec.work), str(spec.work), "--bind", str(spec.conn), str(spec.conn),
             "--chdir", str(spec.work), "--unsetenv", "JPY_PARENT_PID"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return [*join, *prlimit_prefix(spec.limits), *args, "--", *cmd], env


def teardown(spec: Spec) -> None:
    """Make sure nothing of `spec`'s sandbox is left: its container removed, its cgroup emptied and removed.
    Safe to call more than once, and for a sandbox that never started."""
    if spec.kind == "container":
        containers.remove(spec.name)
    else:
        cgroups.release(spec.name)


def sweep(sandboxes: Path, kind: str) -> list[str]:
    """Tear down every sandbox of the batch whose sandboxes live under `sandboxes`: what a worker that died or was
    killed could not. Returns the names that were still there (normally none)."""
    prefix = batch_prefix(sandboxes)
    left = cgroups.existing(prefix)
    for name in left:
        cgroups.release(name)
    # Asking an engine costs subprocesses (0.4 s): only a container batch can have left containers.
    stray = [n for n in containers.running() if n.startswith(prefix)] if kind == "container" else []
    for name in stray:
        containers.remove(name)
    return [*left, *stray]


def run_in_sandbox(cmd: list[str], spec: Spec, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a plain command in the sandbox (the sandbox tests use it)."""
    full, env = wrap(cmd, spec)
    try:
        return subprocess.run(full, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        teardown(spec)


# ---------------------------------------------------------------------------------------------- the kernel manager

# The sandbox the next kernel gets. A grading worker grades one student at a time and sets it before nbgrader
# starts the kernel (nbgrader builds its own kernel manager, so the spec cannot be passed down as an argument).
CURRENT: Spec | None = None
# Every kernel launched in this process, as (kernel id, pid of its sandbox, work folder): the warm-pool test and
# the end-of-batch check read it.
LAUNCHED: list[tuple[str, int, str]] = []


def kill_tree(pid: int, timeout: float) -> list[int]:
    """SIGKILL a process we started and everything under it (children first), then wait up to `timeout` s for
    them; returns the pids killed (none when the process is already gone)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [*proc.children(recursive=True), proc]
    except psutil.NoSuchProcess:
        return []
    killed = []
    for p in procs:
        try:
            p.kill()
            killed.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=timeout)
    return killed


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
            spec.conn.mkdir(parents=True, exist_ok=True)
            spec.work.mkdir(parents=True, exist_ok=True)
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
            log.write_text(" ".join(cmd) + "\n" + "kernel: forked by the worker's zygote into this sandbox\n")
            keep_r, keep_w = os.pipe()
            ready_r, ready_w = os.pipe()
            status_r, status_w = os.pipe()
            try:
                kw.update(env=env, stdin=keep_r, stdout=ready_w,
                          stderr=open(log, "ab"))  # noqa: SIM115, ASYNC230 - the placeholder holds it
                await super()._async_launch_kernel(cmd, **kw)
                os.close(keep_r)
                os.close(ready_w)
                keep_r = ready_w = -1
                zygote.read_line(ready_r, 30, "the sandbox")
                assert ZYGOTE is not None
                ZYGOTE.spawn({"target": zygote.sandbox_leaf(int(self.provisioner.pid)),  # type: ignore[attr-defined]
                              "procs": str(procs) if (procs := cgroups.create(spec.name, spec.limits.processes))
                              else None,
                              "env": kernel_env(spec), "cwd": str(spec.work), "log": str(log), "argv": argv},
                             keep_w, status_w)
            finally:
                for fd in (keep_r, keep_w, ready_r, ready_w, status_w):
                    if fd >= 0:
                        os.close(fd)
            try:
                answer = zygote.read_line(status_r, 30, "the zygote's kernel")
            finally:
                os.close(status_r)
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

    try:
        run_sync(km.shutdown_kernel)(now=True)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001, S110 - it is being thrown away; its sandbox dies with its process
        pass
