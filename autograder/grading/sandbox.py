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

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from autograder.errors import UsageError
from autograder.grading import cgroups, containers

# The sandbox's description lives in spec.py (the container sandbox needs it too); imported here for callers.
from autograder.grading.spec import SANDBOX_HOST_ID, SANDBOX_ID, Limits, Spec, batch_prefix, digest

SANDBOXES = ("auto", "bwrap", "container", "none")
# The system folders a kernel may read (the TorchServe lab runs Java from /usr/lib/jvm).
_RO_SYSTEM = ("/usr", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
              "/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/hosts", "/etc/nsswitch.conf",
              "/etc/passwd", "/etc/group", "/etc/java-17-openjdk", "/etc/fonts", "/etc/mime.types")
_MERGED_USR = ("bin", "sbin", "lib", "lib64", "lib32")



CONNECTION_MB = 16  # a root grader's connection folder: the connection file, the ipc sockets, the kernel's log


def connection_root(sandboxes: Path) -> Path:
    """Where the connection folders of the batch whose sandboxes live under `sandboxes` are made: short (ipc socket
    paths must fit in 107 bytes), and known from the batch alone, so `sweep` removes every key and socket."""
    base = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    return base / f"ag-{digest(sandboxes.resolve(), 8)}"


@lru_cache(maxsize=1)
def bwrap_works() -> str:
    """'' when bubblewrap can start a sandbox here, else why not (one line)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    # as `wrap` runs it: through the launcher, as the sandbox's unprivileged user, in a user namespace of its own
    request = {"drop_to": [SANDBOX_HOST_ID, SANDBOX_HOST_ID],
               "argv": [exe, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
                        "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"]}
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", _launcher(), json.dumps(request)], capture_output=True,
                              timeout=20, check=False)
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
    if os.geteuid() != 0 or kind == "bwrap":  # a root grader's bubblewrap sandbox runs as SANDBOX_HOST_ID
        return "RLIMIT_NPROC"
    return f"none: {why}"


def identity_files(folder: Path, home: Path) -> tuple[tuple[str, str], ...]:
    """/etc/passwd, /etc/group and /etc/hosts for the sandbox, written into `folder` (the trusted side's): root,
    the sandbox's user (getpass.getuser() and `~` lookups work) and nobody (what files of unmapped owners show
    as), and localhost. The host's files would name its accounts and machines. Returns (host file, inside) binds."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "passwd": (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   f"sandbox:x:{SANDBOX_ID}:{SANDBOX_ID}:sandbox:{home}:/usr/sbin/nologin\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        "group": f"root:x:0:\nsandbox:x:{SANDBOX_ID}:\nnogroup:x:65534:\n",
        "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    }
    binds = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text)
        path.chmod(0o644)
        binds.append((str(path), f"/etc/{name}"))
    return tuple(binds)


def course_packages(grader_code: bool = True) -> tuple[Path, ...]:
    """The folders of the course packages: mlinfra/, and autograder/ with `grader_code`. Found from a module's own
    file, not the package's: a folder named like a package on sys.path ahead of the checkout (a tests/ folder under
    pytest) makes the package a namespace whose __file__ is None, while its submodules still import."""
    import autograder.errors
    import mlinfra.base

    found = [Path(str(mlinfra.base.__file__)).resolve().parents[1]]
    if grader_code:
        found.append(Path(str(autograder.errors.__file__)).resolve().parent)
    return tuple(found)


def course_pythonpath(grader_code: bool = True) -> str:
    """PYTHONPATH for a sandbox: the folders holding the course packages, which it binds at their own paths. An
    editable install's .pth may name a checkout the sandbox cannot see (a git worktree, a copy), and then
    `python -m autograder...` inside would find nothing."""
    return ":".join(sorted({str(folder.parent) for folder in course_packages(grader_code)}))


def course_readonly_paths(grader_code: bool = True) -> tuple[str, ...]:
    """The interpreter, the venv and the course packages, each bound read-only at its own path; without
    `grader_code`, mlinfra alone (the app sandbox: a service imports nothing of autograder/)."""
    venv = Path(sys.prefix)
    paths = {str(venv), str(Path(sys.base_prefix).resolve())}
    paths.update(str(folder) for folder in course_packages(grader_code))
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
    return [exe, *(f"--{flag}={value}" for flag, value in _rlimit_flags(limits, cgroups.procs_ok())), "--"]


def _rlimit_flags(limits: Limits, has_pids_cgroup: bool) -> list[tuple[str, int]]:
    flags = [("data", limits.memory_mb * 1024 * 1024), ("cpu", limits.cpu_seconds),
             ("fsize", limits.file_mb * 1024 * 1024), ("core", 0)]
    if not has_pids_cgroup:
        # RLIMIT_NPROC counts every process of the real uid on the machine; it is the fallback where no pids cgroup
        # can be made (it is not enforced for root, which is why a root grader drops to SANDBOX_HOST_ID first).
        flags.append(("nproc", limits.processes))
    return flags


_RLIMIT_NAMES = {"data": "RLIMIT_DATA", "cpu": "RLIMIT_CPU", "fsize": "RLIMIT_FSIZE", "core": "RLIMIT_CORE",
                 "nproc": "RLIMIT_NPROC"}


def sandbox_rlimits(spec: Spec) -> dict[str, int]:
    """The rlimits the launcher sets for `spec` (resource module names), for a kernel forked into the sandbox."""
    return {_RLIMIT_NAMES[f]: v for f, v in _rlimit_flags(spec.limits, cgroups.procs_ok())}


def prepare(spec: Spec) -> None:
    """Make the sandbox's folders before anything is staged in them: the connection folder, and the work folder,
    which a root grader makes a size-capped tmpfs owned by the sandbox's user when `spec.tmpfs_home` (what was
    already in it is moved in). Safe to call again."""
    spec.conn.mkdir(parents=True, exist_ok=True)
    spec.work.mkdir(parents=True, exist_ok=True)
    if spec.tmpfs_home and os.geteuid() == 0 and spec.kind != "none":
        # The connection folder is writable from inside too (sockets, the kernel's log): capped as well, or it
        # would be a way onto the grader's disk. It holds nothing yet (the connection file comes later).
        if not os.path.ismount(spec.conn):
            _mount_tmpfs(spec.conn, CONNECTION_MB)
        if not os.path.ismount(spec.work):
            staged = spec.work.with_name(spec.work.name + ".staged")
            spec.work.rename(staged)
            spec.work.mkdir()
            _mount_tmpfs(spec.work, spec.limits.disk_mb)
            shutil.copytree(staged, spec.work, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(staged, ignore_errors=True)
    own(spec)


def release_connection(conn: Path) -> None:
    """Remove a kernel's connection folder (keys, sockets, log), its tmpfs included."""
    if os.path.ismount(conn):
        _unmount(conn)
    shutil.rmtree(conn, ignore_errors=True)


def own(spec: Spec) -> None:
    """Give the sandbox's user its two writable folders and what the grader put in them (a root grader's files are
    otherwise read-only to it). Symlinks are never followed."""
    if os.geteuid() != 0 or spec.kind == "none":
        return
    for top in (spec.work, spec.conn):
        for folder, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                os.chown(os.path.join(folder, name), SANDBOX_HOST_ID, SANDBOX_HOST_ID, follow_symlinks=False)
        os.chown(top, SANDBOX_HOST_ID, SANDBOX_HOST_ID, follow_symlinks=False)
        os.chmod(top, 0o700)


def _mount_tmpfs(path: Path, size_mb: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={size_mb}m,mode=0700,uid={SANDBOX_HOST_ID},gid={SANDBOX_HOST_ID}".encode()
    # MS_NOSUID | MS_NODEV; not noexec: a lab may run scripts it wrote
    if libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0x2 | 0x4, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot mount the sandbox's home at {path}: {os.strerror(err)}")


def _unmount(path: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(str(path).encode(), 2)  # MNT_DETACH: gone now for new lookups, freed when the last user exits


def mounted_under(folder: Path) -> list[Path]:
    """The tmpfs homes mounted under `folder` (a batch's sandboxes), from this mount namespace's table."""
    found = []
    prefix = str(folder.resolve()) + "/"
    with open("/proc/self/mounts") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "tmpfs":
                point = fields[1].replace("\\040", " ")
                if point.startswith(prefix):
                    found.append(Path(point))
    return found


def _launcher() -> str:
    return str(Path(__file__).with_name("launch.py"))


def wrap(cmd: list[str], spec: Spec) -> tuple[list[str], dict[str, str]]:
    """The command line that runs `cmd` in `spec`'s sandbox, and the environment to start it with. For bubblewrap
    and none, this makes the sandbox's cgroups (where cgroups can be written): `teardown` removes them.

    Under bubblewrap the student's code runs as SANDBOX_ID in a user namespace of its own, as an unprivileged user
    on the host (SANDBOX_HOST_ID when the grader is root), with every capability dropped, no_new_privs, no further
    user namespaces, its memory and tasks bounded by cgroups for the sandbox as a whole and its writable tmpfs
    folders capped in size (launch.py does the privileged part, then execs bubblewrap)."""
    env = kernel_env(spec)
    if spec.kind == "container":
        prepare(spec)
        return containers.wrap(cmd, spec, env, [*_RO_SYSTEM, *course_readonly_paths(spec.grader_code),
                                                *spec.readonly])
    groups = cgroups.create(spec.name, spec.limits.processes, spec.limits.memory_mb)
    if spec.kind == "none":
        # Unsandboxed: limits and a clean environment only.
        return [*cgroups.join_prefix(groups), *prlimit_prefix(spec.limits), *cmd], env
    prepare(spec)
    bwrap = shutil.which("bwrap") or "bwrap"
    size = str(spec.limits.disk_mb * 1024 * 1024)
    args: list[object] = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_ID), "--gid", str(SANDBOX_ID),
        "--disable-userns", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv",
        # /dev read-only but its shared memory (a capped tmpfs): bubblewrap's own /dev tmpfs has no size cap
        "--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
        "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/run", "--size", size, "--tmpfs", "/var/tmp"]
    replaced = {inside for _, inside in spec.moved}  # e.g. a passwd of the sandbox's own instead of the host's
    for path in _RO_SYSTEM:
        if path not in replaced:
            args += ["--ro-bind-try", path, path]
    for name in _MERGED_USR:
        target = os.path.join("/", name)
        if os.path.islink(target):
            args += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            args += ["--ro-bind", target, target]
    # by descriptor, opened by the launcher before it drops root: the sandbox's user need not see their parents
    for path in (*course_readonly_paths(spec.grader_code), *spec.readonly):
        args.append(["--ro-bind", path, path])
    for path, inside in spec.moved:
        args.append(["--ro-bind", path, inside])
    args += [["--bind", str(spec.work), str(spec.work)], ["--bind", str(spec.conn), str(spec.conn)],
             # the root last, once every mount point is made: read-only, so the only writable places are the
             # capped ones (the home, the connection folder, /tmp, /run, /var/tmp, /dev/shm), not an uncapped tmpfs
             "--remount-ro", "/",
             "--chdir", str(spec.work), "--unsetenv", "JPY_PARENT_PID"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    request = {"cgroups": [str(g) for g in groups],
               "rlimits": sandbox_rlimits(spec),
               "drop_to": [SANDBOX_HOST_ID, SANDBOX_HOST_ID], "argv": [*args, "--", *cmd]}
    return [sys.executable, "-I", "-S", _launcher(), json.dumps(request)], env


def teardown(spec: Spec) -> None:
    """Make sure nothing of `spec`'s sandbox is left: its container removed, its cgroups emptied and removed, its
    tmpfs home unmounted. Safe to call more than once, and for a sandbox that never started."""
    if spec.kind == "container":
        containers.remove(spec.name)
    else:
        for limit, reached in (("memory limit", cgroups.oom_kills), ("process limit", cgroups.pids_refused)):
            if limit not in spec.hit and reached(spec.name):
                spec.hit.append(limit)
        cgroups.release(spec.name)
    for folder in (spec.work, spec.conn):
        if os.path.ismount(folder) and "disk limit" not in spec.hit:
            usage = shutil.disk_usage(folder)
            if usage.free < max(usage.total // 100, 64 * 1024):
                spec.hit.append("disk limit")
    if os.path.ismount(spec.work):
        _unmount(spec.work)


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
    homes = mounted_under(sandboxes) if sandboxes.is_dir() else []
    for home in homes:
        _unmount(home)
    conns = connection_root(sandboxes)
    if conns.is_dir():
        for folder in mounted_under(conns):
            _unmount(folder)
        shutil.rmtree(conns, ignore_errors=True)
    return [*left, *stray, *(str(h) for h in homes)]


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
