"""`autograder quiz`: take a quiz, grade answers files, validate and export banks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.reports import add_json_option, format_table, to_jsonable
from mlinfra.base.output import write_text
from mlinfra.base.runner import Done

QUIZ_HELP = "a quiz id (module01, lesson03, phase1, ...) or a path to a bank"

DESCRIPTION = """\
Quizzes live in quizzes/<id>.yaml (one bank a quiz; the format is autograder/quiz/schema.json).
QUIZ is a quiz id (module01, lesson03, phase1, ...) or a path to a bank or a learner copy.

  autograder quiz take lesson03                   one question at a time, with explanations (self-check)
  autograder quiz take module01 --exam --learner ID   a graded quiz: one attempt, answers recorded for your
                                                  instructor, no feedback until it is graded
  autograder quiz grade module01 answers/         grade a folder of answers files or exam records
  autograder quiz coverage                        learning outcome -> lessons, labs, questions
  autograder quiz validate                        check every bank in quizzes/
  autograder quiz export module01 --format moodle -o module01.xml
"""

GRADE_HELP = """\
ANSWERS is one answers file or a folder of them, one per student, named by student (alice.yaml). An exam record
written by `quiz take --exam` is graded as it is: the learner's draw is rebuilt from the learner id it holds,
and only the drawn questions are scored. A plain answers file maps question ids to answers (YAML or JSON); on
a quiz that draws, its file name is the learner id:

  m01-what-is-mlops: b                 # single choice: the option id (as in the bank, not as shown)
  m01-monitoring-signals: [a, b, c]    # multiple select: option ids (partial credit; wrong picks cost)
  l05-shared-responsibility: false     # true/false
  l06-throughput: 40                   # numeric
  m01-model-registry: model registry   # short answer (case and punctuation do not count)

Wrong types, unknown ids and missing answers score 0 with a reason; a file that cannot be read is reported for
its student and the rest are graded. Writes grades.csv (a question a learner did not draw shows "-"),
grades.json (with each learner's draw) and feedback/<student>.md (each question asked, the answer given, the
right answer and the explanation: hand these back). Exit code 0 when every file was graded, 1 when some could
not be read.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("quiz", help="take a quiz, grade answers, validate or export banks",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="quiz_command", metavar="VERB", parser_class=type(parser))
    parser.set_defaults(func=lambda args: _no_verb(parser))

    take = verbs.add_parser("take", help="take a quiz in the terminal (answers can be piped on stdin)",
                            description="Take a quiz one question at a time: feedback and the explanation after "
                            "each answer, then the score, pass or fail and the topics to review. Questions and "
                            "options are shuffled per learner when the bank asks for it, the same way every time "
                            "for the same learner. An empty line skips a question. Exit 0 passed, 1 not passed.")
    take.add_argument("quiz", metavar="QUIZ", help=QUIZ_HELP + " or a learner copy")
    who = take.add_mutually_exclusive_group()
    who.add_argument("--learner", metavar="NAME", help="whose quiz this is: seeds the shuffle (default: your "
                     "user name)")
    who.add_argument("--seed", type=int, help="seed the shuffle with this number instead of a learner name")
    take.add_argument("--save", metavar="FILE", type=Path,
                      help="also write your answers to FILE (YAML) to hand in for `autograder quiz grade`; with "
                      "--exam, where the exam record goes (default: workspace/quizzes/QUIZ/LEARNER.yaml)")
    take.add_argument("--exam", action="store_true",
                      help="a graded attempt (module01, phase1): needs --learner; one attempt, answers recorded "
                      "as you go, no feedback or score shown; hand the record in")
    take.add_argument("--no-record", action="store_true", help="do not record the result in your progress")
    add_json_option(take)
    take.set_defaults(func=run_take)

    grade = verbs.add_parser("grade", help="grade an answers file or a folder of them (instructor)",
                             description=GRADE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    grade.add_argument("quiz", metavar="QUIZ", help=QUIZ_HELP + " (the source bank, which holds the key)")
    grade.add_argument("answers", metavar="ANSWERS", type=Path,
                       help="an answers file, or a folder of them named by student (alice.yaml, bob.json)")
    grade.add_argument("--out", metavar="DIR", type=Path,
                       help="where grades.csv and grades.json go (default: .grading/quiz-<id>/ in the workbook)")
    add_json_option(grade)
    grade.set_defaults(func=run_grade)

    validate = verbs.add_parser("validate", help="check banks against the schema and for consistency",
                                description="Validate quiz banks (default: every bank in quizzes/): the JSON "
                                "Schema in autograder/quiz/schema.json, then unique ids, answers that are options, "
                                "regexes that compile. Every problem is listed with its file, line and question. "
                                "Exit 0 all valid, 1 some bank has problems.")
    validate.add_argument("quizzes", nargs="*", metavar="QUIZ", help=QUIZ_HELP + " (default: all of quizzes/)")
    add_json_option(validate)
    validate.set_defaults(func=run_validate)

    export = verbs.add_parser("export", help="export a bank as Moodle XML or GIFT",
                              description="Export a bank for an LMS. Moodle XML keeps the most (markdown prompts, "
                              "feedback, partial credit); GIFT is plain text. Regexes have no Moodle equivalent "
                              "and are reported.")
    export.add_argument("quiz", metavar="QUIZ", help=QUIZ_HELP)
    export.add_argument("--format", required=True, choices=("moodle", "gift"))
    export.add_argument("-o", "--output", metavar="FILE", type=Path, help="write here (default: stdout)")
    export.set_defaults(func=run_export)

    cov = verbs.add_parser("coverage", help="learning outcome -> lessons, labs and quiz questions (from the tags)",
                           description="For each learning outcome in quizzes/outcomes.yaml: the lesson notebooks "
                           "tagged with it (metadata workbook.outcomes), the labs (lab.yaml outcomes) and the "
                           "questions of the summative banks (module01, phase1) and of the lesson quizzes. Exit 0 "
                           "when every outcome has a graded lab and at least 2 summative questions, else 1.")
    add_json_option(cov)
    cov.set_defaults(func=run_coverage)


def _no_verb(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _root_or_none() -> Path | None:
    from autograder.paths import repo_root

    try:
        return repo_root()
    except UsageError:
        return None


def _load(spec: str, *, schema_check: bool = True):  # -> Quiz
    from autograder.quiz.bank import load_quiz, resolve

    return load_quiz(resolve(spec), schema_check=schema_check)


def run_take(args: argparse.Namespace) -> Done:
    from autograder.quiz.shuffle import default_learner
    from autograder.quiz.take import take

    quiz = _load(args.quiz, schema_check=False)  # start at once; validate and CI check the schema
    if args.exam:
        return _run_exam(args, quiz)
    if quiz.summative and quiz.learner_copy:
        raise UsageError(f"{quiz.id} is a graded quiz: take it once with `autograder quiz take {quiz.id} --exam "
                         "--learner YOUR-ID`; your instructor grades it (self-check quizzes: lesson01..lesson08)")
    learner = args.learner or (None if args.seed is not None else default_learner())
    outcome = take(quiz, sys.stdin, sys.stdout, learner=learner, seed=args.seed)
    result = outcome.result
    if args.save:
        import yaml

        write_text(args.save, yaml.safe_dump(outcome.answers, sort_keys=False, allow_unicode=True))
        print(f"Answers saved to {args.save}")
    if not args.no_record:
        root = _root_or_none()
        if root is None:
            print("Progress not recorded: run this inside the workbook (or set WORKBOOK_ROOT).")
        else:
            from autograder.progress import record

            record(root, "quiz", quiz.id, passed=result.passed, score=result.score, max_score=result.max_score)
    payload = {**to_jsonable(result), "percent": round(result.percent, 2),
               "topics_to_review": [t for t, _ in result.topics_to_review()]}
    return Done(0 if result.passed else 1, payload)


def _run_exam(args: argparse.Namespace, quiz) -> Done:
    from autograder.quiz.exam import default_record, take_exam

    if args.seed is not None:
        raise UsageError("--exam draws your questions from your learner id: use --learner YOUR-ID, not --seed")
    if not args.learner:
        raise UsageError("--exam needs your learner id: add --learner YOUR-ID (as your instructor knows you)")
    if not args.save:
        root = _root_or_none()
        if root is None:
            raise UsageError("run the exam inside the workbook (or set WORKBOOK_ROOT), or name the record with --save")
        record_path = default_record(root, quiz.id, args.learner)
    else:
        record_path = args.save
    record = take_exam(quiz, sys.stdin, sys.stdout, learner=args.learner, record=record_path)
    return Done(0, {"quiz": quiz.id, "learner": record["learner"], "record": str(record_path),
                    "drawn": record["drawn"], "answered": len(record["answers"])})


def run_grade(args: argparse.Namespace) -> Done:
    from autograder.quiz.grading import feedback_text, grade_batch, write_grades_csv

    quiz = _load(args.quiz)
    if quiz.learner_copy:
        raise UsageError(f"{quiz.path} is a learner copy: grade with the source bank in quizzes/")
    if not args.answers.exists():
        raise UsageError(f"{args.answers}: no such answers file or folder")
    grades = grade_batch(quiz, args.answers)
    if not grades:
        raise UsageError(f"{args.answers}: no answers files in this folder (expected <student>.yaml or .json)")
    root = _root_or_none()
    out = args.out or ((root or Path.cwd()) / ".grading" / f"quiz-{quiz.id}")
    write_grades_csv(quiz, grades, out / "grades.csv")
    summary = {
        "quiz": quiz.id,
        "pass_mark": quiz.pass_mark,
        "max_score": quiz.max_score if not quiz.draw else None,
        "asked": quiz.asked,
        "students": [
            {"student": g.student, "file": g.file, "error": g.error or None, "learner": g.learner or None,
             "drawn": g.drawn,
             **({"score": g.result.score, "max_score": g.result.max_score, "percent": round(g.result.percent, 2),
                 "passed": g.result.passed, "questions": to_jsonable(g.result.questions),
                 "notes": g.result.notes} if g.result else {})}
            for g in grades
        ],
    }
    import json

    write_text(out / "grades.json", json.dumps(to_jsonable(summary), indent=2) + "\n")
    for g in grades:
        write_text(out / "feedback" / f"{g.student}.md", feedback_text(quiz, g))
    rows = []
    for g in grades:
        if g.result is None:
            rows.append((g.student, "-", "-", "not graded", g.error))
        else:
            r = g.result
            drawn = f"{len(g.drawn)} drawn; " if g.drawn is not None else ""
            rows.append((g.student, f"{r.score:g}/{r.max_score:g}", f"{r.percent:.0f}%",
                         "passed" if r.passed else "not passed", drawn + "; ".join(r.notes)))
    if len(grades) == 1 and grades[0].result is not None:
        detail = [(q.id, f"{q.points:g}/{q.max_points:g}", q.status, q.reason) for q in grades[0].result.questions]
        print(format_table(["question", "points", "status", "reason"], detail) + "\n")
    print(format_table(["student", "score", "percent", "result", "notes"], rows))
    print(f"\nwrote {out / 'grades.csv'}, {out / 'grades.json'} and feedback/ (explanations: hand them back)")
    failed = [g for g in grades if g.result is None]
    if failed:
        print(f"{len(failed)} answers file(s) could not be read: see the 'error' column", file=sys.stderr)
        return Done(1, summary)
    return Done(0, summary)


def run_validate(args: argparse.Namespace) -> int:
    from autograder.quiz.bank import bank_paths, load_quiz, resolve, validate_bank

    if args.quizzes:
        paths = [resolve(spec) for spec in args.quizzes]
    else:
        from autograder.paths import repo_root

        root = repo_root()
        paths = bank_paths(root)
        if not paths:
            raise UsageError(f"no quiz banks in {root / 'quizzes'}")
    rows, report, bad = [], [], 0
    for path in paths:
        problems = validate_bank(path)
        if problems:
            bad += 1
            for problem in problems:
                print(problem, file=sys.stderr)
            rows.append((path.name, "-", "-", "-", f"{len(problems)} problem(s)"))
        else:
            quiz = load_quiz(path)
            rows.append((path.name, len(quiz.questions), f"{quiz.max_score:g}", f"{quiz.pass_mark * 100:g}%",
                         "learner copy" if quiz.learner_copy else "ok"))
        report.append({"file": str(path), "problems": [str(p) for p in problems]})
    print(format_table(["bank", "questions", "points", "pass mark", "status"], rows))
    payload = {"banks": report, "valid": bad == 0}
    if bad:
        print(f"{bad} bank(s) with problems: fix the lines named above and run `autograder quiz validate` again",
              file=sys.stderr)
        return Done(1, payload)
    return Done(0, payload)


def run_export(args: argparse.Namespace) -> int:
    from autograder.quiz.export import export

    quiz = _load(args.quiz)
    text, warnings = export(quiz, args.format)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output:
        write_text(args.output, text)
        print(f"wrote {args.output} ({len(quiz.questions)} questions, {args.format})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def run_coverage(args: argparse.Namespace):  # -> Outcome
    from autograder.paths import repo_root
    from autograder.quiz.coverage import coverage, render

    result = coverage(repo_root())
    print(render(result))
    return result
