"""`autograder grade`: the verb. The grading itself is `autograder.grading.engine`'s."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.grading.engine import grade_class
from autograder.labs import find_lab
from autograder.paths import repo_root
from autograder.reports import add_json_option, format_table, write_json


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "grade",
        help="batch-grade a class with nbgrader (hidden tests restored) into grades.csv + feedback",
        description="Grade every submission in SUBMISSIONS_DIR (one folder per student holding the lab's files, "
        "or the .zip archives `autograder submit` makes). Each student is graded in a process of their own with "
        "the lab's time and memory limits; a broken submission is recorded with its reason and never stops the "
        "batch. Writes OUT/grades.csv, OUT/summary.json and OUT/feedback/<student>.html. Exit 0 when every "
        "submission was graded, whatever the scores.",
    )
    parser.add_argument("lab", metavar="LAB", help="the lab, e.g. lab01-environment")
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where to write (default: .grading/LAB)")
    parser.add_argument("--workers", type=int, default=2, help="students graded at once (default 2: one per core)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = repo_root()
    lab = find_lab(root, args.lab)
    if not args.submissions.is_dir():
        raise UsageError(f"{args.submissions}: not a folder; give the folder holding one folder or .zip per student")
    out = args.out or root / ".grading" / lab.name
    batch = grade_class(lab, args.submissions, out, workers=args.workers, progress=sys.stderr.isatty())
    if not batch.students:
        raise UsageError(f"{args.submissions}: no student folders or .zip archives found")
    rows = [(s.student, s.status, f"{s.score:g}/{s.max_score:g}", s.reason[:70]) for s in batch.students]
    print(format_table(("student", "status", "score", "reason"), rows))
    per = batch.seconds / len(batch.students)
    print(f"\ngraded {len(batch.students)} submission(s) in {batch.seconds:.1f} s ({per:.1f} s each); "
          f"wrote {out}/grades.csv, summary.json and feedback/")
    write_json(json.loads((out / "summary.json").read_text()), args.json_out)
    return 0
