"""`autograder quiz`: take a quiz, grade answers files, validate and export banks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.reports import add_json_option, format_table, to_jsonable
from mlinfra.base.output import write_text
from mlinfra.base.runner import EXIT_COULD_NOT_RUN, EXIT_PASSED, Done

QUIZ_HELP = "a quiz id (module01, lesson03, phase1, ...) or a path to a bank"

DESCRIPTION = """\
Quizzes live in quizzes/<id>.yaml (one bank a quiz; the format is autograder/quiz/schema.json).
QUIZ is a quiz id (module01, lesson03, phase1, ...) or a path to a bank or a learner copy.

  .venv/bin/autograder quiz take lesson03                   one question at a time, with explanations (self-check)
  .venv/bin/autograder quiz take module01 --exam --ticket T  a graded quiz: one attempt with the ticket your
                                                            instructor issued, answers recorded, no feedback until
                                                            it is graded
  .venv/bin/autograder quiz ticket module01 ada grace       issue signed exam tickets (instructor)
  .venv/bin/autograder quiz grade module01 records/         grade a folder of exam records (instructor)
  .venv/bin/autograder quiz lint                            can a blind strategy pass the graded quizzes?
  .venv/bin/autograder quiz coverage                        learning outcome -> lessons, labs, questions, per learner
  .venv/bin/autograder quiz validate                        check every bank in quizzes/
  .venv/bin/autograder quiz export module01 --format moodle -o module01.xml
"""

GRADE_HELP = """\
ANSWERS is one file or a folder of them, one per learner. On a graded (summative) quiz only exam records written
by `quiz take --exam --ticket FILE` score: the record's ticket must verify under the instructor's key
(.state/quiz-ticket.key, or --key) and name the record's learner and this quiz. The draw is rebuilt from the
ticket, and only the drawn questions are scored. Every other file is a row of its own with 0 points and the
reason: unreadable, no-ticket, bad-signature, wrong-learner, wrong-quiz, duplicate (a second record of one
learner: the earliest started is graded), over-time, outside-window. --accept REASON scores no-ticket, over-time
or outside-window files anyway (noted on their row).

On a self-check (formative) quiz a plain answers file maps question ids to answers (YAML or JSON):

  m01-what-is-mlops: b                 # single choice: the option id (as in the bank, not as shown)
  m01-monitoring-signals: [a, b, c]    # multiple select: option ids (partial credit; wrong picks cost)
  l05-shared-responsibility: false     # true/false
  l06-throughput: 40                   # numeric
  m01-model-registry: model registry   # short answer (case and punctuation do not count)

Each file is read with limits (size, nesting, no YAML aliases); one bad file never stops the others. Writes
grades.csv (a question a learner did not draw shows "n/a"; cells a spreadsheet would run as formulas are quoted),
grades.json and feedback/<learner>.md: the score per outcome and each question in the order asked, with the
options numbered as the learner saw them. A graded quiz's feedback holds no key and no explanation unless you
pass --reveal (do that once the exam has closed). Exit 0 when every file was scored, 1 when some scored nothing.
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
                      help="also write your answers to FILE (YAML) to hand in for `.venv/bin/autograder quiz grade`; with "
                      "--exam, where the exam record goes (default: workspace/quizzes/QUIZ/LEARNER.yaml)")
    take.add_argument("--exam", action="store_true",
                      help="a graded attempt (module01, phase1): needs --ticket; one attempt, answers recorded "
                      "as you go, no feedback or score shown; hand the record in")
    take.add_argument("--ticket", metavar="FILE", type=Path,
                      help="with --exam: the exam ticket your instructor gave you (it names you and the quiz)")
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
    grade.add_argument("--key", metavar="FILE", type=Path,
                       help="the exam-ticket key (default: .state/quiz-ticket.key in the workbook)")
    grade.add_argument("--accept", metavar="REASON", action="append", default=[],
                       choices=("no-ticket", "over-time", "outside-window"),
                       help="score files with this problem anyway (repeatable): no-ticket, over-time, outside-window")
    grade.add_argument("--reveal", action="store_true",
                       help="a graded quiz's feedback includes the right answers and explanations (after the exam "
                       "window has closed: revealed keys spend the pool)")
    add_json_option(grade)
    grade.set_defaults(func=run_grade)

    ticket = verbs.add_parser("ticket", help="issue signed exam tickets, one per learner (instructor)",
                              description="Issue an exam ticket for each learner: quiz, learner id, a random nonce "
                              "that seeds the draw, an optional window and time limit, signed with HMAC-SHA256 "
                              "under the instructor's key (.state/quiz-ticket.key, created on first use; keep it "
                              "out of anything learners receive). Writes OUT/<learner>.ticket.yaml; hand each "
                              "learner their own. A ticket proves who the instructor issued the exam to, not who "
                              "answers it (docs/quizzes.md).")
    ticket.add_argument("quiz", metavar="QUIZ", help=QUIZ_HELP)
    ticket.add_argument("learners", metavar="LEARNER", nargs="*", help="learner ids")
    ticket.add_argument("--learners-file", metavar="FILE", type=Path, help="learner ids, one a line")
    ticket.add_argument("--out", metavar="DIR", type=Path,
                        help="where the tickets go (default: .grading/quiz-<id>/tickets/ in the workbook)")
    ticket.add_argument("--opens", metavar="TIME", help="the exam may not start before (ISO 8601 with a zone)")
    ticket.add_argument("--closes", metavar="TIME", help="nor after (ISO 8601 with a zone)")
    ticket.add_argument("--minutes", type=float, help="time limit from the start, in minutes")
    ticket.add_argument("--key", metavar="FILE", type=Path,
                        help="the signing key (default: .state/quiz-ticket.key in the workbook; created if missing)")
    add_json_option(ticket)
    ticket.set_defaults(func=run_ticket)

    lint = verbs.add_parser("lint", help="can a blind strategy pass a graded quiz? (item-writing checks)",
                            description="For each summative bank (default: every one in quizzes/): where the keys "
                            "sit, how often the key is the longest or shortest option, option-length spread, "
                            "'all/none of the above' and unemphasised negations; then blind strategies (longest, "
                            "shortest and each length rank, each fixed position as stored and as shown, true or "
                            "false always, above-average length for multiple select, word overlap with the prompt "
                            "or the other options, and the best mix per question type) answer the draws of many "
                            "learners. A bank passes when every strategy averages at most chance + 10 points and "
                            "passes nobody. Exit 0 all pass, 1 some bank fails.")
    lint.add_argument("quizzes", nargs="*", metavar="QUIZ", help=QUIZ_HELP + " (default: every summative bank)")
    lint.add_argument("--learners", type=int, default=200, help="simulated learner draws (default 200)")
    add_json_option(lint)
    lint.set_defaults(func=run_lint)

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
    return EXIT_COULD_NOT_RUN


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
        raise UsageError(f"{quiz.id} is a graded quiz: take it once with `.venv/bin/autograder quiz take {quiz.id} --exam "
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
    from autograder.quiz.exam import default_record, read_ticket, take_exam
    from autograder.quiz.records import load_mapping

    if args.seed is not None:
        raise UsageError("--exam draws your questions from your ticket: use --ticket FILE, not --seed")
    if not args.ticket:
        raise UsageError(f"--exam needs your exam ticket: add --ticket FILE (the file your instructor gave you for "
                         f"{quiz.id}); without one a record scores nothing")
    ticket = read_ticket(args.ticket, quiz, args.learner)
    if not args.save:
        root = _root_or_none()
        if root is None:
            raise UsageError("run the exam inside the workbook (or set WORKBOOK_ROOT), or name the record with --save")
        record_path = default_record(root, quiz.id, ticket.learner)
    else:
        record_path = args.save
    record = take_exam(quiz, sys.stdin, sys.stdout, ticket=ticket, ticket_data=load_mapping(args.ticket),
                       record=record_path)
    root = _root_or_none()
    if root is not None and not args.no_record:
        from autograder.progress import record_exam

        record_exam(root, quiz.id)  # the start page shows it taken (the instructor scores it)
    return Done(0, {"quiz": quiz.id, "learner": record["learner"], "record": str(record_path),
                    "drawn": record["drawn"], "answered": len(record["answers"])})


def run_grade(args: argparse.Namespace) -> Done:
    from autograder.quiz.grading import GRADED, feedback_text, grade_batch, write_grades_csv
    from autograder.quiz.ticket import key_path, load_key

    quiz = _load(args.quiz)
    if quiz.learner_copy:
        raise UsageError(f"{quiz.path} is a learner copy: grade with the source bank in quizzes/")
    if not args.answers.exists():
        raise UsageError(f"{args.answers}: no such answers file or folder")
    root = _root_or_none()
    key = None
    if args.key:
        key = load_key(args.key)
    elif root is not None and key_path(root).is_file():
        key = load_key(key_path(root))
    elif quiz.summative and "no-ticket" not in args.accept:
        key = load_key(key_path(root or Path.cwd()))  # raises, naming where the key should be
    grades = grade_batch(quiz, args.answers, key=key, accept=frozenset(args.accept))
    if not grades:
        raise UsageError(f"{args.answers}: no answers files in this folder (expected <student>.yaml or .json)")
    out = args.out or ((root or Path.cwd()) / ".grading" / f"quiz-{quiz.id}")
    write_grades_csv(quiz, grades, out / "grades.csv")
    summary = {
        "quiz": quiz.id,
        "pass_mark": quiz.pass_mark,
        "max_score": quiz.max_score if not quiz.draw else None,
        "asked": quiz.asked,
        "students": [
            {"student": g.student, "file": g.file, "status": g.status, "error": g.error or None,
             "learner": g.learner or None, "drawn": g.drawn,
             **({"score": round(g.result.score, 2), "max_score": round(g.result.max_score, 2),
                 "percent": round(g.result.percent, 2), "passed": g.result.passed,
                 "questions": to_jsonable(g.result.questions), "notes": g.result.notes,
                 "answers": to_jsonable(g.answers)} if g.result else  # class report: distractor rates
                {"score": 0, "passed": False})}
            for g in grades
        ],
    }
    import json

    write_text(out / "grades.json", json.dumps(to_jsonable(summary), indent=2) + "\n")
    names: set[str] = set()
    for g in grades:
        name = _feedback_name(g.student if g.status == GRADED else Path(g.file).name, names)
        write_text(out / "feedback" / f"{name}.md", feedback_text(quiz, g, reveal=True if args.reveal else None))
    rows = []
    for g in grades:
        if g.result is None:
            rows.append((g.student, "0", "0%", g.status, g.error))
        else:
            r = g.result
            drawn = f"{len(g.drawn)} drawn; " if g.drawn is not None else ""
            rows.append((g.student, f"{round(r.score, 2):g}/{round(r.max_score, 2):g}", f"{r.percent:.0f}%",
                         "passed" if r.passed else "not passed", drawn + "; ".join(r.notes)))
    if len(grades) == 1 and grades[0].result is not None:
        detail = [(q.id, f"{round(q.points, 2):g}/{q.max_points:g}", q.status, q.reason)
                  for q in grades[0].result.questions]
        print(format_table(["question", "points", "status", "reason"], detail) + "\n")
    print(format_table(["student", "score", "percent", "result", "notes"], rows))
    hidden = "" if args.reveal or not quiz.summative else " (no keys or explanations: --reveal adds them)"
    print(f"\nwrote {out / 'grades.csv'}, {out / 'grades.json'} and feedback/{hidden}")
    failed = [g for g in grades if g.result is None]
    if failed:
        print(f"{len(failed)} file(s) scored nothing: see the 'result' and 'notes' columns", file=sys.stderr)
        return Done(1, summary)
    return Done(0, summary)


def _feedback_name(name: str, taken: set[str]) -> str:
    """A feedback file name from a learner-chosen id: safe characters only, never two the same."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".")[:80] or "learner"
    candidate, n = safe, 2
    while candidate.casefold() in taken:
        candidate, n = f"{safe}-{n}", n + 1
    taken.add(candidate.casefold())
    return candidate


def run_ticket(args: argparse.Namespace) -> Done:
    import yaml

    from autograder.quiz.ticket import issue, key_path, load_key

    quiz = _load(args.quiz, schema_check=False)
    if quiz.learner_copy:
        raise UsageError(f"{quiz.path} is a learner copy: issue tickets from the source bank in quizzes/")
    learners = list(args.learners)
    if args.learners_file:
        try:
            learners += [ln.strip() for ln in args.learners_file.read_text(encoding="utf-8").splitlines()
                         if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise UsageError(f"{args.learners_file}: cannot read it ({exc.strerror})") from None
    if not learners:
        raise UsageError("name the learners: `.venv/bin/autograder quiz ticket QUIZ ada grace` or --learners-file FILE")
    root = _root_or_none()
    key = load_key(args.key or key_path(root or Path.cwd()), create=True)
    out = args.out or ((root or Path.cwd()) / ".grading" / f"quiz-{quiz.id}" / "tickets")
    names: set[str] = set()
    written = []
    for learner in learners:
        ticket = issue(key, quiz.id, learner, opens=args.opens, closes=args.closes, minutes=args.minutes)
        dest = out / f"{_feedback_name(learner, names)}.ticket.yaml"
        header = (f"# Exam ticket for {quiz.id}, learner {learner.strip()}: take the exam with\n"
                  f"#   .venv/bin/autograder quiz take {quiz.id} --exam --ticket {dest.name}\n"
                  "# It is yours alone; changing any line makes the record score nothing.\n")
        write_text(dest, header + yaml.safe_dump(ticket, sort_keys=False, allow_unicode=True))
        written.append(str(dest))
    print(f"wrote {len(written)} ticket(s) to {out} (signed with {args.key or key_path(root or Path.cwd())})")
    return Done(0, {"quiz": quiz.id, "tickets": written})


def run_lint(args: argparse.Namespace) -> Done:
    from autograder.quiz.bank import bank_paths, load_quiz, resolve
    from autograder.quiz.lint import lint_bank, render

    if args.quizzes:
        quizzes = [load_quiz(resolve(spec)) for spec in args.quizzes]
    else:
        from autograder.paths import repo_root

        quizzes = [q for q in (load_quiz(p, schema_check=False) for p in bank_paths(repo_root())) if q.summative]
    if args.learners < 1:
        raise UsageError("--learners must be at least 1")
    reports = [lint_bank(q, learners=args.learners) for q in quizzes]
    for report in reports:
        print(render(report) + "\n")
    failing = [r.quiz for r in reports if not r.passed]
    if failing:
        print(f"{', '.join(failing)}: a blind strategy does too well; rewrite the items named above",
              file=sys.stderr)
    return Done(1 if failing else 0, {"banks": to_jsonable(reports), "passed": not failing})


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
        print(f"{bad} bank(s) with problems: fix the lines named above and run `.venv/bin/autograder quiz validate` again",
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
    return EXIT_PASSED


def run_coverage(args: argparse.Namespace):  # -> Outcome
    from autograder.paths import repo_root
    from autograder.quiz.coverage import coverage, render

    result = coverage(repo_root())
    print(render(result))
    return result
