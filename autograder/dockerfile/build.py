"""`--build`: build the image, run it on 127.0.0.1, wait for /health, assess it, then stop and remove the container."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autograder import container_engine as eng
from autograder.dockerfile import bases as bases_mod
from autograder.dockerfile import context as ctx
from autograder.dockerfile.rules import LintResult


@dataclass
class BuildOutcome:
    engine: str = ""
    tag: str = ""
    staged: list[str] = field(default_factory=list)
    built: bool = False
    build_seconds: float | None = None
    image_bytes: int | None = None
    port: int | None = None
    healthy: bool = False
    seconds_to_healthy: float | None = None
    image_healthcheck: bool | None = None  # the image's own HEALTHCHECK, run once; None when it has none
    assessment: dict[str, Any] | None = None
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        assessed = self.assessment is None or bool(self.assessment.get("passed"))
        return self.built and self.healthy and self.image_healthcheck is not False and assessed and not self.error

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        lines = []
        if self.built:
            size = f", {self.image_bytes / 1e6:.0f} MB" if self.image_bytes else ""
            lines.append(f"built {self.tag} with {self.engine} in {self.build_seconds:.0f} s{size}")
        if self.healthy:
            lines.append(f"container healthy on 127.0.0.1:{self.port} after {self.seconds_to_healthy:.1f} s")
        if self.image_healthcheck is False:
            lines.append("the image's own HEALTHCHECK fails while /health answers: check its URL and port")
        if self.assessment is not None:
            a = self.assessment
            lines.append(f"assessment: {a.get('score')} of {a.get('max_score')} points, "
                         f"{'passed' if a.get('passed') else 'not passed'}; {a.get('next_step', '')}".rstrip())
        if self.error:
            lines.append(f"--build: {self.error}")
            lines += [f"    {ln}" for ln in self.log_tail[-8:]]
        return "\n".join(lines)


@dataclass(frozen=True)
class Caps:
    """What one graded build may take (grading someone else's Dockerfile); each is reported when it is hit."""

    build_s: float = 900.0  # the build, dependencies installed from the course's wheels included
    image_mb: int = 2048  # the built image (the reference is about a third of it)
    run_s: float = 600.0  # the container's life: start, /health, the assessment
    # What the build's RUN steps may take together (container_engine.BuildLimits): the lab's memory, and
    # processes, CPU and writes as its container gets; one file at most the image's own cap.
    memory_mb: int = 4096
    pids: int = 512
    cpus: float = 1.0
    disk_mb: int = 4096

    def build_limits(self) -> eng.BuildLimits:
        return eng.BuildLimits(memory_mb=self.memory_mb, pids=self.pids, cpus=self.cpus,
                               file_mb=self.image_mb or 2048, disk_mb=self.disk_mb)


def default_tag(dockerfile: Path) -> str:
    folder = re.sub(r"[^a-z0-9_.-]+", "-", dockerfile.resolve().parent.name.lower()).strip("-.") or "image"
    return f"autograder/{folder}:latest"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_assessment(url: str, requests: int | None = None, timeout: float = 900,
                   served_model: Path | None = None) -> dict[str, Any]:
    """`autograder assess --url URL --json FILE` as a subprocess: its own process, its own exit code.
    `served_model`: the model folder the image was built with; the service's answers must then be that model's
    (`--served-model --model-dir`: requirement 3 and every timed request of requirement 4 compare them with the
    grader's own forward), so a service that answers without the model cannot pass."""
    with tempfile.TemporaryDirectory(prefix="autograder-assess-") as tmp:
        out = Path(tmp) / "assess.json"
        more = ["--requests", str(requests)] if requests else []
        if served_model is not None:
            more += ["--served-model", "--model-dir", str(served_model)]
        try:
            proc = subprocess.run([sys.executable, "-m", "autograder", "assess", "--url", url, "--json", str(out),
                                   *more], capture_output=True, text=True, timeout=max(1.0, timeout), check=False)
        except subprocess.TimeoutExpired:
            return {"passed": False, "exit_code": None,
                    "error": f"the assessment did not finish within the container's time limit ({timeout:.0f} s)",
                    "next_step": "run `.venv/bin/autograder assess --url URL` yourself to see why"}
        if out.is_file():
            data: dict[str, Any] = json.loads(out.read_text())
            data["exit_code"] = proc.returncode
            return data
    last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
    return {"passed": False, "exit_code": proc.returncode, "error": last[0],
            "next_step": "run `.venv/bin/autograder assess --url URL` yourself to see why"}


def build_and_assess(dockerfile: Path, lint_result: LintResult, *, model_dir: Path | None = None,
                     tag: str | None = None, no_cache: bool = False, assess: bool = True,
                     health_timeout: float = 180.0, log: Callable[[str], None] = print,
                     requests: int | None = None, isolated: bool = False,
                     run_args: tuple[str, ...] = (), caps: Caps | None = None,
                     keep_image: bool = True, batch: str = "",
                     bases: tuple[str, ...] = bases_mod.COURSE_BASES) -> BuildOutcome:
    """Build, run, wait for /health, assess, stop. `isolated` (grading someone else's Dockerfile): a Dockerfile
    that makes the builder fetch something itself (ADD of a URL: the `remote-source` finding) is not built; the
    build's RUN steps get no network on podman (pip finds the course's wheels at /wheels), and the builder runs
    where nothing is reachable (container_engine.build's `isolated`), so nothing of the grading machine's network,
    its own 127.0.0.1 included, can be reached; the container runs hardened (container_engine.hardened_options).
    `caps`: the time, size and run limits, each reported when hit.
    `keep_image` False: the image (and, isolated, everything the build made) is removed at the end.
    `run_args`: more options for the container (limits). `batch`: the grading batch it is for (its image and
    container are labelled with it, so the batch's end removes them even if this process is killed).
    `bases` (isolated): the only images it may start from besides its own earlier stages (bases.foreign_sources:
    anything else is not built)."""
    from autograder.dockerfile.rules import REMOTE_RULE
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    try:
        root = repo_root()
    except UsageError:  # outside the checkout: no course storage, only a real engine will do
        root = Path.cwd()
    engine = eng.detect(root)  # UsageError (exit 2) when there is none
    outcome = BuildOutcome(engine=engine.name, tag=tag or default_tag(dockerfile))
    remote = [f for f in lint_result.findings if f.rule == REMOTE_RULE]
    if isolated and remote:
        outcome.error = (f"not built: line {remote[0].line}: {remote[0].message}; {remote[0].fix}")
        return outcome
    if isolated:
        # Only the course's base and earlier stages: not an image someone built on the grading machine.
        text = dockerfile.read_text()
        foreign = bases_mod.foreign_sources(text, dockerfile.name, bases,
                                            digests=_base_digests(engine, bases) if "@" in text else ())
        if foreign:
            outcome.error = f"not built: line {foreign[0].line}: {foreign[0].message}; {foreign[0].fix}"
            return outcome
    caps = caps or Caps(build_s=1800.0, image_mb=0, run_s=900.0 + health_timeout)
    exposed = [p.split("/")[0] for p in lint_result.facts.exposed if p.split("/")[0].isdigit()]
    container_port = int(exposed[0]) if exposed else 8000
    context, staged_file, outcome.staged = ctx.staged_copy(dockerfile, model_dir)
    if outcome.staged:
        log(f"build context: {dockerfile.parent} plus the course's {' and '.join(outcome.staged)}")
    container: eng.Container | None = None
    try:
        log(f"building {outcome.tag} with {engine.name} (the first build installs the dependencies: minutes)")
        built = eng.build(engine, context, staged_file, outcome.tag, no_cache=no_cache, on_line=_step_printer(log),
                          network="none" if isolated and engine.name == "podman" else None, timeout=caps.build_s,
                          isolated=isolated, batch=batch, limits=caps.build_limits() if isolated else None)
        outcome.built, outcome.build_seconds, outcome.image_bytes = True, built.seconds, built.size_bytes
        if caps.image_mb and (size := built.size_bytes or 0) > caps.image_mb * 1_000_000:
            outcome.built = False
            raise eng.EngineError(f"the image is {size / 1e6:.0f} MB, over the {caps.image_mb} MB limit "
                                  "of a graded image: leave data and weights out of it (.dockerignore)")
        started = time.monotonic()
        # A graded image is a student's code: hardened as the grading sandbox's containers are, and (podman) stopped
        # by the engine at the end of its life even if this process is killed.
        # ... and with no network (offline): it reaches nothing of the grading machine's or beyond; the probes
        # reach its port through a relay of ours into its network namespace.
        container = eng.run_container(engine, outcome.tag, container_port, extra=run_args, hardened=isolated,
                                      lifetime=caps.run_s if isolated else None, batch=batch, offline=isolated)
        outcome.port = container.port
        base_url = f"http://127.0.0.1:{container.port}"
        log(f"started {container.name}: {base_url} -> container port {container_port}; waiting for /health")
        outcome.seconds_to_healthy = eng.wait_healthy(container, lambda: http_ok(f"{base_url}/health"),
                                                      min(health_timeout, caps.run_s))
        outcome.healthy = True
        outcome.image_healthcheck = container.healthcheck()
        if assess:
            log(f"assessing {base_url} (.venv/bin/autograder assess --url {base_url})")
            # Graded: the answers must be the staged model's (a service with no model answering a constant, or
            # one serving another model, loses requirements 3 and 4).
            served = (model_dir or ctx.default_model_dir()) if isolated else None
            outcome.assessment = run_assessment(base_url, requests,
                                                timeout=caps.run_s - (time.monotonic() - started),
                                                served_model=served)
    except eng.EngineError as exc:
        outcome.error = str(exc)
        if container is not None:
            outcome.log_tail = container.logs(20)
    finally:
        if container is not None:
            container.stop()
        if not keep_image:
            eng.remove_image(engine, outcome.tag)
        shutil.rmtree(context.parent, ignore_errors=True)
    return outcome


def _base_digests(engine: eng.Engine, bases: tuple[str, ...]) -> list[str]:
    """The digests the allowed base images have in this engine's storage (a pin to one of them is theirs)."""
    found: list[str] = []
    for base in bases:
        proc = engine.run("image", "inspect", base, "--format", "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}",
                          check=False)
        if proc.returncode == 0:
            found += [word.rpartition("@")[2] for word in proc.stdout.split() if "sha256:" in word]
    return found


def _step_printer(log: Callable[[str], None]) -> Callable[[str], None]:
    """Show the build's steps (STEP 3/13: ... or #5 [3/9] ...) as progress, not its whole output."""
    def on_line(line: str) -> None:
        if re.match(r"^(STEP \d+/\d+:|#\d+ \[)", line):
            log(f"  {line[:110]}")
    return on_line
