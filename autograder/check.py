"""`autograder check`: the learner's self-check, a thin face over `autograder.notebooks.run_notebook`."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import Lab, find_lab
from autograder.notebooks import run_notebook
from autograder.paths import repo_root, workspace_dir
from autograder.reports import add_json_option, format_table
from mlinfra.base.results import PASSED, UNREADABLE, Outcome


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check",
        help="self-check a lab: run your notebook in a fresh kernel and show each visible test",
        description="Run your copy of a lab's notebook (default: workspace/LAB/LAB.ipynb) in a fresh kernel, "
        "without modifying it, and show one row per graded test. Only the visible tests run here; your "
        "instructor's grading adds hidden ones. Exit 0 when every visible test passes, 1 when one fails, 2 when "
        "the check could not run.",
    )
    parser.add_argument("lab", metavar="LAB", help="the lab, e.g. lab01-environment")
    parser.add_argument("notebook", nargs="?", type=Path, metavar="NOTEBOOK",
                        help="the notebook to check (default: your workspace copy)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _default_notebook(root: Path, lab: Lab) -> Path:
    path = workspace_dir(root) / lab.name / lab.notebook
    if not path.is_file():
        raise UsageError(
            f"{path} does not exist yet: open the workbook with `make lab` (it copies labs/ into workspace/), "
            f"or name a notebook: .venv/bin/autograder check {lab.name} path/to/{lab.notebook}"
        )
    return path


def run(args: argparse.Namespace) -> Outcome:
    from autograder import progress

    root = repo_root()
    lab = find_lab(root, args.lab, source=False)
    path = args.notebook or _default_notebook(root, lab)
    if not path.is_file():
        raise UsageError(f"{path}: no such notebook")
    print(f"checking {path} in a fresh kernel ...", flush=True)
    result = run_notebook(path.resolve(), lab)
    rerun = f".venv/bin/autograder check {shlex.quote(lab.name)}" + (f" {shlex.quote(str(args.notebook))}" if args.notebook else "")
    if result.status == UNREADABLE:
        print(result.notes[0])
        return result
    rows = [(c.name, c.where, c.status, f"{c.points:g}/{c.max_points:g}", c.message) for c in result.checks]
    print(format_table(("test", "where", "result", "points", "message"), rows))
    print(f"\nvisible tests: {result.score:g}/{result.max_score:g} points")
    for note in result.notes:
        print(f"note: {note}")
    progress.record(root, "lab", lab.name, passed=result.passed, score=result.score, max_score=result.max_score)
    if result.passed:
        print("all visible tests pass. Your instructor's grading also runs hidden tests: test edge cases too.")
        return result
    failing = [c for c in result.checks if c.status != PASSED]
    if failing:
        first = failing[0]
        print(f"next: fix {first.name} ({first.where}): {first.message or first.status}; "
              f"then run `{rerun}` again")
    return result
