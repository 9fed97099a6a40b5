"""Cgroups per sandbox: limits that hold for the sandbox as a whole, whoever runs the processes inside.

- **pids**: the kernel does not apply RLIMIT_NPROC to root, and for anyone it counts every process of the real uid
  on the machine, not those of one sandbox. A cgroup's `pids.max` counts exactly the tasks (threads included) of
  the processes inside it.
- **memory**: RLIMIT_DATA/AS bound one process; three children under a 4 GB per-process limit held 6 GB together.
  A memory cgroup bounds the sandbox's resident memory as a whole (its tmpfs pages included); when it is reached the
  kernel's OOM killer ends a process inside, and `oom_kills` tells the grader it was the memory limit.

The launcher joins the cgroups before it drops privileges and execs the sandbox, so the kernel and everything it
starts are in them. They cannot leave or lift them: the sandbox has its own cgroup namespace, no capability, an
unprivileged uid, and no /sys (docs/grading.md, "Threat model").

Where cgroups cannot be written (not root, a read-only /sys/fs/cgroup, no such controller), `hierarchy()` says
why; the process limit then falls back to RLIMIT_NPROC and memory to RLIMIT_DATA per process (docs/grading.md).
"""

from __future__ import annotations

import os
import signal
import time
from functools import lru_cache
from pathlib import Path

PARENT = "mlinfra-sandbox"
UNIFIED = Path("/sys/fs/cgroup")
# cgroup v1's hierarchy of each controller, then the unified (v2) one: the first that takes a child wins.
CANDIDATES = {"pids": (Path("/sys/fs/cgroup/pids"), UNIFIED), "memory": (Path("/sys/fs/cgroup/memory"), UNIFIED)}
_PROBE = {"pids": ("pids.max", "8"), "memory": ("memory.limit_in_bytes", str(1 << 30))}
_PROBE_V2 = {"pids": ("pids.max", "8"), "memory": ("memory.max", str(1 << 30))}


@lru_cache(maxsize=4)
def hierarchy(controller: str = "pids") -> tuple[Path | None, str]:
    """(the course's parent cgroup for `controller`, '') or (None, why there is none)."""
    if os.geteuid() != 0:
        return None, "cgroups are written only by a root grader (an unprivileged one gets per-process rlimits)"
    reasons = []
    for root in CANDIDATES[controller]:
        parent = root / PARENT
        v2 = root == UNIFIED
        try:
            if v2:
                if controller not in (root / "cgroup.controllers").read_text().split():
                    reasons.append(f"{root}: no {controller} controller")
                    continue
                parent.mkdir(exist_ok=True)
                (parent / "cgroup.subtree_control").write_text(f"+{controller}")
            elif not (root / "cgroup.procs").exists():
                reasons.append(f"{root}: not mounted")
                continue
            parent.mkdir(exist_ok=True)
            probe = parent / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            try:
                key, value = (_PROBE_V2 if v2 else _PROBE)[controller]
                (probe / key).write_text(value)
            finally:
                probe.rmdir()
            return parent, ""
        except OSError as exc:
            reasons.append(f"{root}: {exc.strerror or exc}")
    return None, f"no writable {controller} cgroup (" + "; ".join(reasons) + ")"


def procs_ok() -> bool:
    """Whether sandboxes here get a pids cgroup (else the process limit is RLIMIT_NPROC)."""
    return hierarchy("pids")[0] is not None


def _parents() -> list[Path]:
    """The distinct parent cgroups in use (one on cgroup v2, one per controller on v1)."""
    found: list[Path] = []
    for controller in CANDIDATES:
        parent, _why = hierarchy(controller)
        if parent is not None and parent not in found:
            found.append(parent)
    return found


def create(name: str, max_tasks: int, memory_mb: int | None = None) -> list[Path]:
    """Fresh cgroups `name`: pids.max = `max_tasks` and, with `memory_mb`, a memory limit (swap included where the
    host accounts it). Returns the cgroup.procs files to join (none where there are no cgroups)."""
    joined: list[Path] = []
    pids, _ = hierarchy("pids")
    if pids is not None:
        group = pids / name
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(max_tasks))
        joined.append(group / "cgroup.procs")
    memory, _ = hierarchy("memory") if memory_mb else (None, "")
    if memory is not None and memory_mb:
        group = memory / name
        group.mkdir(exist_ok=True)
        limit = str(memory_mb * 1024 * 1024)
        if memory.parent == UNIFIED:
            (group / "memory.max").write_text(limit)
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
        else:
            (group / "memory.limit_in_bytes").write_text(limit)
            if (group / "memory.memsw.limit_in_bytes").exists():
                (group / "memory.memsw.limit_in_bytes").write_text(limit)
        if group / "cgroup.procs" not in joined:
            joined.append(group / "cgroup.procs")
    return joined


def procs(name: str) -> list[Path]:
    """The cgroup.procs files of sandbox cgroups `name` made by `create` (none where there are none)."""
    return [p / name / "cgroup.procs" for p in _parents() if (p / name / "cgroup.procs").exists()]


def join_prefix(procs: list[Path]) -> list[str]:
    """A launcher prefix that moves itself into the cgroups, then execs the rest: nothing starts outside them."""
    if not procs:
        return []
    script = " && ".join(f'echo $$ > "${i}"' for i in range(len(procs)))
    return ["/bin/sh", "-c", f'{script} && shift {len(procs) - 1} && exec "$@"', *[str(p) for p in procs]]


def oom_kills(name: str) -> int:
    """How many processes of sandbox `name` the kernel killed for its memory limit (0 when unknown)."""
    memory, _ = hierarchy("memory")
    if memory is None:
        return 0
    group = memory / name
    try:
        if memory.parent == UNIFIED:
            text = (group / "memory.events").read_text()
            key = "oom_kill"
        else:
            text = (group / "memory.oom_control").read_text()
            key = "oom_kill"
        for line in text.splitlines():
            field, _, value = line.partition(" ")
            if field == key:
                return int(value)
        # an older v1 kernel without the counter: a failed charge at the limit is the next best sign
        return 1 if int((group / "memory.failcnt").read_text()) and memory.parent != UNIFIED else 0
    except (OSError, ValueError):
        return 0


def pids_refused(name: str) -> int:
    """How many times sandbox `name` was refused a new task at its pids.max (0 when unknown)."""
    parent, _ = hierarchy("pids")
    if parent is None:
        return 0
    try:
        for line in (parent / name / "pids.events").read_text().splitlines():
            field, _, value = line.partition(" ")
            if field == "max":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def release(name: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL whatever is left in cgroups `name`, wait for them to empty, remove them; returns the pids killed."""
    killed: list[int] = []
    for parent in _parents():
        killed += _release_one(parent / name, timeout)
    return sorted(set(killed))


def _release_one(group: Path, timeout: float) -> list[int]:
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while group.is_dir():
        try:
            pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        try:
            group.rmdir()
        except OSError:  # busy until the last task has exited
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    return killed


def existing(prefix: str) -> list[str]:
    """The names of the course's cgroups that start with `prefix`, as they are now."""
    return sorted({g.name for parent in _parents() for g in parent.glob(prefix + "*")})


def tasks(name: str) -> int:
    """How many tasks cgroup `name` holds now (0 when it does not exist)."""
    parent, _why = hierarchy("pids")
    if parent is None:
        return 0
    try:
        return int((parent / name / "pids.current").read_text())
    except (OSError, ValueError):
        return 0
