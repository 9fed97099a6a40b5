"""A pids cgroup per sandbox: the process limit a root grader cannot get from RLIMIT_NPROC.

The kernel does not apply RLIMIT_NPROC to root, and for anyone it counts every process of the real uid on the
machine, not those of one sandbox. A cgroup's `pids.max` counts exactly the tasks (threads included) of the
processes inside it, whoever runs them. The launcher joins the cgroup before it execs the sandbox, so the kernel
and everything it starts are in it and cannot leave (the sandbox has its own cgroup namespace, and no privilege
to move itself).

Where cgroups cannot be written (not root, a read-only /sys/fs/cgroup, no pids controller), `hierarchy()` says
why, and the process limit falls back to RLIMIT_NPROC for an unprivileged grader (docs/grading.md).
"""

from __future__ import annotations

import os
import signal
import time
from functools import lru_cache
from pathlib import Path

PARENT = "mlinfra-sandbox"
# cgroup v1's pids hierarchy, then the unified (v2) one: the first that takes a child with pids.max wins.
CANDIDATES = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))


@lru_cache(maxsize=1)
def hierarchy() -> tuple[Path | None, str]:
    """(the course's parent cgroup with the pids controller, '') or (None, why there is none)."""
    if os.geteuid() != 0:
        return None, "cgroups are written only by a root grader (an unprivileged one gets RLIMIT_NPROC)"
    reasons = []
    for root in CANDIDATES:
        parent = root / PARENT
        try:
            if root == Path("/sys/fs/cgroup"):
                if "pids" not in (root / "cgroup.controllers").read_text().split():
                    reasons.append(f"{root}: no pids controller")
                    continue
                parent.mkdir(exist_ok=True)
                (parent / "cgroup.subtree_control").write_text("+pids")
            elif not (root / "pids.max").exists() and not (root / "cgroup.procs").exists():
                reasons.append(f"{root}: not mounted")
                continue
            parent.mkdir(exist_ok=True)
            probe = parent / f"probe-{os.getpid()}"
            probe.mkdir(exist_ok=True)
            try:
                (probe / "pids.max").write_text("8")
            finally:
                probe.rmdir()
            return parent, ""
        except OSError as exc:
            reasons.append(f"{root}: {exc.strerror or exc}")
    return None, "no writable pids cgroup (" + "; ".join(reasons) + ")"


def create(name: str, max_tasks: int) -> Path | None:
    """A fresh cgroup `name` with pids.max = `max_tasks`; returns its cgroup.procs, or None where there is none."""
    parent, _why = hierarchy()
    if parent is None:
        return None
    group = parent / name
    group.mkdir(exist_ok=True)
    (group / "pids.max").write_text(str(max_tasks))
    return group / "cgroup.procs"


def procs(name: str) -> Path | None:
    """The cgroup.procs file of sandbox cgroup `name` made by `create`, or None where there is none."""
    parent, _why = hierarchy()
    path = parent / name / "cgroup.procs" if parent is not None else None
    return path if path is not None and path.exists() else None


def join_prefix(procs: Path | None) -> list[str]:
    """A launcher prefix that moves itself into the cgroup, then execs the rest: nothing starts outside it."""
    if procs is None:
        return []
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs)]


def release(name: str, timeout: float = 5.0) -> list[int]:
    """SIGKILL whatever is left in cgroup `name`, wait for it to empty, remove it; returns the pids killed."""
    parent, _why = hierarchy()
    if parent is None:
        return []
    group = parent / name
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
    return sorted(set(killed))


def existing(prefix: str) -> list[str]:
    """The names of the course's cgroups that start with `prefix`, as they are now."""
    parent, _why = hierarchy()
    return sorted(g.name for g in parent.glob(prefix + "*")) if parent is not None else []


def tasks(name: str) -> int:
    """How many tasks cgroup `name` holds now (0 when it does not exist)."""
    parent, _why = hierarchy()
    if parent is None:
        return 0
    try:
        return int((parent / name / "pids.current").read_text())
    except (OSError, ValueError):
        return 0
