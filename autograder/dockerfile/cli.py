"""`autograder dockerfile`, the verb: check a Dockerfile (hadolint + the course's rules, rules.py); with --build,
build it, run it and score the running service with the practical assessment (build.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.dockerfile.rules import LintResult, lint
from autograder.errors import UsageError
from autograder.reports import add_json_option
from mlinfra.base.output import to_jsonable
from mlinfra.base.results import FAILED, INFO, PASSED, Check, ReportOutcome

DESCRIPTION = """\
Check a Dockerfile for the habits the Docker lab teaches: a pinned slim base, dependencies installed before the
code is copied (layer caching), a non-root USER, EXPOSE, a HEALTHCHECK, uvicorn on 0.0.0.0, no secrets in ENV or
ARG, and a .dockerignore beside it; plus every hadolint rule. Each finding names its line and a fix.

With --build it also builds the image (Docker, or podman where there is no Docker engine), runs it with its port
published on 127.0.0.1, waits for /health, scores the service with `.venv/bin/autograder assess`, then stops and removes the
container. A Dockerfile that copies mlinfra/ or model/ (the lab's) gets the course's service code and trained model
added to a temporary copy of its folder, which is what is built.
"""

EPILOG = """\
examples:
  .venv/bin/autograder dockerfile workspace/lab06-docker/Dockerfile           static checks (fast)
  .venv/bin/autograder dockerfile Dockerfile --json -                          the result as JSON on stdout
  .venv/bin/autograder dockerfile Dockerfile --build                           build, run and assess the image
no engine? `make container-engine` installs podman (Debian/Ubuntu, root) and prepares a local base image.
exit codes: 0 no findings (and, with --build, the image built and passed), 1 findings or a failed build/assessment,
            2 the command could not run (no such file, no container engine)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dockerfile", help="check a Dockerfile (and with --build, build, run and assess the image)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="the Dockerfile (its .dockerignore is looked for beside it)")
    parser.add_argument("--build", action="store_true",
                        help="also build the image, run it on 127.0.0.1 and score it with the practical assessment")
    parser.add_argument("--model-dir", type=Path, metavar="DIR",
                        help="the model folder to put in the image (default $MLINFRA_MODEL_DIR or models/digits-resnet18)")
    parser.add_argument("--tag", metavar="NAME:TAG", help="the image tag (default autograder/<folder>:latest)")
    parser.add_argument("--no-cache", action="store_true", help="build every layer again (with --build)")
    parser.add_argument("--no-assess", action="store_true",
                        help="with --build, stop once the container is healthy (skip the assessment)")
    parser.add_argument("--health-timeout", type=float, default=180.0, metavar="S",
                        help="seconds the container may take to answer /health (default 180)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render(result: LintResult) -> str:
    lines = []
    for f in result.findings:
        where = f"{f.file}:{f.line}" if f.line else f.file
        lines.append(f"{where}: {f.severity} {f.rule}: {f.message}")
        if f.fix:
            lines.append(f"    fix: {f.fix}")
    failing = [f for f in result.findings if f.failing]
    advice = len(result.findings) - len(failing)
    if failing:
        lines.append(f"{len(failing)} finding(s) to fix"
                     + (f" and {advice} piece(s) of advice" if advice else "")
                     + f": fix them and rerun `.venv/bin/autograder dockerfile {result.dockerfile}`")
    else:
        lines.append(f"{result.dockerfile}: no findings" + (f" ({advice} piece(s) of advice above)" if advice else ""))
    if result.hadolint != "ran":
        lines.append(f"note: hadolint {result.hadolint}")
    return "\n".join(lines)


def to_outcome(result: LintResult, build_summary: str = "", built: bool | None = None) -> ReportOutcome:
    """The result in the common vocabulary: a failed Check per failing finding, advice as info, the build as one
    Check; its JSON keeps the lint result's own keys (findings, facts, build, ...) that lab notebooks read."""
    checks = [Check(f.rule, FAILED if f.failing else INFO, message=f"{f.message}; {f.fix}".strip("; "),
                    where=f"{f.file or result.dockerfile}:{f.line}" if f.line else (f.file or result.dockerfile))
              for f in result.findings]
    if result.passed:
        checks.insert(0, Check("dockerfile", PASSED, message="no failing findings", where=result.dockerfile))
    if built is not None:
        checks.append(Check("build, run and assess", PASSED if built else FAILED, message=build_summary))
    notes = [] if result.hadolint == "ran" else [f"hadolint {result.hadolint}"]
    return ReportOutcome(result.dockerfile, checks, notes=notes, data=to_jsonable(result))


def run(args: argparse.Namespace) -> ReportOutcome:
    """The verb: lint (and with --build build, run, assess), print, return the result (the runner writes --json
    and sends this printout to stderr when the JSON goes to stdout)."""
    if args.path.is_dir():
        args.path = args.path / "Dockerfile"
    if args.health_timeout <= 0:
        raise UsageError(f"--health-timeout {args.health_timeout:g}: give a positive number of seconds")
    result = lint(args.path)
    print(render(result))
    if args.build:
        from autograder.dockerfile.build import build_and_assess

        outcome = build_and_assess(args.path, result, model_dir=args.model_dir, tag=args.tag,
                                   no_cache=args.no_cache, assess=not args.no_assess,
                                   health_timeout=args.health_timeout, log=say)
        result.build = outcome.as_dict()
        print(outcome.summary())
        return to_outcome(result, outcome.summary().splitlines()[-1] if outcome.summary() else "", outcome.passed)
    return to_outcome(result)
