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
from autograder.grading import cgroups, containers

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
