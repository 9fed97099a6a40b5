"""`autograder doctor`: the environment check outside notebooks, for a learner whose setup is broken."""

from __future__ import annotations

import argparse

from autograder.reports import add_json_option, format_table, write_json

MARKS = {"pass": "ok", "warn": "warn", "fail": "FAIL"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check this machine against the course prerequisites",
        description="Probe Python, the virtual environment, git, Docker, cloud CLIs, the course packages, CPU, "
        "memory, disk and GPU, and say what to fix. Exit 0 when every prerequisite is met (warnings are "
        "optional tools), 1 when one is not.",
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlinfra.envcheck import evaluate, probe

    report = evaluate(probe())
    rows = [(MARKS[c.status], c.name, c.detail, c.fix) for c in report.checks]
    print(format_table(("", "check", "found", "what to do"), rows))
    failed = [c.name for c in report.checks if c.status == "fail"]
    print()
    print("all prerequisites met" if report.ok else f"not ready: fix {', '.join(failed)} and run `autograder doctor` again")
    write_json(report.to_dict(), args.json_out)
    return 0 if report.ok else 1
