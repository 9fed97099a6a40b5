"""Kernels forked from one pre-imported process into fresh bubblewrap sandboxes: start-up paid once per worker.

A kernel's own start-up is mostly imports (ipykernel, IPython, zmq, tornado, debugpy): about 0.3-0.4 s of CPU per
student, on the same cores as the students' cells. A grading worker starts one *zygote* instead: a fresh
interpreter, started with a clean environment, that imports what a kernel imports and nothing else (no plan, no
notebook, no hidden test is ever in its memory), then waits. Per student:

1. the worker starts the student's sandbox exactly as before (`sandbox.wrap`: cgroup, limits, bubblewrap with its
   namespaces, binds and capabilities), running a placeholder (`cat`) that lives as long as the kernel holds one
   end of a pipe;
2. the zygote forks; the child joins the sandbox's cgroups, takes the same rlimits, drops root's groups, joins
   every namespace of the placeholder (user first, mount last, then chroot to its root), becomes the sandbox's
   unprivileged user, takes exactly the placeholder's capabilities (none) and no_new_privs, and forks twice more so the kernel is inside the sandbox's pid namespace with
   the sandbox's pid 1 as its parent, as under bubblewrap;
3. the grandchild clears its environment to the kernel's, starts a new session, and runs ipykernel's IPKernelApp
   on the student's connection file.

Nothing a student touched is reused: each kernel is a fresh fork of a process no student code has run in, and the
sandbox around it is new. When the kernel exits, the pipe closes, the placeholder exits, bubblewrap's pid 1 exits
and the kernel (whatever is left in the pid namespace) dies with it; killing the sandbox's process kills the
kernel the same way. Where anything here fails, the kernel manager starts the kernel the ordinary way instead.

Linux only, bubblewrap sandboxes only (a container's kernel runs in its image). Runs as a script of its own
(`python -m autograder.grading.zygote FD`); the worker's side is `Zygote`.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

# The namespaces a bubblewrap sandbox has of its own, in the order they are joined: the user namespace first
# (joining it gives the capabilities needed for the rest), the mount namespace last (after it, /proc is the
# sandbox's).
_CLONE = {"user": 0x10000000, "ipc": 0x08000000, "uts": 0x04000000, "net": 0x40000000,
          "cgroup": 0x02000000, "pid": 0x20000000, "mnt": 0x00020000}
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_NS_GET_PARENT = 0xB702  # _IO(0xb7, 0x2)

# What a kernel imports on its way up, imported once here (each is imported lazily by ipykernel or IPython
# during start-up, so a plain `from ipykernel import kernelapp` leaves them to every kernel).
PREIMPORTS = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
              "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.shellapp", "jupyter_client.session",
              "tornado.platform.asyncio", "argcomplete", "pdb", "sqlite3", "psutil")


# Heavy course packages a lab's kernels may get already imported (`preimports_for`): each is safe to import
# before a kernel's environment is set (nothing of it reads HOME, the working folder or a config folder at
# import) and starts no thread (joining a user namespace needs a single-threaded process). Seeded random state is
# drawn afresh in every kernel (`_reseed`). matplotlib, for one, is not here: it caches its config folder.
HEAVY = ("numpy", "torch", "torchvision", "numpy.random")  # torchvision imports numpy.random

# A lab's own warm imports (lab.yaml `warm_imports`) reach the zygote as WARM + name: the lab's author vouches for
# them on the same terms as HEAVY (autograder/labs.py says what to check). A bare name that is not in HEAVY is never
# imported.
WARM = "--warm="


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _capabilities(pid: int) -> dict[str, int]:
    """The CapBnd/CapEff/CapPrm/CapInh masks of process `pid`."""
    caps = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("CapBnd", "CapEff", "CapPrm", "CapInh"):
            caps[key] = int(value.strip(), 16)
    return caps


def _parent_userns(fd: int) -> int | None:
    """A descriptor of the user namespace that holds user namespace `fd`, unless that is ours (or unknown)."""
    import fcntl

    try:
        parent = fcntl.ioctl(fd, _NS_GET_PARENT)
    except OSError:
        return None
    if os.fstat(parent).st_ino == os.stat("/proc/self/ns/user").st_ino:
        os.close(parent)
        return None
    return parent


def _lower(limit: int, ours: int) -> int:
    if ours == resource.RLIM_INFINITY:
        return limit
    return ours if limit == resource.RLIM_INFINITY else min(limit, ours)


def _enter(target: int, procs: list[str], ids: list[int] | None, rlimits: dict[str, int]) -> None:
    """Make this (single-threaded, just forked) process a member of `target`'s sandbox: cgroups, rlimits,
    namespaces, root, user and capabilities, each as the sandbox's own process has them (`ids`: its uid and gid
    inside its user namespace; `rlimits`: what its launcher set). Raises OSError naming the step that failed."""
    libc = _libc()
    for path in procs:
        Path(path).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        os.setgroups([])  # root's groups would follow us in; a user namespace made unprivileged forbids setgroups
    # The sandbox's launcher started from the worker's limits (ours) and lowered these: lower them the same way.
    # (Reading them from the sandbox's process would need CAP_SYS_RESOURCE over a process of another user.)
    for name, value in rlimits.items():
        which = getattr(resource, name)
        _soft, hard = resource.getrlimit(which)
        resource.setrlimit(which, (_lower(value, hard), _lower(value, hard)))
    caps = _capabilities(target)
    # only the namespaces the sandbox has of its own (joining one's own user namespace is an error)
    own = [name for name in _CLONE if os.readlink(f"/proc/self/ns/{name}") != os.readlink(f"/proc/{target}/ns/{name}")]
    fds = {name: os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY) for name in own}
    root = os.open(f"/proc/{target}/root", os.O_RDONLY | os.O_DIRECTORY)
    user = fds.pop("user", None)
    if user is not None:
        # bubblewrap's --disable-userns nests the sandbox's user namespace in one that owns its other namespaces:
        # join that one first (it gives the rights to join the rest), the sandbox's own last.
        outer = _parent_userns(user)
        if outer is not None:
            _check(libc.setns(outer, _CLONE["user"]), "setns(user, outer)")
            os.close(outer)
    for name, fd in fds.items():
        _check(libc.setns(fd, _CLONE[name]), f"setns({name})")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    if user is not None:
        _check(libc.setns(user, _CLONE["user"]), "setns(user)")
        os.close(user)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if not caps["CapBnd"] & (1 << cap):
            _check(libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if ids:
        uid, gid = ids
        _check(libc.setresgid(gid, gid, gid), "setresgid")
        _check(libc.setresuid(uid, uid, uid), "setresuid")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        data[i].effective = (caps["CapEff"] >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (caps["CapPrm"] >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (caps["CapInh"] >> (32 * i)) & 0xFFFFFFFF
    _check(libc.capset(ctypes.byref(header), data), "capset")


def _orphan_into_sandbox() -> None:
    """Fork once more inside the pid namespace and let the middle process exit: the kernel is then orphaned to the
    sandbox's own pid 1 (bubblewrap's init), as a kernel bubblewrap started would be. Its parent is inside the
    sandbox (a parent outside shows as pid 0, and `os.kill(os.getppid(), ...)` would signal the kernel's own
    process group), and the sandbox's init reaps it."""
    import time

    parent = os.getpid()
    if os.fork():
        os._exit(0)
    deadline = time.monotonic() + 5
    while os.getppid() == parent and time.monotonic() < deadline:  # the middle process is exiting
        time.sleep(0.0005)


def _reseed() -> None:
    """Every fork would otherwise draw the same numbers: Python's and numpy's global generators are seeded from
    the system afresh, as a new process seeds them. (torch's default generator starts from the same fixed seed in
    every process anyway.)"""
    import random

    random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def _kernel(request: dict[str, Any], status: int, set_by_imports: dict[str, str]) -> None:
    """In the sandbox's pid namespace: become the student's kernel. Never returns."""
    os.setsid()
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(set_by_imports)
    os.environ["PWD"] = request["cwd"]  # as bubblewrap's --chdir sets it
    os.chdir(request["cwd"])
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own stdout, for good
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115 - the same, for stderr
    _reseed()
    # as `python -m ipykernel_launcher` leaves it: the kernel's shell puts its working folder first on its own
    del sys.path[0]
    sys.argv = [sys.executable, *request["argv"]]
    os.write(status, b"ok\n")
    os.close(status)
    from ipykernel import kernelapp

    try:
        kernelapp.launch_new_instance(argv=list(request["argv"]))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def _serve_one(sock: socket.socket, request: dict[str, Any], fds: list[int], set_by_imports: dict[str, str]) -> None:
    keep, status = fds
    pid = os.fork()
    if pid:
        os.close(keep)
        os.close(status)
        os.waitpid(pid, 0)  # the middle process exits as soon as the kernel is forked
        return
    try:
        sock.close()
        low = 3
        for fd in sorted((keep, status)):  # nothing of the zygote's reaches the kernel but these two
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, 65536)
        _enter(int(request["target"]), list(request.get("procs") or []), request.get("ids"),
               dict(request.get("rlimits") or {}))
        child = os.fork()  # only a child of a process that joined the pid namespace is in it
        if child:
            os.waitpid(child, 0)  # it exits once the kernel is forked: nothing is left for the zygote to reap
            os._exit(0)
        _orphan_into_sandbox()
        _kernel(request, status, set_by_imports)
    except BaseException as exc:  # noqa: BLE001 - reported to the worker, who starts the kernel the usual way
        try:
            os.write(status, f"{type(exc).__name__}: {exc}\n".encode()[:500])
        finally:
            os._exit(1)
    os._exit(0)


def serve(fd: int, extra: list[str]) -> None:
    """The zygote's loop: one request per kernel, until the worker closes its end. `extra`: more modules to import
    ahead (from HEAVY, or a lab's warm imports given as WARM + name)."""
    import importlib

    before = dict(os.environ)
    ahead = [m.removeprefix(WARM) if m.startswith(WARM) else m for m in extra if m in HEAVY or m.startswith(WARM)]
    for name in (*PREIMPORTS, *ahead):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # what importing set in the environment (debugpy sets PYDEVD_USE_FRAME_EVAL), as a kernel's own imports would
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    sock = socket.socket(fileno=fd)
    while True:
        fds = array.array("i")
        msg, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(2 * fds.itemsize))
        if not msg:
            return
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
        _serve_one(sock, json.loads(msg), list(fds), set_by_imports)


# ---------------------------------------------------------------------------------------------- the worker's side


# What runs in the sandbox until the kernel joins it: it says when the sandbox is set up, then lives as long as
# its stdin (a pipe whose other end only the kernel holds) is open.
PLACEHOLDER = ["/bin/sh", "-c", "echo ready; exec cat"]


class ZygoteError(RuntimeError):
    """The zygote could not put a kernel in the sandbox (the caller starts one the usual way)."""


def ipykernel_argv(kernel_cmd: list[str]) -> list[str] | None:
    """The arguments of a `python -m ipykernel_launcher ...` kernel command run by this interpreter, else None
    (another kernel cannot be forked from the zygote)."""
    if len(kernel_cmd) < 3 or kernel_cmd[1:3] != ["-m", "ipykernel_launcher"]:
        return None
    exe = kernel_cmd[0]
    if os.path.realpath(exe) != os.path.realpath(sys.executable) and os.path.basename(exe) not in ("python",
                                                                                                   "python3"):
        return None
    return kernel_cmd[3:]


def read_line(fd: int, timeout: float, what: str) -> str:
    """One line from pipe `fd` within `timeout` seconds, or ZygoteError saying `what` did not answer."""
    import select

    got = b""
    while not got.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise ZygoteError(f"{what} did not answer in {timeout:.0f} s")
        chunk = os.read(fd, 512)
        if not chunk:
            raise ZygoteError(f"{what} exited without answering" + (f" ({got.decode(errors='replace')})" if got
                                                                     else ""))
        got += chunk
    return got.decode(errors="replace").strip()


def sandbox_leaf(pid: int) -> int:
    """The innermost process under the sandbox's launcher `pid` (the placeholder, in every namespace of the
    sandbox)."""
    import psutil

    below = psutil.Process(pid).children(recursive=True)
    leaves = [p for p in below if not p.children()]
    if not leaves:
        raise ZygoteError(f"no process in the sandbox under {pid}")
    return leaves[-1].pid


class Zygote:
    """The worker's handle on its zygote: `spawn` a kernel into a running placeholder sandbox."""

    def __init__(self, env: dict[str, str], preimports: tuple[str, ...] = ()) -> None:
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "autograder.grading.zygote", str(theirs.fileno()), *preimports],
            pass_fds=(theirs.fileno(),),
            env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        theirs.close()
        self._owner = os.getpid()  # only the process that started it can wait for it

    def hand_over(self) -> None:
        """Forget the zygote in this process after a worker forked from it took it over (the worker's end of the
        socket must be the only one, so the zygote exits with the worker); `reap` it at the end."""
        self._sock.close()

    def reap(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def spawn(self, request: dict[str, Any], keep: int, status: int) -> None:
        """Ask for a kernel in `request['target']`'s sandbox; `keep` is the pipe end the kernel holds, `status`
        where it writes `ok` or why not."""
        fds = array.array("i", [keep, status])
        self._sock.sendmsg([json.dumps(request).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])

    def close(self) -> None:
        self._sock.close()  # the zygote exits at the end of its socket
        if os.getpid() == self._owner:
            self.reap()


def preimports_for(notebook: Path, warm: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The HEAVY packages a lab's reference notebook (trusted) imports, then the lab's declared `warm` imports
    (lab.yaml), as the zygote's arguments: its kernels get them already imported. A student's own modules never
    are (they differ per student)."""
    return (*_heavy_imports_of(notebook), *(WARM + name for name in warm))


def _heavy_imports_of(notebook: Path) -> tuple[str, ...]:
    import ast

    try:
        cells = json.loads(notebook.read_text()).get("cells", [])
    except (OSError, ValueError):
        return ()
    found: set[str] = set()
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source", []))
        try:
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            found.update(n.split(".")[0] for n in names)
    return tuple(m for m in HEAVY if m in found)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
