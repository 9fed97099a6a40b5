"""`autograder grade`: the verb. Parses, calls an engine (engine.py locally, the airflow/ package on Airflow),
prints a table, and returns the batch Outcome (exit 0 once every submission was graded, whatever the scores)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import Lab, find_lab, load_lab
from autograder.paths import repo_root
from autograder.reports import add_json_option, format_table
from mlinfra.base.results import GRADER_ERROR
from mlinfra.base.runner import Done


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "grade",
        help="batch-grade a class with nbgrader (hidden tests restored), each student sandboxed",
        description="Grade every submission in SUBMISSIONS_DIR (one folder per student holding the lab's files, "
        "or the .zip archives `.venv/bin/autograder submit` makes). Every submission is treated as hostile: each student's "
        "kernel runs in a sandbox (bubblewrap, or a podman/Docker container) with no network and no view of "
        "solutions/, the hidden tests, the gradebook, other students or this process, under the lab's time, memory "
        "and process limits; scores come only from what the "
        "grader observed. A broken submission is recorded with its reason and never stops the batch; signs of "
        "tampering flag it for review (score kept). Writes OUT/grades.csv, OUT/summary.json, OUT/gradebook.db (nbgrader's, one for "
        "the class) and OUT/feedback/<student>.html (test names, points and messages; never the tests' code). Exit 0 "
        "when every submission was graded, whatever the scores; 1 when the grading machinery failed for a student "
        "(status 'grader error'); 2 when grading could not run.",
    )
    parser.add_argument("lab", metavar="LAB", help="the lab, e.g. lab01-environment; in a plain nbgrader course "
                        "folder (or with --nbgrader-course), one of its assignments, e.g. hw1")
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR", nargs="?",
                        help="one folder or .zip per student (default in an nbgrader course: its submitted/, "
                        "laid out as submitted/<student>/<assignment>/)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where to write (default: .grading/LAB; in an "
                        "nbgrader course: COURSE/grades/ASSIGNMENT)")
    parser.add_argument("--course", type=Path, metavar="FILE",
                        help="the course file (YAML): due times per lab and quiz, extensions per student and the "
                        "late rule, applied to when each submission was received (docs/instructor-guide.md)")
    parser.add_argument("--nbgrader-course", type=Path, metavar="DIR",
                        help="grade an assignment of this plain nbgrader course (source/, submitted/, "
                        "nbgrader_config.py); found by itself when run inside one")
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


def _lab_and_defaults(args: argparse.Namespace) -> tuple[Lab, Path | None, Path]:
    """The lab to grade, the default submissions folder and the default output folder: an assignment of a plain
    nbgrader course (given, or the one around the current folder) when it has one of that name, else a lab of the
    workbook."""
    from autograder.nbgrader_course import find_course

    course = args.nbgrader_course or find_course(Path.cwd())
    if args.nbgrader_course is not None and find_course(args.nbgrader_course) is None:
        raise UsageError(f"{args.nbgrader_course}: not an nbgrader course folder (no nbgrader_config.py beside "
                         "source/)")
    if course is not None:
        folder = Path(course) / "source" / args.lab
        if folder.is_dir():
            return load_lab(folder), Path(course) / "submitted", Path(course) / "grades" / args.lab
        known = ", ".join(sorted(p.name for p in (Path(course) / "source").iterdir() if p.is_dir())) or "none"
        missing = UsageError(f"no assignment {args.lab!r} under {course}/source/ (assignments: {known})")
        if args.nbgrader_course is not None:
            raise missing
        try:  # run from inside an nbgrader course, a workbook lab of that name is still found
            lab = find_lab(repo_root(), args.lab)
        except UsageError:
            raise missing from None
        return lab, None, repo_root() / ".grading" / lab.name
    root = repo_root()
    lab = find_lab(root, args.lab)
    return lab, None, root / ".grading" / lab.name


def run(args: argparse.Namespace) -> Done:
    lab, default_subs, default_out = _lab_and_defaults(args)
    args.submissions = args.submissions or default_subs
    if args.submissions is None:
        raise UsageError("give SUBMISSIONS_DIR: the folder holding one folder or .zip per student")
    if not args.submissions.is_dir():
        raise UsageError(f"{args.submissions}: not a folder; give the folder holding one folder or .zip per student")
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: give 1 or more")
    out = args.out or default_out
    from autograder.reports import ensure_dir

    rules = None
    if args.course is not None:
        from autograder.grading.late import load_course

        rules = load_course(args.course)  # a wrong course file stops before anything is graded
    ensure_dir(out)
    if args.engine == "airflow":
        if default_subs is not None:
            raise UsageError("--engine airflow grades the workbook's labs; grade an nbgrader course with the "
                             "local engine (the default)")
        try:
            from autograder.grading.airflow import airflow_options, grade_on_airflow
        except ImportError as exc:
            raise UsageError(f"--engine airflow is not available here ({exc}); use --engine local") from None
        batch = grade_on_airflow(lab.name, args.submissions, out, workers=args.workers, sandbox=args.sandbox,
                                 reveal_hidden=args.reveal_hidden, keep_work=args.keep_work, **airflow_options(args))
        if rules is not None and batch.parts:  # the Airflow DAG grades without the course file: applied here
            from autograder.grading.term import refresh

            by_name = {o.subject: o for o in refresh(out, course=rules.to_dict())}
            batch.parts = [by_name.get(p.subject, p) for p in batch.parts]
    else:
        from autograder.grading.engine import grade_class

        batch = grade_class(lab, args.submissions, out, workers=args.workers, progress=sys.stderr.isatty(),
                            sandbox=args.sandbox, keep_work=args.keep_work, reveal_hidden=args.reveal_hidden,
                            log=lambda line: print(line, file=sys.stderr, flush=True), course=args.course)
    if not batch.parts:
        raise UsageError(f"{args.submissions}: no student folders or .zip archives found")
    render(batch, out)
    failed = [p.subject for p in batch.parts if p.status == GRADER_ERROR]
    return Done(0 if not failed else 1, batch)


def render(batch, out: Path) -> None:
    from autograder.grading.manual import pending_points
    from autograder.grading.outputs import final_score, penalty, reason

    rows = [(p.subject, p.status, f"{final_score(p):g}/{p.max_score:g}", _extra(penalty(p), pending_points(p)),
             reason(p)) for p in batch.parts]
    print(format_table(("student", "status", "score", "late/manual", "reason"), rows, max_width=110))
    seconds = float(batch.data.get("seconds", 0.0))
    per = seconds / len(batch.parts)
    flagged = sum(1 for p in batch.parts if p.status == "flagged")
    waiting = sum(1 for p in batch.parts if pending_points(p))
    print(f"\ngraded {len(batch.parts)} submission(s) in {seconds:.1f} s ({per:.1f} s each; sandbox "
          f"{batch.data.get('sandbox')}); wrote {out}/grades.csv, summary.json, gradebook.db and "
          "feedback/"
          + (f"; {flagged} flagged for review (see the reason column)" if flagged else ""))
    for note in batch.data.get("notes", []):
        print(f"note: {note}")
    if waiting:
        print(f"{waiting} submission(s) need manual grading: {command()} review {out}")


def command() -> str:
    """This installation's `autograder`, as a path that runs from the current folder (the venv is rarely active)."""
    script = Path(sys.executable).parent / "autograder"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _extra(late_penalty: float, pending: float) -> str:
    parts = [f"-{late_penalty:g} late"] if late_penalty else []
    if pending:
        parts.append(f"{pending:g} pending")
    return ", ".join(parts)
