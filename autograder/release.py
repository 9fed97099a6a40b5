"""`autograder release`: regenerate labs/ from solutions/, check them, or export the class copy (instructor).
The work is autograder.generate's; this module is the command's face."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.generate import check_outcome, dist_outcome, release_outcome
from autograder.paths import repo_root
from autograder.reports import add_json_option
from mlinfra.base.results import Outcome


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "release",
        help="regenerate labs/ (student versions) from solutions/, or export a class copy (instructor)",
        description="Regenerate labs/<lab>/ from solutions/<lab>/: nbgrader generate_assignment for notebooks, "
        "solution regions in the lab's other files replaced by '# YOUR CODE HERE'. With --check, change "
        "nothing and report whether labs/ is in sync and free of solution lines. With --student-dist DIR, write "
        "the class copy an instructor-led class receives (labs, lessons, learner copies of the quizzes with no "
        "key of a graded quiz, the course library minus the code the labs ask learners to write, a README and "
        "Makefile for students) and check it for leaks. Exit 0 done and clean, 1 problems found, 2 could not run.",
    )
    parser.add_argument("labs", nargs="*", metavar="LAB", help="labs to release (default: all)")
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if labs/ differs from a fresh release or leaks solution lines")
    parser.add_argument("--student-dist", metavar="DIR", type=Path,
                        help="write the class copy into DIR (new or empty) and check it for leaks")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    root = repo_root()
    if args.student_dist:
        outcome = dist_outcome(root, args.student_dist)
        print(f"class copy written to {args.student_dist}: {', '.join(outcome.data['written'])}")
        for check in outcome.checks:
            if not check.passed:
                print(f"leak: {check.message}")
        if outcome.passed:
            print("leak check: no solution line, hidden test or summative quiz key in it")
        else:
            print(f"{len(outcome.checks)} leak(s): mark the code with '# class-copy: omit-begin/omit-end' or move "
                  "it out of the course library, then export again")
        return outcome
    if args.check:
        outcome = check_outcome(root)
        for check in outcome.checks:
            print(check.message)
        if not outcome.passed:
            print(f"{len(outcome.checks)} problem(s): run `.venv/bin/autograder release` to regenerate labs/ from solutions/")
        return outcome
    outcome = release_outcome(root, args.labs or None)
    for check in outcome.checks:
        if check.name.startswith("release "):
            lab = check.name.removeprefix("release ")
            print(f"released {lab}: {check.message} -> labs/{lab}/")
        else:
            print(f"leak: {check.message}")
    if not outcome.passed:
        print("solution lines reached labs/: put them between solution markers in solutions/ and release again")
    return outcome
