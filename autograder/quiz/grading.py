"""Scoring: one answer, one learner's answers, a folder of answers files.

An answer in bank terms: single -> an option id (or the option's text); multiple -> a list of option ids (or
"a, c"); truefalse -> true/false (yes/no, t/f); numeric -> a number; short -> text. Nothing a learner writes
makes grading crash: a wrong type, an unknown option or an empty answer scores 0 with a reason.

Multiple select gives partial credit and charges for wrong picks: each correct option picked earns
1/(number of correct options), each wrong one picked costs 1/(number of wrong options), floored at 0, so
ticking every box earns nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.quiz.bank import Question, Quiz, normalize
from autograder.quiz.learner import canonical_number, digest

if TYPE_CHECKING:
    from autograder.quiz.ticket import Ticket

CORRECT, PARTIAL, WRONG, MISSING, INVALID, PENDING = "correct", "partial", "wrong", "missing", "invalid", "pending"


@dataclass
class QuestionResult:
    id: str
    topic: str
    points: float
    max_points: float
    status: str  # correct | partial | wrong | missing | invalid | pending (graded by the instructor)
    reason: str = ""
    expected: str = ""  # the right answer in words, when the key is known (for feedback)


@dataclass
class QuizResult:
    quiz: str
    student: str
    score: float
    max_score: float  # points that could be checked (pending questions excluded)
    pass_mark: float
    passed: bool
    questions: list[QuestionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending_points: float = 0.0

    @property
    def percent(self) -> float:
        return 100.0 * self.score / self.max_score if self.max_score else 0.0

    def topics_to_review(self) -> list[tuple[str, float]]:
        """Topics where points were lost, most points lost first."""
        lost: dict[str, float] = {}
        for r in self.questions:
            if r.status != PENDING and r.points < r.max_points:
                lost[r.topic] = lost.get(r.topic, 0.0) + (r.max_points - r.points)
        return sorted(lost.items(), key=lambda kv: (-kv[1], kv[0]))


class _Invalid(Exception):
    pass


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, (list, tuple, set, dict)) and not value)


def _option_list(q: Question) -> str:
    return ", ".join(q.options)


def chosen_option(q: Question, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid(f"expected one option id ({_option_list(q)}), got {type(value).__name__} {value!r}")
    text = str(value).strip()
    if text in q.options:
        return text
    folded = {k.casefold(): k for k in q.options}
    if text.casefold() in folded:
        return folded[text.casefold()]
    by_text = {normalize(v): k for k, v in q.options.items()}
    if normalize(text) in by_text:
        return by_text[normalize(text)]
    raise _Invalid(f"{text!r} is not an option of this question (options: {_option_list(q)})")


def chosen_options(q: Question, value: Any) -> set[str]:
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[,;\s]+", value.strip()) if t]
        if not all(t in q.options or t.casefold() in {k.casefold() for k in q.options} for t in tokens):
            tokens = [t.strip() for t in re.split(r"[,;]", value) if t.strip()]
        value = tokens
    if not isinstance(value, (list, tuple, set)):
        raise _Invalid(f"expected a list of option ids ({_option_list(q)}), got {type(value).__name__} {value!r}")
    return {chosen_option(q, v) for v in value}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in ("true", "t", "yes", "y"):
            return True
        if word in ("false", "f", "no", "n"):
            return False
    raise _Invalid(f"expected true or false, got {value!r}")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _Invalid(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            raise _Invalid(f"expected a number, got {value!r}") from None
    else:
        raise _Invalid(f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(number):
        raise _Invalid(f"expected a finite number, got {value!r}")
    return number


def correct_options(q: Question) -> set[str]:
    """The key of a choice question, from the bank or (learner copy) by checking each option's digest."""
    if q.hashed is None:
        return {q.answer} if q.type == "single" else set(q.answer)
    return {o for o in q.options if q.hashed.options.get(o) == digest(q.hashed.salt, q.id, f"{o}=1")}


def _truefalse_key(q: Question) -> bool | None:
    if q.hashed is None:
        return bool(q.answer)
    for candidate in (True, False):
        if q.hashed.value == digest(q.hashed.salt, q.id, str(candidate).lower()):
            return candidate
    return None


def _format_number(x: float) -> str:
    return f"{x:g}"


def expected_text(q: Question) -> str:
    """The right answer in words, or "" when a learner copy cannot know it."""
    if q.type in ("single", "multiple"):
        return "; ".join(q.options[o] for o in q.options if o in correct_options(q))
    if q.type == "truefalse":
        key = _truefalse_key(q)
        return "" if key is None else str(key).lower()
    if q.hashed is not None:
        return ""
    if q.type == "numeric":
        if q.range is not None:
            return f"between {_format_number(q.range[0])} and {_format_number(q.range[1])}"
        tol = f" (within {_format_number(q.tolerance)})" if q.tolerance else ""
        return f"{_format_number(q.answer)}{tol}"
    return q.accept[0] if q.accept else f"text matching {q.regex}"


def _score_choice(q: Question, value: Any) -> tuple[float, str]:
    correct = correct_options(q)
    if q.type == "single":
        pick = chosen_option(q, value)
        return (1.0, "") if pick in correct else (0.0, "")
    picks = chosen_options(q, value)
    wrong = set(q.options) - correct
    hits, false_picks = len(picks & correct), len(picks & wrong)
    fraction = hits / len(correct) - (false_picks / len(wrong) if wrong else 0.0)
    notes = []
    if hits < len(correct):
        notes.append(f"{len(correct) - hits} correct option(s) not picked")
    if false_picks:
        notes.append(f"{false_picks} wrong option(s) picked")
    return max(0.0, fraction), "; ".join(notes)


def _score_numeric(q: Question, value: Any) -> tuple[float | None, str]:
    x = _number(value)
    if q.hashed is not None:
        if q.hashed.value and q.hashed.value == digest(q.hashed.salt, q.id, canonical_number(x)):
            return 1.0, ""
        if q.hashed.instructor:
            return None, "graded by your instructor"
        return 0.0, ""
    low, high = q.bounds
    slack = 1e-9 * max(1.0, abs(low), abs(high))  # 0.1 + 0.2 must still equal 0.3
    return (1.0, "") if low - slack <= x <= high + slack else (0.0, "")


def _score_short(q: Question, value: Any) -> tuple[float | None, str]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Invalid(f"expected text, got {type(value).__name__} {value!r}")
    text = str(value).strip()
    norm = normalize(text, q.case_sensitive)
    if q.hashed is not None:
        if digest(q.hashed.salt, q.id, norm) in q.hashed.accept:
            return 1.0, ""
        if q.hashed.instructor:
            return None, "not one of the answers on file; graded by your instructor"
        return 0.0, ""
    if norm in {normalize(a, q.case_sensitive) for a in q.accept}:
        return 1.0, ""
    if q.regex and re.fullmatch(q.regex, text, 0 if q.case_sensitive else re.IGNORECASE):
        return 1.0, ""
    return 0.0, ""


def grade_question(q: Question, value: Any) -> QuestionResult:
    """Score one answer. Never raises on what a learner wrote."""
    result = QuestionResult(q.id, q.topic, 0.0, q.points, WRONG, expected=expected_text(q))
    if _is_empty(value):
        result.status, result.reason = MISSING, "no answer"
        return result
    if q.hashed is not None and not q.hashed.salt:  # a summative learner copy: no key material to check against
        result.status, result.reason = PENDING, "graded by your instructor"
        return result
    try:
        if q.type in ("single", "multiple"):
            fraction, reason = _score_choice(q, value)
        elif q.type == "truefalse":
            key = _truefalse_key(q)
            given = _bool(value)
            if key is None:
                fraction, reason = None, "the key in this learner copy is damaged; graded by your instructor"
            else:
                fraction, reason = (1.0 if given == key else 0.0), ""
        elif q.type == "numeric":
            fraction, reason = _score_numeric(q, value)
        else:
            fraction, reason = _score_short(q, value)
    except _Invalid as exc:
        result.status, result.reason = INVALID, str(exc)
        return result
    if fraction is None:
        result.status, result.reason = PENDING, reason
        return result
    result.points = round(q.points * fraction, 6)
    result.status = CORRECT if fraction >= 1.0 else PARTIAL if fraction > 0 else WRONG
    result.reason = reason
    return result


def summarize(quiz: Quiz, results: list[QuestionResult], student: str = "", notes: Iterable[str] = ()
              ) -> QuizResult:
    checked = [r for r in results if r.status != PENDING]
    score = round(sum(r.points for r in checked), 6)
    max_score = round(sum(r.max_points for r in checked), 6)
    pending = round(sum(r.max_points for r in results if r.status == PENDING), 6)
    passed = max_score > 0 and score >= quiz.pass_mark * max_score - 1e-9
    return QuizResult(quiz.id, student, score, max_score, quiz.pass_mark, passed, results, list(notes), pending)


def grade_answers(quiz: Quiz, answers: Mapping[Any, Any], *, student: str = "",
                  only: set[str] | None = None) -> QuizResult:
    """Score a learner's answers (question id -> answer). `only` limits the quiz to the questions drawn for
    this learner; answers to other ids are ignored with a note."""
    given = {str(k): v for k, v in answers.items()}
    questions = [q for q in quiz.questions if only is None or q.id in only]
    results = [grade_question(q, given.get(q.id)) for q in questions]
    asked = {q.id for q in questions}
    notes = []
    for qid in given:
        if qid not in asked:
            why = "not in this learner's draw" if quiz.question(qid) else "no question has this id"
            notes.append(f"answer to '{qid}' ignored: {why}")
    return summarize(quiz, results, student, notes)


# --------------------------------------------------------------------------------------------- answers files


class AnswersError(Exception):
    """An answers file that cannot be read as question id -> answer; reported for that student only."""


ANSWER_SUFFIXES = (".yaml", ".yml", ".json")

# Why a handed-in file scored nothing (its row's `status`); `quiz grade --accept` takes the ones in ACCEPTABLE.
GRADED, UNREADABLE, NO_TICKET, BAD_SIGNATURE, WRONG_LEARNER, WRONG_QUIZ, DUPLICATE, OVER_TIME, OUTSIDE_WINDOW = (
    "graded", "unreadable", "no-ticket", "bad-signature", "wrong-learner", "wrong-quiz", "duplicate", "over-time",
    "outside-window")
ACCEPTABLE = (NO_TICKET, OVER_TIME, OUTSIDE_WINDOW)
GRACE_SECONDS = 60  # a time limit is checked with a minute's grace: the record is written after the last answer


def load_answers(path: Path) -> dict[str, Any]:
    """A hand-in read with limits (records.py): AnswersError names the file and the problem."""
    from autograder.quiz.records import RecordError, load_mapping

    try:
        return load_mapping(path)
    except RecordError as exc:
        raise AnswersError(str(exc)) from None


@dataclass
class StudentGrade:
    student: str  # the learner id the ticket verified, else the file's stem
    file: str
    result: QuizResult | None  # None: scored nothing (see status and error)
    error: str = ""
    learner: str = ""  # the id the draw was rebuilt from
    drawn: list[str] | None = None  # the questions this learner was given, in bank order (None: all of them)
    answers: dict[str, Any] = field(default_factory=dict)
    status: str = GRADED  # graded, or why not (UNREADABLE, NO_TICKET, ...)
    nonce: str = ""  # the ticket's, which seeded the draw
    started: str = ""


def answers_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.iterdir() if not p.name.startswith(".") and not p.is_dir())


def _timing_problem(ticket: Ticket, record: dict[str, Any]) -> tuple[str, str]:
    """(status, reason) when the record breaks the ticket's window or time limit, else ("", "")."""
    from autograder.quiz.ticket import parse_time, window_problem

    if not (ticket.opens or ticket.closes or ticket.minutes):
        return "", ""
    started = parse_time(record.get("started"))
    if started is None:
        return OVER_TIME, "the record has no valid start time, and the ticket sets a window or time limit"
    times = [parse_time(t) for t in (record.get("times") or {}).values()] if isinstance(record.get("times"), dict) \
        else []
    ends = [t for t in [parse_time(record.get("finished")), *times] if t is not None]
    end = max(ends) if ends else started
    problem = window_problem(ticket, started)
    if problem:
        return OUTSIDE_WINDOW, f"started {record.get('started')}, but {problem}"
    closes = parse_time(ticket.closes)
    if closes and (end - closes).total_seconds() > GRACE_SECONDS:
        return OUTSIDE_WINDOW, f"answered until {end.isoformat()}, after the window closed ({ticket.closes})"
    if ticket.minutes and (end - started).total_seconds() > ticket.minutes * 60 + GRACE_SECONDS:
        minutes = (end - started).total_seconds() / 60
        return OVER_TIME, f"took {minutes:.1f} minutes; the ticket allows {ticket.minutes:g}"
    return "", ""


def _rejected(student: str, path: Path, status: str, reason: str, learner: str = "") -> StudentGrade:
    return StudentGrade(student, str(path), None, f"{path.name}: {reason}", learner=learner, status=status)


def _grade_file(quiz: Quiz, path: Path, key: bytes | None, accept: frozenset[str]) -> StudentGrade:
    """One handed-in file: checked, then scored, or a row that says why it scored nothing."""
    from autograder.quiz.records import is_exam_record
    from autograder.quiz.shuffle import drawn_ids
    from autograder.quiz.ticket import same_learner, verify

    student = path.stem
    try:
        data = load_answers(path)
    except AnswersError as exc:
        return StudentGrade(student, str(path), None, str(exc), status=UNREADABLE)
    learner, nonce, notes = student, "", []
    record = is_exam_record(data)
    if record and str(data["quiz"]) != quiz.id:
        return _rejected(student, path, WRONG_QUIZ, f"an exam record of quiz '{data['quiz']}', not '{quiz.id}'; "
                         "grade it with that quiz")
    ticket_data = data.get("ticket") if record else None
    if quiz.summative and ticket_data is None:
        if NO_TICKET not in accept:
            what = "an exam record without a ticket" if record else "a plain answers file, not an exam record"
            return _rejected(student, path, NO_TICKET, f"{what}: a graded quiz scores only records taken with "
                             "`quiz take --exam --ticket FILE` (or grade with --accept no-ticket)")
        notes.append("no exam ticket: graded because of --accept no-ticket")
    if ticket_data is not None:
        if key is None:
            return _rejected(student, path, BAD_SIGNATURE, "the record has a ticket but no key was given to verify it")
        ticket, why = verify(key, ticket_data)
        if ticket is None:
            return _rejected(student, path, BAD_SIGNATURE, why)
        if ticket.quiz != quiz.id:
            return _rejected(student, path, WRONG_QUIZ, f"the ticket is for quiz '{ticket.quiz}', not '{quiz.id}'")
        claimed = str(data.get("learner", ""))
        if not same_learner(claimed, ticket.learner):
            return _rejected(student, path, WRONG_LEARNER, f"the record says learner '{claimed}' but its ticket was "
                             f"issued to '{ticket.learner}'", learner=claimed)
        status, why = _timing_problem(ticket, data)
        if status:
            if status not in accept:
                return _rejected(ticket.learner, path, status, why + f" (grade it with --accept {status})",
                                 learner=ticket.learner)
            notes.append(f"{why}: graded because of --accept {status}")
        student, learner, nonce = ticket.learner, ticket.learner, ticket.nonce
    elif record:
        learner = str(data["learner"])
        if not same_learner(learner, student):
            notes.append(f"the file is named '{path.name}' but the record is learner '{learner}': check who "
                         "handed it in")
    shown = data.get("drawn") if record else None
    started = str(data.get("started", "")) if record else ""
    answers = data["answers"] if record else data
    answers = {str(k): v for k, v in answers.items()}
    only = drawn_ids(quiz, learner, nonce)
    if only is not None and isinstance(shown, list) and set(map(str, shown)) != only:
        notes.append("the record's list of drawn questions differs from this learner's draw: graded on the draw "
                     "rebuilt from the ticket")
    result = grade_answers(quiz, answers, student=student, only=only)
    result.notes = notes + result.notes
    drawn = None if only is None else [q.id for q in quiz.questions if q.id in only]
    return StudentGrade(student, str(path), result, learner=learner, drawn=drawn, answers=answers, nonce=nonce,
                        started=started)


def grade_batch(quiz: Quiz, target: Path, *, key: bytes | None = None, accept: frozenset[str] = frozenset()
                ) -> list[StudentGrade]:
    """Grade one answers file, or every file of a folder (one per learner). Nothing in one file stops the rest:
    a file that cannot be read, or scores nothing, is a row of its own with the reason. On a summative quiz only
    records whose ticket verifies under `key` are scored (unless `accept` names the reason), and one record per
    learner: the earliest started, the others are rows marked duplicate."""
    grades = []
    for path in answers_files(target):
        try:
            grades.append(_grade_file(quiz, path, key, accept))
        except Exception as exc:  # noqa: BLE001  (a learner's file must never stop the other learners' grades)
            grades.append(StudentGrade(path.stem, str(path), None, f"{path.name}: could not be graded "
                                       f"({type(exc).__name__}: {str(exc)[:200]})", status=UNREADABLE))
    if quiz.summative:
        from autograder.quiz.ticket import parse_time

        def when(g: StudentGrade) -> tuple[bool, float, str]:
            moment = parse_time(g.started)
            return (moment is None, moment.timestamp() if moment else 0.0, g.file)

        first: dict[str, StudentGrade] = {}
        for g in sorted((g for g in grades if g.result is not None), key=when):
            who = g.learner.strip().casefold()
            if who in first:
                kept = first[who]
                g.result, g.status = None, DUPLICATE
                g.error = (f"{Path(g.file).name}: another record of learner '{g.learner}' ({Path(kept.file).name}, "
                           "started earlier) is the one graded: one attempt per learner")
                kept.result.notes.append(f"{Path(g.file).name} is another record of this learner: not graded")
            else:
                first[who] = g
    return grades


def _round(x: float) -> str:
    return f"{round(x, 2):g}"


def write_grades_csv(quiz: Quiz, grades: list[StudentGrade], dest: Path) -> None:
    """grades.csv: one row per file handed in. Every cell goes through csv_cell: learner ids and file names are
    chosen by learners, and a spreadsheet would run one that starts like a formula."""
    import csv

    from mlinfra.base.output import csv_cell

    ids = [q.id for q in quiz.questions]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([csv_cell(c) for c in ["student", "file", "status", "score", "max_score", "percent",
                                               "passed", "error", *ids]])
        for g in grades:
            name = Path(g.file).name
            if g.result is None:
                row = [g.student, name, g.status, "0", "", "0", "no", g.error, *([""] * len(ids))]
            else:
                r = g.result
                points = {q.id: _round(q.points) for q in r.questions}  # a question not drawn shows "n/a"
                row = [g.student, name, g.status, _round(r.score), _round(r.max_score), f"{r.percent:.2f}",
                       "yes" if r.passed else "no", "", *(points.get(i, "n/a") for i in ids)]
            writer.writerow([csv_cell(c) for c in row])


def _shown_answer(q: Question, shown: tuple[str, ...], given: Any) -> str:
    """An answer as the learner saw it: "2) the option's text" for choices (the number on their screen)."""
    if given is None or _is_empty(given):
        return "(no answer)"
    if q.type in ("single", "multiple"):
        try:
            picks = [chosen_option(q, given)] if q.type == "single" else sorted(chosen_options(q, given),
                                                                           key=lambda o: shown.index(o))
        except (_Invalid, ValueError):
            return f"{str(given)[:80]} (not one of the options)"
        return "; ".join(f"{shown.index(o) + 1}) {q.options[o]}" for o in picks)
    if q.type == "truefalse":
        try:
            return str(_bool(given)).lower()
        except _Invalid:
            return str(given)[:80]
    return str(given)[:200]


def outcome_scores(quiz: Quiz, result: QuizResult) -> list[tuple[str, float, float]]:
    """(outcome id, points, out of) over the questions this learner was asked, in first-asked order."""
    totals: dict[str, list[float]] = {}
    for r in result.questions:
        q = quiz.question(r.id)
        for oid in (q.outcomes if q is not None and q.outcomes else (r.topic,)):
            got = totals.setdefault(oid, [0.0, 0.0])
            got[0] += r.points
            got[1] += r.max_points
    return [(oid, p, m) for oid, (p, m) in totals.items()]


def feedback_text(quiz: Quiz, grade: StudentGrade, *, reveal: bool | None = None) -> str:
    """What the learner gets back: their score per outcome, then each question in the order they were asked, with
    the options numbered as they saw them and their own answer. A summative quiz's key and explanations stay out
    unless `reveal` (the instructor's `--reveal`, once the exam window has closed): feedback that holds the key
    would hand the pool to the next learners. A formative quiz always reveals."""
    from autograder.quiz.shuffle import arrange

    reveal = (not quiz.summative) if reveal is None else reveal
    r = grade.result
    if r is None:
        return (f"# {quiz.title}: {grade.student}\n\nThis file scored nothing ({grade.status}): {grade.error}\n"
                + "Ask your instructor if this is a mistake.\n")
    verdict = "passed" if r.passed else "not passed"
    score = (f"Score {_round(r.score)} of {_round(r.max_score)} ({r.percent:.2f}%), pass mark "
             f"{quiz.pass_mark * 100:g}%: {verdict}.")
    lines = [f"# {quiz.title}: {grade.student}", "", score, "", "## Score per learning outcome", ""]
    lines += [f"- {oid}: {_round(p)} of {_round(m)}" for oid, p, m in outcome_scores(quiz, r)]
    lines.append("")
    if not reveal:
        lines += ["The right answers and explanations are released when the exam closes.", ""]
    results = {qr.id: qr for qr in r.questions}
    presented = [p for p in arrange(quiz, learner=grade.learner or grade.student, nonce=grade.nonce)
                 if p.question.id in results]
    verdicts = {CORRECT: "right", PARTIAL: "partly right", WRONG: "wrong", MISSING: "not answered",
                INVALID: "not a valid answer", PENDING: "graded by your instructor"}
    for n, p in enumerate(presented, start=1):
        q, qr = p.question, results[p.question.id]
        heading = f"## Question {n}: {verdicts.get(qr.status, qr.status)} ({_round(qr.points)} of " \
                  f"{_round(qr.max_points)})"
        lines += [heading, "", q.prompt, ""]
        for i, oid in enumerate(p.options, start=1):
            lines.append(f"{i}) {q.options[oid]}")
        if p.options:
            lines.append("")
        lines.append(f"Your answer: {_shown_answer(q, p.options, grade.answers.get(q.id))}")
        if reveal:
            if q.type in ("single", "multiple"):
                keys = correct_options(q)
                right = "; ".join(f"{i}) {q.options[o]}" for i, o in enumerate(p.options, start=1) if o in keys)
            else:
                right = qr.expected
            lines += [f"The answer: {right}", f"Why: {q.explanation}"]
        lines.append("")
    if r.notes:
        lines += ["Notes: " + "; ".join(r.notes), ""]
    return "\n".join(lines)
