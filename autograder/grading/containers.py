"""The container sandbox: the view bubblewrap gives a kernel, given by podman or Docker where bubblewrap is missing.

The image is the course's own and holds nothing: an empty root with the merged-/usr symlinks. Everything the kernel
may read is bound in read-only at its own path, exactly as under bubblewrap (the system's /usr, the interpreter,
the venv, the course library); its work folder and its connection folder (ipc sockets) are the only writable
binds. The engine sets what bubblewrap gets from prlimit and a pids cgroup: memory, CPU seconds and file size as
ulimits, `--pids-limit`, and a memory cgroup as a backstop; and `--network none`, every capability dropped, no new
privileges, a read-only root. A container outlives its `run` client when that is killed, so the kernel's end
removes it by name (`remove`), and the batch's end sweeps any left by the batch's name prefix. Finding the engine
and running it is autograder/container_engine.py's job; this module says what the sandbox's container is.

Measured here (podman 4.3, runc, rootful): `run` of a trivial command 0.3-0.6 s, `rm -f -t 0` 0.2 s. A kernel is
started ahead of its student, so neither is on the critical path of a class.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from functools import lru_cache
from typing import TYPE_CHECKING

from autograder import container_engine
from autograder.container_engine import Engine

if TYPE_CHECKING:
    from autograder.grading.spec import Spec

IMAGE = "localhost/mlinfra-sandbox:1"
LABEL = "mlinfra.sandbox"
# Mount points of the empty root; the engine mounts /proc, /dev, /sys and the tmpfs folders itself.
_DIRS = ("etc", "tmp", "proc", "dev", "sys", "run", "usr", "var", "var/tmp", "root", "home")
# The files the engine writes into every container itself: binding them too is refused.
_ENGINE_OWNED = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


@lru_cache(maxsize=1)
def engine_or_reason() -> tuple[Engine | None, str]:
    """(the engine with the sandbox image in place, '') or (None, why the container sandbox cannot run here)."""
    from autograder.errors import UsageError
    from mlinfra.base.paths import repo_root

    try:
        engine = container_engine.detect(repo_root())
    except UsageError as exc:
        return None, str(exc)
    try:
        ensure_image(engine)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        return None, f"{engine.name} could not make the sandbox image {IMAGE}: {exc}"
    return engine, ""


def _empty_root() -> bytes:
    """A tar of the empty root: the mount-point folders and, where this host merges /usr, the same symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in _DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name in ("tmp", "var/tmp") else 0o755
            tar.addfile(info)
        for name in ("bin", "sbin", "lib", "lib64", "lib32"):
            target = os.path.join("/", name)
            if os.path.islink(target):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(target)
                tar.addfile(info)
            elif os.path.isdir(target):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
    return buf.getvalue()


def ensure_image(engine: Engine) -> None:
    """Import the empty sandbox image once per engine storage (a few ms; nothing is downloaded)."""
    if engine.run("image", "inspect", IMAGE, check=False).returncode == 0:
        return
    container_engine.import_image(engine, IMAGE, _empty_root())


def wrap(cmd: list[str], spec: Spec, kernel_env: dict[str, str],
         readonly: list[str]) -> tuple[list[str], dict[str, str]]:
    """The `run` command for `cmd` in `spec`'s container, and the environment the engine client starts with."""
    from autograder.grading.spec import SANDBOX_HOST_ID

    engine, why = engine_or_reason()
    if engine is None:
        raise RuntimeError(f"the container sandbox cannot run here: {why}")
    limits = spec.limits
    mem, fsize = limits.memory_mb, limits.file_mb * 1024 * 1024
    data = mem * 1024 * 1024
    # RLIMIT_DATA as under bubblewrap, so a hog meets the same MemoryError either way; the memory cgroup, a little
    # above it, is the backstop for what RLIMIT_DATA does not count (file mappings, the page cache).
    backstop = mem + 256
    import resource

    # the engine's default (scripts/container-engine.sh's containers.conf), never above ours: runc cannot raise it
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    args = engine.command(
        "run", "--rm", "--name", spec.name, "--label", f"{LABEL}={spec.work}", "--log-driver", "none",
        "--network", "none", *container_engine.hardened_options(), "--read-only",
        # the same unprivileged user as under bubblewrap (sandbox.own gave it the two writable folders)
        "--user", f"{SANDBOX_HOST_ID}:{SANDBOX_HOST_ID}",
        "--tmpfs", f"/tmp:size={limits.disk_mb}m", "--tmpfs", f"/var/tmp:size={limits.disk_mb}m",
        "--pids-limit", str(limits.processes),
        "--memory", f"{backstop}m", "--memory-swap", f"{backstop}m", "--ulimit", f"data={data}:{data}",
        "--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds}", "--ulimit", f"fsize={fsize}:{fsize}",
        # Lowered, never raised: raising a ulimit needs a capability the container no longer has. nproc stays at
        # ours: it counts every process of the sandbox user on the machine, other students' included, so it cannot
        # be this container's limit; --pids-limit is.
        "--ulimit", "core=0:0", "--ulimit", "nofile=4096:4096", "--ulimit", f"nproc={nproc}:{nproc}",
        "--workdir", str(spec.work))
    for path in readonly:
        if path not in _ENGINE_OWNED and os.path.exists(path):
            args += ["--volume", f"{path}:{path}:ro"]
    for folder in (spec.work, spec.conn):
        args += ["--volume", f"{folder}:{folder}"]
    for key, value in kernel_env.items():
        args += ["--env", f"{key}={value}"]
    client_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                  **engine.env}
    return [*args, IMAGE, *cmd], client_env


def remove(name: str) -> bool:
    """Kill and remove the container `name` at once; True when one was there."""
    engine, _why = engine_or_reason()
    return engine is not None and container_engine.remove_container(engine, name)


def running(label_value: str | None = None) -> list[str]:
    """Names of the sandbox containers alive now (all of them, or those of one work folder)."""
    engine, _why = engine_or_reason()
    if engine is None:
        return []
    return container_engine.labelled(engine, LABEL if label_value is None else f"{LABEL}={label_value}")
