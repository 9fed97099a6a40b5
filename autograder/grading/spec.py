"""What describes one sandbox, shared by the bubblewrap sandbox (sandbox.py) and the container one
(containers.py): who student code runs as, the limits, the folders, and the names a batch's sandboxes share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# Who student code is. On the host: nobody (a root grader drops to it before bubblewrap starts; an unprivileged
# grader's own uid stays). Inside the sandbox's user namespace: uid and gid 1000, with no capability.
SANDBOX_HOST_ID = 65534
SANDBOX_ID = 1000


@dataclass
class Limits:
    memory_mb: int = 4096  # the sandbox as a whole (a memory cgroup), and each process (RLIMIT_DATA)
    cpu_seconds: int = 600
    file_mb: int = 256  # the largest single file the kernel may write
    processes: int = 256  # tasks, threads included (torch starts a pool): a pids cgroup, or RLIMIT_NPROC
    disk_mb: int = 512  # each of the sandbox's tmpfs folders (/tmp, /var/tmp, /run) and a tmpfs home


@dataclass
class Spec:
    """One kernel's sandbox: where it may write, where its sockets live, what it may read, its limits."""

    work: Path  # writable: cwd and HOME
    conn: Path  # connection file and ipc sockets
    limits: Limits = field(default_factory=Limits)
    kind: str = "bwrap"  # "bwrap", "container" or "none"
    readonly: tuple[str, ...] = ()  # extra read-only binds (same path inside)
    # read-only binds at another path inside (source, inside): the sandbox need not learn where things are
    # on the host (bubblewrap only; a container gets `readonly` alone)
    moved: tuple[tuple[str, str], ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # The grading package (autograder/) bound read-only beside mlinfra: a graded kernel imports it. The app
    # sandbox of `assess --pack` does not: the service needs only mlinfra, and the grader's code stays unseen.
    grader_code: bool = True
    tmpfs_home: bool = False  # work is a size-capped tmpfs of its own (root graders); gone at teardown
    hit: list[str] = field(default_factory=list)  # the limits the sandbox reached, as `teardown` found them

    @property
    def name(self) -> str:
        """The sandbox's name (its cgroup, its container), derived from its work folder: whoever knows the folder
        can tear the sandbox down, even after the process that started it died. It starts with the prefix of the
        folder holding the batch's sandboxes (`batch_prefix`), so one batch's sandboxes can be swept at once."""
        return batch_prefix(self.work.parent.parent) + digest(self.work, 12)


def digest(path: Path, size: int) -> str:
    return hashlib.sha1(str(path).encode()).hexdigest()[:size]


def batch_prefix(sandboxes: Path) -> str:
    """The name prefix of every sandbox whose folder is under `sandboxes` (a batch's work/sandboxes/<id>/home)."""
    return f"mlinfra-sbx-{digest(sandboxes, 8)}-"
