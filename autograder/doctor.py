"""`autograder doctor`: the environment check outside notebooks, for a learner whose setup is broken.

A thin face over mlinfra.envcheck (probe the machine, judge it): print the table, return the outcome.
"""

from __future__ import annotations

import argparse

from autograder.reports import add_json_option, format_table
from mlinfra.base.runner import Done

MARKS = {"pass": "ok", "warn": "warn", "fail": "FAIL"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check this machine against the course prerequisites",
        description="Probe Python, the virtual environment, git, the container engine (Docker, or podman as "
        "`make container-engine` sets it up), cloud CLIs, the course packages, CPU, memory, disk and GPU, and say "
        "what to fix. Exit 0 when every prerequisite is met (warnings are optional tools), 1 when one is not.",
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Done:
    from mlinfra.envcheck import evaluate, probe, to_outcome

    report = evaluate(probe())
    rows = [(MARKS[c.status], c.name, c.detail, c.fix) for c in report.checks]
    print(format_table(("", "check", "found", "what to do"), rows))
    failed = [c.name for c in report.checks if c.status == "fail"]
    print()
    print("all prerequisites met" if report.ok else f"not ready: fix {', '.join(failed)} and run `.venv/bin/autograder doctor` again")
    # Exit by the prerequisites alone: a missing optional tool (a warning) is reported, never a failure.
    return Done(0 if report.ok else 1, to_outcome(report))
