"""The course's environment check: probe the machine, judge it against the prerequisites, report what to do.

`probe()` gathers facts; `evaluate(facts)` is pure (facts in, checks out), so it can be fed made-up machines.
`autograder doctor` prints this as a table; lab01 has learners write their own version of `evaluate`.

Each judgement is a `Prerequisite` (name, status pass/warn/fail, detail, fix), not the base `Check`, on
purpose: it is the record lab01 teaches learners to build ({"name", "status", "detail", "fix"}, those three
statuses), module 01's environment notebook prints its `status`, `detail` and `fix`, the doctor's table and
the start page show what was found and what to do in two columns, and `doctor --json` publishes the records
under data.checks. `to_outcome` converts at the edge to the base vocabulary (pass -> passed, fail -> failed,
warn -> skipped, the fix joined to the message), which is what the runner, the exit code and the JSON's checks
speak.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIN_PYTHON = (3, 10)
MIN_MEMORY_GB = 8.0
MIN_DISK_GB = 20.0
REQUIRED_PACKAGES = ("torch", "torchvision", "apache-airflow", "fastapi", "uvicorn", "pyyaml", "jupyterlab",
                     "nbgrader", "nbval", "pytest")
REQUIRED_TOOLS = ("git",)
OPTIONAL_TOOLS = ("docker", "podman", "aws", "gcloud", "az")


@dataclass
class MachineFacts:
    python_version: tuple[int, int, int]
    prefix: str
    base_prefix: str
    cpu_count: int
    memory_gb: float
    disk_free_gb: float
    tools: dict[str, str | None]  # tool -> first line of `tool --version`, None when absent
    docker_engine: bool
    packages: dict[str, str | None]  # distribution -> version, None when not installed
    gpu: str | None  # a name, or None for CPU only
    os: str = ""
    course_podman: str | None = None  # the course's podman storage folder when `make container-engine` set it up


@dataclass
class Prerequisite:
    name: str
    status: str  # "pass", "warn" (optional, missing) or "fail" (a prerequisite not met)
    detail: str
    fix: str = ""


@dataclass
class EnvironmentReport:
    ok: bool
    checks: list[Prerequisite] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tool_version(tool: str) -> str | None:
    path = shutil.which(tool)
    if not path:
        return None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "present (version unknown)"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "present (version unknown)"


def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        out = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and bool(out.stdout.strip())


def course_container_state() -> Path:
    """Where scripts/container-engine.sh (`make container-engine`) keeps the course's podman configuration and
    storage: $WORKBOOK_CONTAINER_STATE, else ~/.cache/mlinfra-workbook/containers (the script's own rule; the
    grading side reads the same place, see docs/setup.md)."""
    explicit = os.environ.get("WORKBOOK_CONTAINER_STATE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlinfra-workbook" / "containers"


def course_podman_env() -> dict[str, str]:
    """The variables that point podman at the course's configuration and storage, when the script made them;
    else {} (podman's own defaults). The grading side's engine (autograder/container_engine.py) uses these too."""
    state = course_container_state()
    conf, storage = state / "containers.conf", state / "storage.conf"
    if conf.is_file() and storage.is_file():
        return {"CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage), "TMPDIR": str(state / "tmp")}
    return {}


def _course_podman() -> str | None:
    """The course's podman set-up, if it is there and `podman info` answers with it."""
    course = course_podman_env()
    if not (shutil.which("podman") and course):
        return None
    env = {**os.environ, **course}
    try:
        out = subprocess.run(["podman", "info", "--format", "{{.Version.Version}}"], capture_output=True, text=True,
                             timeout=20, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(course_container_state()) if out.returncode == 0 else None


def _memory_gb() -> float:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * page_size / 1024**3
    except (ValueError, OSError, AttributeError):
        return 0.0


def _gpu() -> str | None:
    # Asking the driver is instant; importing torch to ask it costs seconds on every check.
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        names = out.stdout.strip().splitlines()
        return names[0] if out.returncode == 0 and names else None
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "Apple silicon (MPS)"
    return None


def probe(disk_path: Path | str = ".") -> MachineFacts:
    from concurrent.futures import ThreadPoolExecutor

    # Each `tool --version` waits on another process (the cloud CLIs take 2-3 s each): ask them all at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = (*REQUIRED_TOOLS, *OPTIONAL_TOOLS)
        versions = pool.map(_tool_version, names)
        engine, podman, gpu = pool.submit(_docker_engine_answers), pool.submit(_course_podman), pool.submit(_gpu)
        tools = dict(zip(names, versions, strict=False))
    packages: dict[str, str | None] = {}
    for name in REQUIRED_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
    return MachineFacts(
        python_version=tuple(sys.version_info[:3]),  # type: ignore[arg-type]
        prefix=sys.prefix,
        base_prefix=getattr(sys, "base_prefix", sys.prefix),
        cpu_count=os.cpu_count() or 1,
        memory_gb=round(_memory_gb(), 1),
        disk_free_gb=round(shutil.disk_usage(disk_path).free / 1024**3, 1),
        tools=tools,
        docker_engine=engine.result(),
        packages=packages,
        gpu=gpu.result(),
        os=f"{platform.system()} {platform.release()} {platform.machine()}",
        course_podman=podman.result(),
    )


def evaluate(facts: MachineFacts) -> EnvironmentReport:
    checks: list[Prerequisite] = []
    major, minor, micro = facts.python_version
    version = f"{major}.{minor}.{micro}"
    if (major, minor) >= MIN_PYTHON:
        checks.append(Prerequisite("python", "pass", f"Python {version}"))
    else:
        checks.append(Prerequisite("python", "fail",
                                   f"Python {version} is older than {MIN_PYTHON[0]}.{MIN_PYTHON[1]}",
                                   f"install Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+ and rerun `make setup`"))
    if facts.prefix != facts.base_prefix:
        checks.append(Prerequisite("virtualenv", "pass", f"inside {facts.prefix}"))
    else:
        checks.append(Prerequisite(
            "virtualenv", "fail", "not inside a virtual environment",
            "run `make setup`, then use .venv/bin/python (or `source .venv/bin/activate`)"))
    for tool in REQUIRED_TOOLS:
        found = facts.tools.get(tool)
        checks.append(Prerequisite(tool, "pass", found) if found else
                      Prerequisite(tool, "fail", f"{tool} not found on PATH",
                                   f"install {tool} from your package manager"))
    docker = facts.tools.get("docker")
    podman = facts.tools.get("podman")
    if docker and facts.docker_engine:
        checks.append(Prerequisite("docker", "pass", f"{docker}; engine answers"))
    elif facts.course_podman:
        checks.append(Prerequisite("docker", "pass", f"{podman or 'podman'} with the course's storage in "
                                   f"{facts.course_podman} (set up by `make container-engine`)",
                                   "`make docker-check` builds with it"))
    elif podman:
        checks.append(Prerequisite(
            "docker", "warn", f"{podman}; not set up for the course",
            "run `make container-engine` to give podman the course's storage and base image"))
    elif docker:
        checks.append(Prerequisite(
            "docker", "warn", f"{docker}; no engine answers",
            "start Docker Desktop / the docker service, or run `make container-engine` (Linux) "
            "for podman, to build images in lesson 07"))
    else:
        checks.append(Prerequisite(
            "docker", "warn", "no docker client",
            "install Docker, or run `make container-engine` (Linux) for podman, for lesson 07"))
    for cli in ("aws", "gcloud", "az"):
        found = facts.tools.get(cli)
        checks.append(Prerequisite(cli, "pass", found) if found else
                      Prerequisite(cli, "warn", f"{cli} CLI not installed (optional)",
                                   "none needed for this course"))
    for name, version_found in sorted(facts.packages.items()):
        checks.append(Prerequisite(f"package {name}", "pass", version_found) if version_found else
                      Prerequisite(f"package {name}", "fail", f"{name} is not installed", "run `make setup`"))
    checks.append(Prerequisite("cpu", "pass" if facts.cpu_count >= 2 else "warn", f"{facts.cpu_count} cores",
                               "" if facts.cpu_count >= 2 else "training examples will be slow on one core"))
    checks.append(Prerequisite("memory", "pass", f"{facts.memory_gb:.1f} GB")
                  if facts.memory_gb >= MIN_MEMORY_GB else
                  Prerequisite("memory", "fail", f"{facts.memory_gb:.1f} GB < {MIN_MEMORY_GB:.0f} GB",
                               "close other programs or use a machine with 8 GB or more"))
    checks.append(Prerequisite("disk", "pass", f"{facts.disk_free_gb:.1f} GB free")
                  if facts.disk_free_gb >= MIN_DISK_GB
                  else Prerequisite("disk", "fail",
                                    f"{facts.disk_free_gb:.1f} GB free < {MIN_DISK_GB:.0f} GB",
                                    "free disk space: the environment alone takes about 6 GB"))
    checks.append(Prerequisite("gpu", "pass", facts.gpu) if facts.gpu else
                  Prerequisite("gpu", "warn", "no GPU: everything in this course runs on the CPU", ""))
    return EnvironmentReport(ok=all(c.status != "fail" for c in checks), checks=checks, facts=asdict(facts))


def to_outcome(report: EnvironmentReport):  # -> mlinfra.base.results.Outcome
    """The report in the shared result vocabulary: a met prerequisite passed, an unmet one failed, a missing
    optional tool skipped (its message says which and what it is for). The machine's facts go in `data`."""
    from mlinfra.base.results import FAILED, PASSED, SKIPPED, Outcome
    from mlinfra.base.results import Check as ResultCheck

    status = {"pass": PASSED, "fail": FAILED, "warn": SKIPPED}
    checks = [ResultCheck(c.name, status[c.status], message=c.detail if not c.fix else f"{c.detail}; {c.fix}")
              for c in report.checks]
    return Outcome("this machine", checks, data={"ok": report.ok, "facts": report.facts,
                                                 "checks": [asdict(c) for c in report.checks]})
