"""Scoring: one answer, one learner's answers, a folder of answers files.

An answer in bank terms: single -> an option id (or the option's text); multiple -> a list of option ids (or
"a, c"); truefalse -> true/false (yes/no, t/f); numeric -> a number; short -> text. Nothing a learner writes
makes grading crash: a wrong type, an unknown option or an empty answer scores 0 with a reason.

Multiple select gives partial credit and charges for wrong picks: each correct option picked earns
1/(number of correct options), each wrong one picked costs 1/(number of wrong options), floored at 0, so
ticking every box earns nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.quiz.bank import Question, Quiz, normalize
from autograder.quiz.learner import canonical_number, digest

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


def _choice(q: Question, value: Any) -> str:
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


def _choices(q: Question, value: Any) -> set[str]:
    if isinstance(value, str):
        tokens = [t for t in re.split(r"[,;\s]+", value.strip()) if t]
        if not all(t in q.options or t.casefold() in {k.casefold() for k in q.options} for t in tokens):
            tokens = [t.strip() for t in re.split(r"[,;]", value) if t.strip()]
        value = tokens
    if not isinstance(value, (list, tuple, set)):
        raise _Invalid(f"expected a list of option ids ({_option_list(q)}), got {type(value).__name__} {value!r}")
    return {_choice(q, v) for v in value}


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
        pick = _choice(q, value)
        return (1.0, "") if pick in correct else (0.0, "")
    picks = _choices(q, value)
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


def load_answers(path: Path) -> dict[str, Any]:
    import yaml

    if path.suffix not in ANSWER_SUFFIXES:
        raise AnswersError(f"{path.name}: not an answers file (expected .yaml, .yml or .json)")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise AnswersError(f"{path.name}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise AnswersError(f"{path.name}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise AnswersError(f"{path.name}: {line}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AnswersError(f"{path.name}: expected a mapping of question id -> answer, got a {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


@dataclass
class StudentGrade:
    student: str
    file: str
    result: QuizResult | None
    error: str = ""
    learner: str = ""  # the id the draw was rebuilt from (an exam record's `learner`, else the file's stem)
    drawn: list[str] | None = None  # the questions this learner was given, in bank order (None: all of them)
    answers: dict[str, Any] = field(default_factory=dict)


def answers_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.iterdir() if p.is_file() and not p.name.startswith("."))


def grade_batch(quiz: Quiz, target: Path) -> list[StudentGrade]:
    """Grade one answers file, or every file of a folder (one per student, named by student). A file that
    cannot be read is reported for its student and the batch goes on."""
    from autograder.quiz.exam import is_exam_record
    from autograder.quiz.shuffle import drawn_ids

    grades = []
    for path in answers_files(target):
        student = path.stem
        try:
            answers = load_answers(path)
        except AnswersError as exc:
            grades.append(StudentGrade(student, str(path), None, str(exc)))
            continue
        learner, notes = student, []
        if is_exam_record(answers):  # `quiz take --exam`: the draw is rebuilt from the recorded learner id
            if str(answers["quiz"]) != quiz.id:
                grades.append(StudentGrade(student, str(path), None, f"{path.name}: an exam record of quiz "
                                           f"'{answers['quiz']}', not '{quiz.id}'; grade it with that quiz"))
                continue
            learner = str(answers["learner"])
            if learner.strip().casefold() != student.strip().casefold():
                notes.append(f"the file is named '{path.name}' but the record is learner '{learner}': check who "
                             "handed it in")
            shown = answers.get("drawn")
            answers = {str(k): v for k, v in answers["answers"].items()}
            expected = drawn_ids(quiz, learner)
            if expected is not None and isinstance(shown, list) and set(map(str, shown)) != expected:
                notes.append("the record's list of drawn questions differs from this learner's draw: graded on "
                             "the draw rebuilt from the learner id")
        only = drawn_ids(quiz, learner)
        result = grade_answers(quiz, answers, student=student, only=only)
        result.notes = notes + result.notes
        drawn = None if only is None else [q.id for q in quiz.questions if q.id in only]
        grades.append(StudentGrade(student, str(path), result, learner=learner, drawn=drawn, answers=answers))
    return grades


def write_grades_csv(quiz: Quiz, grades: list[StudentGrade], dest: Path) -> None:
    import csv

    ids = [q.id for q in quiz.questions]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "score", "max_score", "percent", "passed", "error", *ids])
        for g in grades:
            if g.result is None:
                writer.writerow([g.student, "", "", "", "", g.error, *([""] * len(ids))])
                continue
            r = g.result
            points = {q.id: f"{q.points:g}" for q in r.questions}  # a question not drawn shows "-"
            writer.writerow([g.student, f"{r.score:g}", f"{r.max_score:g}", f"{r.percent:.1f}",
                             "yes" if r.passed else "no", "", *(points.get(i, "-") for i in ids)])


def feedback_text(quiz: Quiz, grade: StudentGrade) -> str:
    """What the learner gets back after grading: each question they were asked, their answer, the right one and
    the explanation (released now, with the grade)."""
    r = grade.result
    if r is None:
        return f"# {quiz.title}: {grade.student}\n\nYour answers file could not be graded: {grade.error}\n"
    verdict = "passed" if r.passed else "not passed"
    score = f"Score {r.score:g} of {r.max_score:g} ({r.percent:.0f}%), pass mark {quiz.pass_mark * 100:g}%: {verdict}."
    lines = [f"# {quiz.title}: {grade.student}", "", score, ""]
    for n, qr in enumerate(r.questions, start=1):
        q = quiz.question(qr.id)
        if q is None:
            continue
        given = grade.answers.get(q.id)
        lines += [f"## {n}. {q.prompt}", ""]
        for oid, text in q.options.items():
            lines.append(f"- {oid}) {text}")
        if q.options:
            lines.append("")
        lines += [f"Your answer: {given if given is not None else '(none)'}; {qr.status}, {qr.points:g} of "
                  f"{qr.max_points:g}" + (f" ({qr.reason})" if qr.reason else "") + ".",
                  f"The answer: {qr.expected}.", f"Why: {q.explanation}", ""]
    if r.notes:
        lines += ["Notes: " + "; ".join(r.notes), ""]
    return "\n".join(lines)
