"""`autograder class report`: join every lab, quiz and the practical per learner into one table, an HTML report
with item analysis, and the LMS gradebook imports (docs/class-report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autograder.reports import add_json_option, format_table
from mlinfra.base.errors import UsageError
from mlinfra.base.results import INFO, Check, Outcome
from mlinfra.base.runner import EXIT_COULD_NOT_RUN

DESCRIPTION = """\
Join the class's graded work into one gradebook. Each INPUT is one of:
  a folder `.venv/bin/autograder grade` wrote (grades.csv + summary.json): a lab, or an nbgrader course's assignment
  a folder `.venv/bin/autograder quiz grade` wrote (grades.json)
  the JSON file `.venv/bin/autograder assess --pack ... --json FILE` wrote: the practical
Scores are taken as graded: late penalties already off, manual points in once entered (pending ones are listed).
Writes to OUT (default .grading/class):
  report.html   one self-contained page: the class table, score distribution per assessment, share passing and
                discrimination (top 27% against bottom 27%) per test and question, distractor choice rates of each
                quiz question, flagged submissions and what still needs a person
  class.csv     one row per learner: every assessment, total, percent, notes
  moodle.csv    for Moodle's Grades > Import > CSV file (map "Username", "ID number" or "Email address")
  canvas.csv    for Canvas's Grades > Import (Student, ID, SIS User ID, SIS Login ID, Section, Points Possible)
--roster FILE maps learner ids to the LMS's people: a CSV with a `student` column and any of name, first name,
last name, email, username, id number, section, canvas_id, sis_user_id, sis_login_id; a Canvas gradebook export
works as it is (matched by SIS Login ID). Learners are matched by id (Unicode-normalised, case aside); two results
of one assessment for one learner are a conflict, neither imported, and odd or look-alike ids are flagged: both
listed under "needs review". Exit 0 when written, 2 when an input cannot be read.
"""

EPILOG = """\
example (from the repository root):
  .venv/bin/autograder class report .grading/lab01-environment .grading/lab02-ml-lifecycle \\
      .grading/quiz-module01 grades/practical.json --roster roster.csv --out grades/class
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("class", help="one gradebook for the class: report, item analysis, LMS exports",
                            description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="class_command", metavar="VERB", parser_class=type(parser))
    parser.set_defaults(func=lambda args: _no_verb(parser))
    report = verbs.add_parser("report", help="join labs, quizzes and the practical; write report.html and CSVs",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="a `grade` or `quiz grade` output folder, or an `assess --pack --json` file")
    report.add_argument("--out", type=Path, metavar="DIR", help="where to write (default: .grading/class)")
    report.add_argument("--roster", type=Path, metavar="FILE.csv", help="learner ids -> LMS identities (see above)")
    report.add_argument("--missing", choices=("blank", "zero"), default="blank",
                        help="a learner with nothing handed in for an assessment: a blank cell (the LMS keeps what "
                        "it has; default) or 0")
    report.add_argument("--title", default="Class report", help="the report's heading")
    add_json_option(report)
    report.set_defaults(func=run_report)


def _no_verb(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_COULD_NOT_RUN


def run_report(args: argparse.Namespace) -> Outcome:
    from autograder.classbook import exports, html, sources
    from autograder.reports import ensure_dir, write_text

    root = _root_or_none()
    for path in args.inputs:  # named before anything is written
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder; give a `grade` or `quiz grade` output folder, or "
                             "the practical's `assess --pack ... --json FILE`")
    out = ensure_dir(args.out or (root or Path.cwd()) / ".grading" / "class")  # an unwritable one, before reading
    assessments = [sources.load(path, root) for path in args.inputs]
    names = [(a.kind, a.name) for a in assessments]
    twice = sorted({f"{k} {n}" for k, n in names if names.count((k, n)) > 1})
    if twice:
        raise UsageError(f"{', '.join(twice)} given twice: give each assessment's output once")
    roster = exports.read_roster(args.roster) if args.roster else None
    table = exports.build(assessments, roster, missing_as_zero=args.missing == "zero")
    files = {"report.html": html.report_html(table, args.title), "class.csv": exports.class_csv(table),
             "moodle.csv": exports.moodle_csv(table), "canvas.csv": exports.canvas_csv(table)}
    for name, text in files.items():
        write_text(out / name, text)
    unknown = sorted(set(table.people) - set(roster)) if roster else []  # learners the LMS would not match
    rows = []
    for a in assessments:
        scored = [r for r in a.results.values()
                  if r.status not in ("missing", "unreadable", "grader error", sources.CONFLICT)]
        mean = sum(r.score for r in scored) / len(scored) if scored else 0.0
        rows.append((a.kind, a.name, str(len(a.results)), f"{mean:.1f}/{a.max_score:g}",
                     str(sum(1 for r in a.results.values()
                             if r.pending or r.flags or r.status in ("flagged", sources.CONFLICT)))))
    print(format_table(("kind", "assessment", "learners", "mean", "to review"), rows))
    review = _identity_problems(assessments)
    if review:  # a grade that may be filed under the wrong learner: said here, not only in the report
        print("\nneeds review before importing (the grade is filed under a learner only once a person decides):")
        print("\n".join(f"  {line}" for line in review))
    print(f"\nwrote {out}/report.html, class.csv, moodle.csv and canvas.csv ({len(table.students())} learners)")
    if unknown:
        print(f"not in the roster (no LMS identity; check their ids): {', '.join(table.people[k].student for k in unknown)}")
    print(f"next: open {out}/report.html in a browser; import {out}/canvas.csv (Canvas: Grades > Import) or "
          f"{out}/moodle.csv (Moodle: Grades > Import > CSV file)")
    checks = [Check(f"{a.kind} {a.name}", INFO, message=f"{len(a.results)} learner(s), max {a.max_score:g}",
                    where=a.source) for a in assessments]
    return Outcome("class report", checks, notes=[n for a in assessments for n in a.notes],
                   data={"out": str(out), "files": sorted(files), "learners": len(table.students()),
                         "not_in_roster": [table.people[k].student for k in unknown], "needs_review": review})


def _identity_problems(assessments: list) -> list[str]:
    """One line per conflict (two results for one learner) and per id flagged as not plain or a look-alike."""
    from autograder.classbook.sources import CONFLICT
    from mlinfra.base.output import printable

    out = []
    for a in assessments:
        for r in a.results.values():
            if r.status == CONFLICT:
                out.append(f"{a.kind} {a.name}: conflict: {r.reason}")
            out += [f"{a.kind} {a.name}: {f}" for f in r.flags if f.startswith("the id ")]
    return [printable(line) for line in out]


def _root_or_none() -> Path | None:
    from autograder.paths import repo_root

    try:
        return repo_root()
    except UsageError:
        return None
