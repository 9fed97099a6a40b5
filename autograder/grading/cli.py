"""`autograder grade`: the verb. Parses, calls an engine (engine.py locally, the airflow/ package on Airflow),
prints a table, and returns the batch Outcome (exit 0 once every submission was graded, whatever the scores)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import find_lab
from autograder.paths import repo_root
from autograder.reports import add_json_option, format_table
from mlinfra.base.results import GRADER_ERROR
from mlinfra.base.runner import Done


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "grade",
        help="batch-grade a class with nbgrader (hidden tests restored), each student sandboxed",
        description="Grade every submission in SUBMISSIONS_DIR (one folder per student holding the lab's files, "
        "or the .zip archives `autograder submit` makes). Every submission is treated as hostile: each student's "
        "kernel runs in a sandbox (bubblewrap, or a podman/Docker container) with no network and no view of "
        "solutions/, the hidden tests, the gradebook, other students or this process, under the lab's time, memory "
        "and process limits; scores come only from what the "
        "grader observed. A broken submission is recorded with its reason and never stops the batch; signs of "
        "tampering flag it for review (score kept). Writes OUT/grades.csv, OUT/summary.json, OUT/gradebook.db (nbgrader's, one for "
        "the class) and OUT/feedback/<student>.html (test names, points and messages; never the tests' code). Exit 0 "
        "when every submission was graded, whatever the scores; 1 when the grading machinery failed for a student "
        "(status 'grader error'); 2 when grading could not run.",
    )
    parser.add_argument("lab", metavar="LAB", help="the lab, e.g. lab01-environment")
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where to write (default: .grading/LAB)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="students graded at once (default: one per core)")
    parser.add_argument("--sandbox", choices=("auto", "bwrap", "container", "none"), default="auto",
                        help="how student code is isolated. auto (default): bubblewrap, else a container engine "
                        "(podman or Docker), else grade refuses and says what to install. bwrap or container: that "
                        "one, or exit 2 with why it cannot run here. 'none' runs submissions unsandboxed: they can then read solutions/ "
                        "and the hidden tests, forge grades and touch your files. Use it only for trusted work")
    parser.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="none",
                        help="the same as --sandbox none: for trusted work only")
    parser.add_argument("--engine", choices=("local", "airflow"), default="local",
                        help="local (default): workers on this machine; airflow: one Airflow task per student")
    parser.add_argument("--reveal-hidden", action="store_true",
                        help="feedback pages show the hidden tests (nbgrader's own page): only after the deadline")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep OUT/work (each student's course folder, sandbox folder and logs) for inspection")
    add_json_option(parser)
    from autograder.grading.airflow import add_airflow_options

    add_airflow_options(parser)  # --executor, --airflow-db, --celery-workers, ...: the Airflow engine's own
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Done:
    root = repo_root()
    lab = find_lab(root, args.lab)
    if not args.submissions.is_dir():
        raise UsageError(f"{args.submissions}: not a folder; give the folder holding one folder or .zip per student")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give 1 or more")
    out = args.out or root / ".grading" / lab.name
    from autograder.reports import ensure_dir

    ensure_dir(out)
    if args.engine == "airflow":
        try:
            from autograder.grading.airflow import airflow_options, grade_on_airflow
        except ImportError as exc:
            raise UsageError(f"--engine airflow is not available here ({exc}); use --engine local") from None
        batch = grade_on_airflow(lab.name, args.submissions, out, workers=args.workers, sandbox=args.sandbox,
                                 reveal_hidden=args.reveal_hidden, keep_work=args.keep_work, **airflow_options(args))
    else:
        from autograder.grading.engine import grade_class

        batch = grade_class(lab, args.submissions, out, workers=args.workers, progress=sys.stderr.isatty(),
                            sandbox=args.sandbox, keep_work=args.keep_work, reveal_hidden=args.reveal_hidden,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    if not batch.parts:
        raise UsageError(f"{args.submissions}: no student folders or .zip archives found")
    render(batch, out)
    failed = [p.subject for p in batch.parts if p.status == GRADER_ERROR]
    return Done(0 if not failed else 1, batch)


def render(batch, out: Path) -> None:
    from autograder.grading.outputs import reason

    rows = [(p.subject, p.status, f"{p.score:g}/{p.max_score:g}", reason(p)) for p in batch.parts]
    print(format_table(("student", "status", "score", "reason"), rows, max_width=110))
    seconds = float(batch.data.get("seconds", 0.0))
    per = seconds / len(batch.parts)
    flagged = sum(1 for p in batch.parts if p.status == "flagged")
    print(f"\ngraded {len(batch.parts)} submission(s) in {seconds:.1f} s ({per:.1f} s each; sandbox "
          f"{batch.data.get('sandbox')}); wrote {out}/grades.csv, summary.json, gradebook.db and "
          "feedback/"
          + (f"; {flagged} flagged for review (see the reason column)" if flagged else ""))
