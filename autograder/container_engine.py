"""The container engine: the one module that finds Docker or podman and runs it, for every part of the course that
builds or runs a container: the Dockerfile grader (`autograder dockerfile --build`, dockerfile/build.py), the lab06
deploy check (deploy/container_check.py) and the grading sandbox's container kind (grading/containers.py).

Which engine: $AUTOGRADER_ENGINE (docker | podman) when set; else a Docker engine that answers `docker info`
(a real Docker, or podman's Docker-compatible API through $DOCKER_HOST); else the podman CLI, using the course's
private configuration and storage (see container_state()) when `scripts/container-engine.sh` made them.

How a container runs here (docs/decisions.md, Containers): podman gets `--network=slirp4netns` (its own network
namespace, no iptables) and Docker its default bridge; both publish the service's port on 127.0.0.1 only. `--init`
makes the service stop on SIGTERM. Builds use `--format docker` on podman, or HEALTHCHECK is dropped from the image.
Someone else's code (a graded image, a sandboxed kernel) runs with hardened_options(): no capability, no privilege
to regain, no user namespaces. A grading batch's builds and containers carry its id (BATCH_LABEL,
GRADED_BATCH_ARG), so remove_batch() finds whatever a killed worker left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import UsageError
from mlinfra.base.procs import free_port
from mlinfra.envcheck import course_container_state

ENGINE_ENV = "AUTOGRADER_ENGINE"
SETUP_HINT = "start Docker, or run `make container-engine` (sets up podman where there is no engine)"


@dataclass
class Engine:
    name: str  # docker | podman
    env: dict[str, str] = field(default_factory=dict)
    wheels: Path | None = None  # mounted at /wheels during podman builds (the course's stand-in bases look there)

    def command(self, *args: str) -> list[str]:
        return [self.name, *args]

    def environ(self) -> dict[str, str]:
        """The environment an engine command runs in: ours, pointed at the course's storage where it has one."""
        return {**os.environ, **self.env}

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, env=self.environ(),
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise EngineError(f"`{self.name} {' '.join(args[:2])}` failed: {last[0]}")
        return proc


class EngineError(Exception):
    """An engine command failed for a reason that is the image's (build error, container exit)."""


def container_state(root: Path) -> Path:
    """The course's private container storage and cache, shared by every checkout on this machine (the script
    scripts/container-engine.sh makes it; $WORKBOOK_CONTAINER_STATE moves it). The rule is the course library's
    (`autograder doctor` reports the same folder); `root` does not change it."""
    return course_container_state()


def _answers(cmd: list[str], env: dict[str, str], timeout: float = 20) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, env={**os.environ, **env}, timeout=timeout,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _podman_answers(env: dict[str, str]) -> bool:
    """`podman info` succeeds. It waits for the storage's lock, which a build beside (another student's, graded at
    the same time) can hold for minutes while it commits a layer: so a generous time, and a second try, before
    a student's check is told there is no engine."""
    return any(_answers(["podman", "info"], env, timeout=180) for _ in range(2))


def detect(root: Path) -> Engine:
    """The engine to use, or UsageError saying there is none and how to get one."""
    from mlinfra.envcheck import course_podman_env

    wanted = os.environ.get(ENGINE_ENV, "").strip().lower()
    if wanted and wanted not in ("docker", "podman"):
        raise UsageError(f"${ENGINE_ENV}={wanted!r}: set it to docker or podman, or unset it")
    state = container_state(root)
    wheels = state / "wheels" if (state / "wheels").is_dir() else None
    if wanted in ("", "docker") and shutil.which("docker") and _answers(["docker", "info"], {}):
        return Engine("docker")
    if wanted in ("", "podman") and shutil.which("podman"):
        env = course_podman_env()  # the course's storage, where scripts/container-engine.sh made it
        if _podman_answers(env):
            return Engine("podman", env, wheels)
        raise UsageError("podman is installed but `podman info` fails: run `make container-engine` "
                         "to write the course's configuration, then retry")
    raise UsageError(f"no container engine answers ({'docker: no engine' if shutil.which('docker') else 'none'} "
                     f"found): {SETUP_HINT}")


@dataclass
class Built:
    tag: str
    seconds: float
    size_bytes: int | None
    log_tail: list[str]


def unreachable_prefix(engine: Engine) -> list[str]:
    """A command prefix that runs a podman build in a network namespace of its own with nothing in it (not even a
    loopback that is up), so whatever the builder fetches itself (ADD of a URL, a base image pull) reaches nothing;
    [] where that cannot be done (Docker builds in its daemon; a rootless podman needs its own user namespace)."""
    exe = shutil.which("unshare")
    if engine.name != "podman" or exe is None or os.geteuid() != 0:
        return []
    return [exe, "--net", "--"]


GRADED_BUILD_ARG = "MLINFRA_GRADED_BUILD"  # a build argument naming one graded build (its working containers)
# What a grading batch's builds and containers carry, so the batch's end can find whatever a killed worker left
# (remove_batch, called by autograder.deploy.container_check.sweep_batch): a label on the image and the container,
# and a build argument in a working container's state.
BATCH_LABEL = "mlinfra.grade.batch"
GRADED_BATCH_ARG = "MLINFRA_GRADED_BATCH"

# Runs a graded build as its child subreaper (stdlib only): a build stopped at its time limit leaves the RUN step's
# processes running (runc's container outlives podman, reparented to pid 1: a `RUN while true` would spin for
# ever). As the subreaper, every descendant whose parent dies becomes this process's child, and on SIGTERM it kills
# the build's process group, then every descendant left, until none is. It gets that SIGTERM too when the process
# that started it dies (a grading worker killed mid-build).
_REAPER = r"""
import ctypes, os, signal, subprocess, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: a grading worker that dies stops its build too
child = subprocess.Popen(sys.argv[1:], start_new_session=True)
def descendants():
    out, me = [], str(os.getpid())
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    out.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return out
def stop(*_):
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(100):
        left = descendants()
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in left:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)
    sys.exit(124)
signal.signal(signal.SIGTERM, stop)
code = child.wait()
sys.exit(code)
"""


def remove_working_containers(engine: Engine, token: str, arg: str = GRADED_BUILD_ARG) -> list[str]:
    """Remove the builder's working containers of the graded build `token` (a build stopped mid-way leaves its
    working container, and the layer it was writing, in the storage). They are told from other builds' (running
    at the same time for other students) by the build argument `arg` (GRADED_BUILD_ARG: one build; GRADED_BATCH_ARG:
    every build of a batch), which podman records in the working container's state
    (<graphroot>/<driver>-containers/<id>/userdata/buildah.json)."""
    if engine.name != "podman":
        return []
    info = engine.run("info", "--format", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}", check=False)
    where = info.stdout.split()
    if info.returncode != 0 or len(where) != 2:
        return []
    ids = engine.run("ps", "-a", "--external", "--no-trunc", "--format", "{{.ID}}", check=False).stdout.split()
    removed = []
    for cid in ids:
        state = Path(where[0]) / f"{where[1]}-containers" / cid / "userdata" / "buildah.json"
        try:
            args = json.loads(state.read_text()).get("Args") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(args, dict) and args.get(arg) == token:
            engine.run("rm", "-f", "--storage", cid, check=False, timeout=120)
            removed.append(cid)
    return removed


@dataclass(frozen=True)
class BuildLimits:
    """What the RUN steps of one graded build may take together, as its container may when it runs."""

    memory_mb: int = 4096  # resident memory of all its RUN steps (no swap)
    pids: int = 512  # processes and threads at once
    cpus: float = 1.0
    file_mb: int = 2048  # the largest file a RUN step may write (RLIMIT_FSIZE: the writer gets SIGXFSZ)
    disk_mb: int = 4096  # what its RUN steps may write in all (the build is stopped past it)


BUILD_CGROUP_PREFIX = "lab06-build-"  # the cgroups (autograder.grading.cgroups) a graded build's RUN steps run in


def _limit_args(engine: Engine, limits: BuildLimits, cgroup: str | None) -> list[str]:
    """`build` options that hold each RUN step to `limits`: memory (no swap), CPU, file size, and (in the cgroup
    `cgroup`, made with the pids and memory limits for all RUN steps at once) processes. podman 4's build has no
    --pids-limit: the RUN steps' cgroup is made a child of ours (runc removes its own, ours keeps the limits)."""
    from autograder.grading.cgroups import PARENT, hierarchy

    if engine.name != "podman":  # (Docker's BuildKit takes none of these: a Docker grader's builds are unlimited)
        return []
    size = limits.file_mb * 1024 * 1024
    args = ["--cpu-period=100000", f"--cpu-quota={int(limits.cpus * 100000)}", "--ulimit", f"fsize={size}:{size}"]
    if cgroup:
        # Memory in our cgroup only: a RUN step's own limit as well would be reached first, and its OOM counted
        # in runc's cgroup, removed with it (no way to tell the learner it was memory).
        args.append(f"--cgroup-parent=/{PARENT}/{cgroup}/run")
    if not cgroup or hierarchy("memory")[0] is None:
        args += [f"--memory={limits.memory_mb}m", f"--memory-swap={limits.memory_mb}m"]
    return args


def _over_limits(limits: BuildLimits, cgroup: str | None, tail: Sequence[str]) -> str:
    """Which limit a failed graded build ran into, in words ('' when none is known to have been reached)."""
    text = "\n".join(tail)
    if cgroup:
        from autograder.grading import cgroups

        pids_dir = cgroups.hierarchy("pids")[0]
        peak = _read_int(pids_dir / cgroup / "pids.peak") if pids_dir else None
        if peak is not None and peak >= limits.pids:
            return f"a RUN step reached the limit of {limits.pids} processes and threads of a graded build"
        # cgroup v2 counts a RUN step's OOM kill in ours too; v1 counts it in the victim's (runc's) cgroup if at all,
        # so there a step SIGKILLed after ours peaked at its limit is the sign
        memory_dir = cgroups.hierarchy("memory")[0]
        peak = max((_read_int(memory_dir / cgroup / f) or 0 for f in ("memory.max_usage_in_bytes", "memory.peak")),
                   default=0) if memory_dir is not None else 0
        at_limit = peak >= 0.9 * limits.memory_mb * 1024 * 1024
        if cgroups.oom_kills(cgroup) > 0 or (at_limit and "exit status 137" in text):
            return f"a RUN step reached the memory limit of a graded build ({limits.memory_mb} MB)"
    elif "exit status 137" in text:  # killed: the RUN step's own memory limit, most likely
        return f"a RUN step was killed, most likely at the memory limit of a graded build ({limits.memory_mb} MB)"
    if "File size limit exceeded" in text or "exit status 153" in text:
        return f"a RUN step wrote a file over the limit of a graded build ({limits.file_mb} MB a file)"
    return ""


def _release_build_cgroup(cgroup: str) -> None:
    """Kill whatever of a graded build's RUN steps is left and remove its cgroups, runc's inside them first (runc
    leaves its own behind when a step is killed)."""
    from autograder.grading import cgroups

    inner: set[str] = set()
    for controller in ("pids", "memory"):
        parent = cgroups.hierarchy(controller)[0]
        if parent is not None and (parent / cgroup).is_dir():
            inner |= {str(d.relative_to(parent)) for d in (parent / cgroup).rglob("*") if d.is_dir()}
    for name in sorted(inner, key=lambda n: -n.count("/")):
        cgroups.release(name)
    cgroups.release(cgroup)
    # runc made the path in every other controller too (cgroup v1: cpu, blkio, freezer, ...): empty, removed
    mounts = [cgroups.UNIFIED, *[d for d in cgroups.UNIFIED.iterdir() if d.is_dir()]] \
        if cgroups.UNIFIED.is_dir() else []
    for group in [m / cgroups.PARENT / cgroup for m in mounts]:
        if group.is_dir():
            for folder in sorted((d for d in group.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                group.rmdir()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _upper_dirs(cgroup: str) -> set[str]:
    """The overlay upper folders (where writes land) of the RUN steps now running in `cgroup`."""
    from autograder.grading import cgroups

    parent = cgroups.hierarchy("pids")[0]
    found: set[str] = set()
    if parent is None:
        return found
    for procs in (parent / cgroup).rglob("cgroup.procs"):
        try:
            pids = procs.read_text().split()
        except OSError:
            continue
        for pid in pids[:1]:  # one process of each RUN step: they share its root
            try:
                for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
                    fields = line.split()
                    if len(fields) > 4 and fields[4] == "/" and "upperdir=" in line:
                        found.add(line.split("upperdir=", 1)[1].split(",", 1)[0])
            except OSError:
                continue
    return found


def _disk_mb(folder: str) -> float:
    """The space the files under `folder` take on disk (allocated blocks: a sparse file fills nothing)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        else:
                            total += entry.stat(follow_symlinks=False).st_blocks * 512
                    except OSError:
                        continue
        except OSError:
            continue
    return total / (1024 * 1024)


# The longest a build goes between two measures of what its RUN steps wrote, whatever the file system says: files
# deleted beside it (another build, a test run's temporary folders) hide its writes from the file system's total.
DISK_SCAN_EVERY_S = 5.0


def _watch_disk(storage: str, limits: BuildLimits, cgroup: str, done: threading.Event,
                over: Callable[[str], None], *, scan_every: float = DISK_SCAN_EVERY_S) -> None:
    """Until `done`: measure what the build's own RUN steps wrote (their overlay upper folders: not what builds
    beside it wrote), and stop the build past its disk budget. Measured every `scan_every` seconds, and at once
    when the storage's file system has lost more than the budget since the build started (one statvfs a second)."""
    def used() -> int:
        st = os.statvfs(storage)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    start = used()
    scanned = time.monotonic()
    while not done.wait(1.0):
        try:
            grown = used() - start >= limits.disk_mb * 1024 * 1024
        except OSError:
            return
        if not grown and time.monotonic() - scanned < scan_every:
            continue
        scanned = time.monotonic()
        wrote = sum(_disk_mb(d) for d in _upper_dirs(cgroup))
        if wrote > limits.disk_mb:
            over(f"a RUN step wrote over {limits.disk_mb} MB (the disk limit of a graded build: {wrote:.0f} MB)")
            return


def _storage_root(engine: Engine) -> str:
    if engine.name != "podman":
        return ""
    info = engine.run("info", "--format", "{{.Store.GraphRoot}}", check=False)
    return info.stdout.strip() if info.returncode == 0 else ""


def build(engine: Engine, context: Path, dockerfile: Path, tag: str, *, no_cache: bool = False,
          on_line: Callable[[str], None] | None = None, timeout: float = 1800, network: str | None = None,
          isolated: bool = False, batch: str = "", limits: BuildLimits | None = None) -> Built:
    """`network`: the RUN steps' network (default: the host's on podman, the engine's default on Docker).
    `isolated` (grading someone else's Dockerfile): no layer cache is written (nothing of the build stays once its
    image is removed), no base image is pulled, and on podman the builder itself runs where nothing is reachable
    (unreachable_prefix). `batch`: the grading batch the build is for (its image is labelled, its working
    container carries it as a build argument: the batch's end finds both). `limits` (a graded build): memory,
    CPU, processes, file size and what its RUN steps write (BuildLimits); the one reached is named in the error.
    Processes and disk are enforced where cgroups can be made (a root grader on podman): elsewhere memory, CPU
    and file size only."""
    args = ["build", "-t", tag, "-f", str(dockerfile)]
    if batch:
        args += ["--label", f"{BATCH_LABEL}={batch}", "--build-arg", f"{GRADED_BATCH_ARG}={batch}"]
    if network:
        args.append(f"--network={network}")
    if engine.name == "podman":
        args += ["--format", "docker", "--force-rm"]
        args += ["--layers=false", "--pull=never"] if isolated else ["--layers", "--pull=missing"]
        if not network:
            args.append("--network=host")
        if engine.wheels is not None:
            args += ["-v", f"{engine.wheels}:/wheels:ro"]
    if no_cache:
        args.append("--no-cache")
    args.append(str(context))
    start = time.monotonic()
    tail: list[str] = []
    prefix: list[str] = []
    token = ""
    cgroup: str | None = None
    if isolated:
        import sys

        token = uuid.uuid4().hex
        args[1:1] = ["--build-arg", f"{GRADED_BUILD_ARG}={token}"]
        prefix = [sys.executable, "-I", "-S", "-c", _REAPER, *unreachable_prefix(engine)]
    if limits is not None:
        from autograder.grading import cgroups

        # the batch in its name: a worker killed mid-build cannot release it, the batch's end does (remove_batch)
        name = BUILD_CGROUP_PREFIX + (f"{batch}-" if batch else "") + (token or uuid.uuid4().hex)
        try:
            if engine.name == "podman" and cgroups.create(name, limits.pids, limits.memory_mb):
                cgroup = name
        except OSError:  # no cgroup: the per-RUN-step limits only
            cgroups.release(name)
        args[1:1] = _limit_args(engine, limits, cgroup)
    proc = subprocess.Popen([*prefix, *engine.command(*args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=engine.environ(), start_new_session=True)
    assert proc.stdout is not None
    # The time limit holds even for a build that prints nothing: a timer stops it, which ends the output.
    timed_out = threading.Event()

    def stop_build() -> None:
        timed_out.set()
        # The reaper (isolated) kills the build and all it left; otherwise the group is podman's own.
        with contextlib.suppress(ProcessLookupError):
            (os.kill if isolated else os.killpg)(proc.pid, signal.SIGTERM)

    timer = threading.Timer(timeout, stop_build)
    timer.start()
    reason: list[str] = []  # a limit the build was stopped at (the disk watch)
    watched = threading.Event()
    if limits is not None and cgroup and (storage := _storage_root(engine)):
        def over(why: str) -> None:
            reason.append(why)
            stop_build()

        threading.Thread(target=_watch_disk, args=(storage, limits, cgroup, watched, over), daemon=True).start()
    try:
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-40:]
            if on_line:
                on_line(line.rstrip())
        try:
            proc.wait(timeout=30 if timed_out.is_set() else None)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        timer.cancel()
        watched.set()
        if isolated and (timed_out.is_set() or proc.returncode != 0):
            remove_working_containers(engine, token)
        limit = (reason[0] if reason else _over_limits(limits, cgroup, tail)) \
            if limits is not None and (timed_out.is_set() or proc.returncode != 0) else ""
        if cgroup:
            _release_build_cgroup(cgroup)
    if limit:
        raise EngineError(f"the build was stopped: {limit}; " + explain_build_failure(tail)
                          .replace("the build failed: ", "its last lines: ", 1))
    if timed_out.is_set():
        raise EngineError(f"the build took over {timeout:.0f} s and was stopped (the time limit of a build)")
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise EngineError(explain_build_failure(tail))
    size = None
    inspect = engine.run("image", "inspect", tag, "--format", "{{.Size}}", check=False)
    if inspect.returncode == 0 and inspect.stdout.strip().isdigit():
        size = int(inspect.stdout.strip())
    return Built(tag, seconds, size, tail)


def explain_build_failure(tail: Sequence[str]) -> str:
    text = "\n".join(tail)
    lines = [ln for ln in tail if ln.strip()]
    if any(s in text for s in ("pinging container registry", "no such host", "initializing source docker://",
                               "pull access denied", "failed to resolve source metadata")):
        return ("the base image could not be pulled (no registry reachable): make a local stand-in with "
                "`bash scripts/container-engine.sh --base IMAGE` using the image FROM names, then retry")
    return "the build failed: " + " | ".join(lines[-3:])


@dataclass
class Container:
    engine: Engine
    name: str
    port: int  # on 127.0.0.1
    container_port: int
    relay: NetnsRelay | None = None  # how port reaches a container with no network (run_container's `offline`)

    def state(self) -> dict[str, object]:
        proc = self.engine.run("inspect", self.name, "--format", "{{json .State}}", check=False)
        try:
            return json.loads(proc.stdout) if proc.returncode == 0 else {}
        except ValueError:
            return {}

    def logs(self, lines: int = 30) -> list[str]:
        proc = self.engine.run("logs", "--tail", str(lines), self.name, check=False)
        return (proc.stdout + proc.stderr).splitlines()[-lines:]

    def healthcheck(self) -> bool | None:
        """Run the image's own HEALTHCHECK once: True healthy, False unhealthy, None when the image has none."""
        if self.engine.name == "podman":
            proc = self.engine.run("healthcheck", "run", self.name, check=False, timeout=60)
            if "has no defined healthcheck" in proc.stderr:
                return None
            return proc.returncode == 0
        state = self.state()
        health = state.get("Health") if isinstance(state, dict) else None  # (`null` is JSON too)
        return health.get("Status") == "healthy" if health and isinstance(health, dict) else None

    def stop(self) -> None:
        self.engine.run("stop", "-t", "10", self.name, check=False, timeout=60)
        self.engine.run("rm", "-f", self.name, check=False, timeout=60)
        if self.relay is not None:
            self.relay.close()
            self.relay = None


def import_image(engine: Engine, tag: str, root_tar: bytes, timeout: float = 120) -> None:
    """Make the image `tag` from a tar of its root filesystem (`import -`: nothing is downloaded); RuntimeError
    with the engine's last words when it fails."""
    # Engine.run has no stdin: the tar goes in here.
    proc = subprocess.run(engine.command("import", "-", tag), input=root_tar, capture_output=True,
                          env=engine.environ(), timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip()[-300:] or f"exit {proc.returncode}")


def remove_image(engine: Engine, tag: str) -> None:
    """Remove `tag`'s image and its layers that no other image uses. A build without the layer cache (build's
    `isolated`) made no other image, so this leaves nothing of it behind."""
    engine.run("rmi", "-f", tag, check=False, timeout=120)


def run_container(engine: Engine, tag: str, container_port: int, *, env: dict[str, str] | None = None,
                  name: str | None = None, extra: Sequence[str] = (), hardened: bool = False,
                  lifetime: float | None = None, batch: str = "", offline: bool = False) -> Container:
    """Start `tag` detached, its `container_port` published on 127.0.0.1 at a free port; `extra`: more `run`
    options (grading passes limits: --memory, --pids-limit). `hardened` (someone else's image): hardened_options().
    `offline` (a graded image): the container gets no network at all (`--network=none`: its own loopback only,
    nothing of the grading machine or beyond), and the free port on the host's 127.0.0.1 is a relay of ours that
    connects to `container_port` on the container's loopback from inside its network namespace (NetnsRelay; needs
    root, as a graded build's isolation does: elsewhere the port is published as without `offline`).
    `lifetime`: seconds after which podman stops the container itself, even if no one is left to (Docker has no
    such option: its container lives until stopped). `batch`: the grading batch it is for (labelled with it, so
    remove_batch finds it). The port is found free, then handed to the engine: another check starting a container
    at that moment can take it first, so a port already taken is tried again with another (students graded side by
    side must not lose points to each other)."""
    extra = (*extra, *(hardened_options() if hardened else ()),
             *(("--timeout", str(int(lifetime))) if lifetime is not None and engine.name == "podman" else ()),
             *(("--label", f"{BATCH_LABEL}={batch}") if batch else ()))
    if offline and os.geteuid() == 0:
        return _run_offline(engine, tag, container_port, name or f"autograder-{os.getpid()}-{uuid.uuid4().hex[:8]}",
                            env=env, extra=extra)
    for attempt in range(3):
        port = free_port()
        this = name or f"autograder-{os.getpid()}-{port}"
        try:
            return _run_container(engine, tag, container_port, port, this, env=env, extra=extra)
        except EngineError as exc:
            if "name" not in str(exc).lower():  # (never remove someone else's container of that name)
                engine.run("rm", "-f", this, check=False)  # a container created but not started stays otherwise
            if attempt == 2 or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _run_container(engine: Engine, tag: str, container_port: int, port: int, name: str, *,
                   env: dict[str, str] | None, extra: Sequence[str]) -> Container:
    args = ["run", "-d", "--init", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}", *extra]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    if engine.name == "podman":
        try:
            engine.run(*args, "--network=slirp4netns", tag, timeout=120)
            return Container(engine, name, port, container_port)
        except EngineError as exc:
            if "slirp4netns" not in str(exc):
                raise
            engine.run("rm", "-f", name, check=False)  # a podman without slirp4netns: its default network
    engine.run(*args, tag, timeout=120)
    return Container(engine, name, port, container_port)


def _run_offline(engine: Engine, tag: str, container_port: int, name: str, *, env: dict[str, str] | None,
                 extra: Sequence[str]) -> Container:
    args = ["run", "-d", "--init", "--name", name, "--network=none", *extra]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    engine.run(*args, tag, timeout=120)
    try:
        relay = NetnsRelay(_open_netns(engine, name), container_port)
    except (OSError, EngineError) as exc:
        engine.run("rm", "-f", name, check=False)
        raise EngineError(f"could not reach the container's port {container_port}: {exc}") from None
    return Container(engine, name, relay.port, container_port, relay)


def _open_netns(engine: Engine, name: str) -> int:
    """A descriptor of the running container `name`'s network namespace. Checked to be the container's own: the
    process is still the container's after the namespace was opened (a pid reused by then would be someone
    else's), and its namespace is not ours."""
    def pid() -> int:
        out = engine.run("inspect", name, "--format", "{{.State.Pid}}", check=False).stdout.strip()
        if not out.isdigit() or int(out) <= 0:
            raise EngineError(f"the container is not running (pid {out or 'unknown'}): it exited at once?")
        return int(out)

    first = pid()
    fd = os.open(f"/proc/{first}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if pid() != first or os.fstat(fd).st_ino == os.stat("/proc/self/ns/net").st_ino:
            raise EngineError("the container's network namespace could not be told from the host's")
    except BaseException:
        os.close(fd)
        raise
    return fd


_CLONE_NEWNET = 0x40000000


class NetnsRelay:
    """An autograder.relay.Relay whose every connection goes to 127.0.0.1:`port` inside another network namespace
    (a graded container's, which has no network of its own). The connection into the container is made by our own
    threads that joined its namespace (setns: per thread), so the container reaches nothing of ours: it only
    answers what is sent to it. `port` on the host's 127.0.0.1 is the relay's; closing it closes `netns_fd`."""

    def __init__(self, netns_fd: int, port: int) -> None:
        import asyncio
        import ctypes
        import socket
        from concurrent.futures import ThreadPoolExecutor

        from autograder.relay import Relay

        libc = ctypes.CDLL(None, use_errno=True)
        target = os.fstat(netns_fd).st_ino

        def enter() -> None:
            if libc.setns(netns_fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the container's network namespace failed")

        def here() -> int:
            return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(10)
                sock.connect(("127.0.0.1", port))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
            return sock

        self.netns_fd = netns_fd
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="netns-relay", initializer=enter)
        try:
            if self.pool.submit(here).result(timeout=10) != target:  # (also: setns failed, BrokenThreadPool)
                raise OSError("a relay thread is not in the container's network namespace")
        except Exception:
            self.pool.shutdown(wait=False)
            raise

        async def opener() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            sock = await asyncio.get_running_loop().run_in_executor(self.pool, connect)
            return await asyncio.open_connection(sock=sock)

        self.relay = Relay(opener, name="netns-relay", on_close=self._release)
        self.port = self.relay.port

    def _release(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.close(self.netns_fd)

    def close(self) -> None:
        self.relay.close()


def remove_container(engine: Engine, name: str, timeout: float = 60) -> bool:
    """Kill and remove the container `name` at once (a container outlives the `run` client that started it when
    that is killed); True when one was there."""
    proc = engine.run("rm", "--force", "--time", "0", name, check=False, timeout=timeout)
    return proc.returncode == 0 and name in proc.stdout


def labelled(engine: Engine, label: str, timeout: float = 60) -> list[str]:
    """Names of the containers, running or not, that carry `label` (`key` or `key=value`)."""
    proc = engine.run("ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}", check=False,
                      timeout=timeout)
    return [n for n in proc.stdout.split() if n]


def remove_batch(engine: Engine, batch: str, tag_prefix: str) -> list[str]:
    """Remove every container, working container and image of the grading batch `batch` still there: those that
    carry its label (build's and run_container's `batch`) or its build argument, and the images tagged
    `<tag_prefix>...<batch>-...`. Returns what was removed."""
    removed = []
    for name in labelled(engine, f"{BATCH_LABEL}={batch}", timeout=120):
        remove_container(engine, name, timeout=120)
        removed.append(f"container {name}")
    removed += [f"working container {c[:12]}" for c in remove_working_containers(engine, batch, GRADED_BATCH_ARG)]
    # by the tag's batch prefix and by label (an image whose tag a build never got to set has only the label)
    listed = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False, timeout=120).stdout.split()
    for image in [t for t in listed if t.rsplit("/", 1)[-1].startswith(f"{batch}-") and tag_prefix in t]:
        if engine.run("rmi", "-f", image, check=False, timeout=120).returncode == 0:
            removed.append(f"image {image}")
    found = engine.run("images", "-a", "-q", "--filter", f"label={BATCH_LABEL}={batch}", check=False,
                       timeout=120).stdout.split()
    for image in dict.fromkeys(found):  # what is left: an image whose tag a killed build never set
        if engine.run("rmi", "-f", image, check=False, timeout=120).returncode == 0:
            removed.append(f"image {image}")
    if batch and os.geteuid() == 0:
        from autograder.grading import cgroups

        for name in cgroups.existing(f"{BUILD_CGROUP_PREFIX}{batch}-"):  # a killed build's limits
            _release_build_cgroup(name)
            removed.append(f"build cgroup {name}")
    return removed


_DEFAULT_SECCOMP = Path("/usr/share/containers/seccomp.json")  # podman's (containers-common)
_CLONE_NEWUSER = 0x10000000


def seccomp_profile() -> str | None:
    """podman's default seccomp profile, less user namespaces: `unshare` and `clone` with CLONE_NEWUSER fail
    (EPERM), `clone3` says ENOSYS (its flags cannot be filtered; the C library falls back to `clone`). A user
    namespace would give the container's user capabilities over namespaces of its own. None where podman's
    profile is not installed (Docker's own default already refuses them without CAP_SYS_ADMIN)."""
    import hashlib
    import tempfile

    try:
        profile = json.loads(_DEFAULT_SECCOMP.read_text())
    except (OSError, ValueError):
        return None
    guarded = {"unshare", "clone", "clone3"}
    for rule in profile.get("syscalls", []):
        if rule.get("action") == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule.get("names", []) if n not in guarded]
    profile["syscalls"] += [
        {"names": ["unshare", "clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": _CLONE_NEWUSER, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
    ]
    text = json.dumps(profile, sort_keys=True)
    path = Path(tempfile.gettempdir()) / f"mlinfra-sandbox-seccomp-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
    if not path.is_file():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(text)
        partial.replace(path)
    return str(path)


def hardened_options() -> tuple[str, ...]:
    """`run` options for a container of someone else's code (a graded image, a sandboxed kernel): no capability, no
    privilege to regain, no user namespaces (seccomp_profile), whatever USER its image names."""
    profile = seccomp_profile()
    return ("--cap-drop", "all", "--security-opt", "no-new-privileges",
            *(("--security-opt", f"seccomp={profile}") if profile else ()))


def wait_healthy(container: Container, probe: Callable[[], bool], timeout: float) -> float:
    """Seconds until `probe()` is True; EngineError if the container exits or time runs out first."""
    from mlinfra.base.wait import NotReady, wait_until

    start = time.monotonic()

    def healthy() -> bool:
        if probe():
            return True
        state = container.state()  # a container is not our child process: the engine says whether it runs
        if state and not state.get("Running", False):
            logs = " | ".join(container.logs(5)) or "no output"
            raise EngineError(f"the container exited (code {state.get('ExitCode')}) before it was healthy: {logs}")
        return False

    try:
        wait_until(healthy, timeout=timeout, interval=0.1, max_interval=1.0, what="the container")
    except NotReady:
        logs = " | ".join(container.logs(5)) or "no output"
        raise EngineError(f"not healthy after {timeout:.0f} s on 127.0.0.1:{container.port}: {logs}") from None
    return time.monotonic() - start
