"""`--build`: build the image, run it on 127.0.0.1, wait for /health, assess it, then stop and remove the container."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autograder.dockerfile import context as ctx
from autograder.dockerfile import engine as eng
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


def default_tag(dockerfile: Path) -> str:
    folder = re.sub(r"[^a-z0-9_.-]+", "-", dockerfile.resolve().parent.name.lower()).strip("-.") or "image"
    return f"autograder/{folder}:latest"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_assessment(url: str, requests: int | None = None) -> dict[str, Any]:
    """`autograder assess --url URL --json FILE` as a subprocess: its own process, its own exit code."""
    with tempfile.TemporaryDirectory(prefix="autograder-assess-") as tmp:
        out = Path(tmp) / "assess.json"
        more = ["--requests", str(requests)] if requests else []
        proc = subprocess.run([sys.executable, "-m", "autograder", "assess", "--url", url, "--json", str(out), *more],
                              capture_output=True, text=True, timeout=900, check=False)
        if out.is_file():
            data: dict[str, Any] = json.loads(out.read_text())
            data["exit_code"] = proc.returncode
            return data
    last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
    return {"passed": False, "exit_code": proc.returncode, "error": last[0],
            "next_step": "run `autograder assess --url URL` yourself to see why"}


def build_and_assess(dockerfile: Path, lint_result: LintResult, *, model_dir: Path | None = None,
                     tag: str | None = None, no_cache: bool = False, assess: bool = True,
                     health_timeout: float = 180.0, log: Callable[[str], None] = print,
                     requests: int | None = None, isolated: bool = False,
                     run_args: tuple[str, ...] = ()) -> BuildOutcome:
    """Build, run, wait for /health, assess, stop. `isolated` (grading someone else's Dockerfile): the build's RUN
    steps get no network on podman (pip finds the course's wheels at /wheels), so they cannot reach the grading
    machine's own 127.0.0.1 services. `run_args`: more options for the container (limits)."""
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    try:
        root = repo_root()
    except UsageError:  # outside the checkout: no course storage, only a real engine will do
        root = Path.cwd()
    engine = eng.detect(root)  # UsageError (exit 2) when there is none
    outcome = BuildOutcome(engine=engine.name, tag=tag or default_tag(dockerfile))
    exposed = [p.split("/")[0] for p in lint_result.facts.exposed if p.split("/")[0].isdigit()]
    container_port = int(exposed[0]) if exposed else 8000
    context, staged_file, outcome.staged = ctx.staged_copy(dockerfile, model_dir)
    if outcome.staged:
        log(f"build context: {dockerfile.parent} plus the course's {' and '.join(outcome.staged)}")
    container: eng.Container | None = None
    try:
        log(f"building {outcome.tag} with {engine.name} (the first build installs the dependencies: minutes)")
        built = eng.build(engine, context, staged_file, outcome.tag, no_cache=no_cache, on_line=_step_printer(log),
                          network="none" if isolated and engine.name == "podman" else None)
        outcome.built, outcome.build_seconds, outcome.image_bytes = True, built.seconds, built.size_bytes
        container = eng.run_container(engine, outcome.tag, container_port, extra=run_args)
        outcome.port = container.port
        base_url = f"http://127.0.0.1:{container.port}"
        log(f"started {container.name}: {base_url} -> container port {container_port}; waiting for /health")
        outcome.seconds_to_healthy = eng.wait_healthy(container, lambda: http_ok(f"{base_url}/health"),
                                                      health_timeout)
        outcome.healthy = True
        outcome.image_healthcheck = container.healthcheck()
        if assess:
            log(f"assessing {base_url} (autograder assess --url {base_url})")
            outcome.assessment = run_assessment(base_url, requests)
    except eng.EngineError as exc:
        outcome.error = str(exc)
        if container is not None:
            outcome.log_tail = container.logs(20)
    finally:
        if container is not None:
            container.stop()
        shutil.rmtree(context.parent, ignore_errors=True)
    return outcome


def _step_printer(log: Callable[[str], None]) -> Callable[[str], None]:
    """Show the build's steps (STEP 3/13: ... or #5 [3/9] ...) as progress, not its whole output."""
    def on_line(line: str) -> None:
        if re.match(r"^(STEP \d+/\d+:|#\d+ \[)", line):
            log(f"  {line[:110]}")
    return on_line
