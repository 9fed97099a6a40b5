"""Read what the grading verbs wrote into one shape: an Assessment (a lab, a quiz or the practical) holding one
Result per learner, with each test's or question's points, so the class report can join them.

Inputs, by what they look like (docs/class-report.md):
- a folder with summary.json and grades.csv: `autograder grade` (a lab, or an assignment of a plain nbgrader course);
  grades.csv is the final word on each score (late penalties and manual points included, when the grading run
  wrote those columns); summary.json names the tests and their maxima;
- a folder with grades.json: `autograder quiz grade`; each question's points, and (for distractor rates) each
  learner's answers, read from grades.json or else from the record file it names;
- a .json file: `autograder assess --pack ... --json FILE` (one hand-in or a batch); the learner is the hand-in's
  file name without `-practical.zip`, else (alice/practical.zip, a folder per learner) the folder holding it.
These files are the instructor's own outputs, but the ids and reasons in them were chosen by learners: nothing
here evaluates them, and every id is used as text only. Two results of one assessment for one learner key (see
identity.py) are a conflict: neither counts, both are shown for review (`add`).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from autograder.assess.handin import SUBMITTED_BY
from autograder.classbook.identity import key, shown_id, unplain
from mlinfra.base.errors import BadConfig, UsageError

LAB, QUIZ, PRACTICAL = "lab", "quiz", "practical"
# statuses that need a person before grades are final (grading's and `quiz grade`'s rejections); the rest are
# the learner's own outcomes (completed, kernel died, stopped, ...)
CONFLICT = "conflict"  # two results of one assessment map to one learner: neither counts until a person decides
NEEDS_A_PERSON = ("grader error", "unreadable", "missing", "no-ticket", "bad-signature", "wrong-learner",
                  "wrong-quiz", "duplicate", "over-time", "outside-window", CONFLICT)
ORDINARY = ("completed", "flagged", "needs manual grading", "passed", "failed", "")  # no note needed
MAX_JSON_BYTES = 64 * 1024 * 1024  # a class of hundreds with every latency sample stays far below this
# grades.csv columns that are not a test's points (helper columns a grading run may add are listed here)
CSV_META = {"student", "status", "score", "max_score", "reason", "submitted_at", "late_by", "penalty",
            "manual_pending", "manual_points", "pending"}


@dataclass
class Result:
    """One learner's result on one assessment."""

    student: str
    score: float
    max_score: float
    status: str
    items: dict[str, float] = field(default_factory=dict)  # test or question id -> points (only those asked)
    choices: dict[str, list[str]] = field(default_factory=dict)  # choice question id -> option ids picked
    penalty: float = 0.0  # points taken off for lateness (already out of `score`)
    late_by: str = ""
    submitted_at: str = ""
    pending: float = 0.0  # points waiting for a person (manual grading): not in `score` yet
    flags: list[str] = field(default_factory=list)
    reason: str = ""
    source: str = ""  # where it was read: a hand-in's name, a grades.csv line (named in a conflict)
    conflicting: list[Result] = field(default_factory=list)  # a conflict's results, none of them counted


@dataclass
class Assessment:
    kind: str  # lab | quiz | practical
    name: str
    source: str
    max_score: float
    items: dict[str, float] = field(default_factory=dict)  # item id -> max points, in the order shown
    results: dict[str, Result] = field(default_factory=dict)  # learner key (see `key`) -> result
    options: dict[str, dict[str, str]] = field(default_factory=dict)  # choice question -> option id -> text
    correct: dict[str, list[str]] = field(default_factory=dict)  # choice question -> right option ids
    notes: list[str] = field(default_factory=list)


def add(assessment: Assessment, result: Result) -> None:
    """File `result` under its learner. An id that is not plain is flagged (identity.unplain); a second result for
    a learner already there makes both a conflict: the learner's cell stays empty and the report says which two
    results to look at, never the later one silently replacing the earlier (a look-alike name would take a
    classmate's grade)."""
    why = unplain(result.student)
    if why:
        result.flags.append(f"{why}: check who handed in {shown_id(result.source or 'it')} before the grade counts")
    k = key(result.student)
    previous = assessment.results.get(k)
    if previous is None:
        assessment.results[k] = result
        return
    results = [*(previous.conflicting or [previous]), result]
    # the row's id: a plain one, the same whichever result was read first
    plain = sorted((r for r in results if not unplain(r.student)), key=lambda r: (r.student != k, r.student))
    listed = " and ".join(f"{shown_id(r.source or 'a result')} (id {shown_id(r.student)}, {r.score:g}/{r.max_score:g})"
                          for r in results)
    assessment.results[k] = Result(
        plain[0].student if plain else k, 0.0, max(r.max_score for r in results), CONFLICT,
        source=", ".join(r.source for r in results), conflicting=results,
        reason=(f"{len(results)} results map to the learner {shown_id(k)}: {listed}; none is counted. Find out whose "
                "each is, rename or remove the one that is not this learner's (its file or folder name), then run "
                "the grading and the class report again"))


def _cell(text: str | None) -> str:
    """A grades.csv cell as written: every CSV the project writes quotes a formula-like start with one `'`."""
    text = text or ""
    return text[1:] if text.startswith("'") and text[1:2] in ("=", "+", "-", "@", "\t", "\r") else text


def _number(text: Any, where: str) -> float:
    try:
        return float(text) if text not in (None, "") else 0.0
    except (TypeError, ValueError):
        raise BadConfig(where, "", f"{text!r} is not a number; regrade to rewrite this file") from None


def read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise BadConfig(path, "", f"over {MAX_JSON_BYTES // 2**20} MB: not an output of this course's grader")
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise BadConfig(path, "", f"not valid JSON ({exc}); write it again with the command that made it") from None


def load(path: Path, root: Path | None = None) -> Assessment:
    """One input, whatever it is (see the module's docstring); a UsageError says what was expected."""
    if path.is_dir():
        if (path / "summary.json").is_file() and (path / "grades.csv").is_file():
            return load_lab(path)
        if (path / "grades.json").is_file():
            return load_quiz(path / "grades.json", root)
        raise UsageError(f"{path}: no summary.json + grades.csv (an `.venv/bin/autograder grade` output) and no grades.json "
                         "(an `.venv/bin/autograder quiz grade` output) in this folder; give one of those folders")
    if not path.is_file():
        raise UsageError(f"{path}: no such file or folder; give a `grade` or `quiz grade` output folder, or the "
                         "practical's `assess --pack ... --json FILE`")
    data = read_json(path)
    if isinstance(data, dict) and "lab" in data and "results" in data:
        return load_lab(path.parent)
    if isinstance(data, dict) and "quiz" in data and "students" in data:
        return load_quiz(path, root)
    if isinstance(data, dict) and ("parts" in data or "criteria" in data):
        return load_practical(path, data)
    raise BadConfig(path, "", "not a grade summary, a quiz's grades.json or an `assess --json` result")


# ------------------------------------------------------------------------------------------------------ labs


def load_lab(folder: Path) -> Assessment:
    summary = read_json(folder / "summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("tests"), dict):
        raise BadConfig(folder / "summary.json", "tests", "missing: regrade with `.venv/bin/autograder grade`")
    name = str(summary.get("lab") or folder.name)
    items = {str(n): _number(t.get("max_points"), str(folder / "summary.json")) for n, t in summary["tests"].items()
             if isinstance(t, dict)}
    flagged = summary.get("flagged") if isinstance(summary.get("flagged"), dict) else {}
    # a manually graded cell still waiting for `autograder review` scores 0 in grades.csv: not a wrong answer
    waiting = {str(r.get("subject")): {str(c.get("name")) for c in r.get("checks") or []
                                       if isinstance(c, dict) and c.get("status") == "pending"}
               for r in summary.get("results") or [] if isinstance(r, dict)}
    lab = Assessment(LAB, name, str(folder), _number(summary.get("max_score"), str(folder / "summary.json")), items)
    where = str(folder / "grades.csv")
    try:
        with (folder / "grades.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UsageError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    for line, row in enumerate(rows, start=2):
        row = {(k or ""): _cell(v) for k, v in row.items()}
        student = row.get("student", "")
        if not student:
            continue
        result = Result(
            student=student,
            score=_number(row.get("score"), where),
            max_score=_number(row.get("max_score"), where) or lab.max_score,
            status=row.get("status", ""),
            items={n: _number(row[n], where) for n in items
                   if row.get(n, "") != "" and n not in waiting.get(student, ())},
            penalty=abs(_number(row.get("penalty"), where)) if row.get("penalty") else 0.0,
            late_by=_hours(row.get("late_by", "")),
            submitted_at=row.get("submitted_at", ""),
            pending=_pending(row, where),
            flags=[str(f) for f in flagged.get(student, [])] if isinstance(flagged.get(student), list) else [],
            reason=row.get("reason", ""),
            source=f"{where} line {line}",
        )
        add(lab, result)
    return lab


def _hours(text: str) -> str:
    """grades.csv's late_by (hours, a number) as a person reads it: "26 h"; other text as it is."""
    try:
        return f"{float(text):g} h" if float(text) > 0 else ""
    except ValueError:
        return text


def _pending(row: dict[str, str], where: str) -> float:
    """Points waiting for manual grading, from whichever column the grading run wrote: a number, or
    `manual ... pending` text in the status."""
    for column in ("manual_pending", "pending"):
        if row.get(column):
            return _number(row[column], where)
    match = re.search(r"(\d+(?:\.\d+)?) (?:point|pt)s? pending", row.get("status", "") + " " + row.get("reason", ""))
    return float(match.group(1)) if match else 0.0


# ------------------------------------------------------------------------------------------------------ quizzes


def load_quiz(path: Path, root: Path | None) -> Assessment:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("students"), list):
        raise BadConfig(path, "students", "missing: regrade with `.venv/bin/autograder quiz grade`")
    quiz_id = str(data.get("quiz") or path.parent.name)
    bank = _bank(quiz_id, root)
    quiz = Assessment(QUIZ, quiz_id, str(path.parent), 0.0)
    if bank is not None:
        quiz.items = {q.id: float(q.points) for q in bank.questions}
        for q in bank.questions:
            if q.type in ("single", "multiple") and q.options:
                quiz.options[q.id] = dict(q.options)
                answer = q.answer if q.type == "multiple" else {q.answer}
                quiz.correct[q.id] = sorted(str(a) for a in (answer or ()))
    else:
        quiz.notes.append(f"no bank quizzes/{quiz_id}.yaml here: no distractor rates for {quiz_id}")
    maxima: list[float] = []
    for n, row in enumerate(data["students"]):
        if not isinstance(row, dict):
            continue
        student = str(row.get("student") or "")
        questions = row.get("questions") if isinstance(row.get("questions"), list) else []
        items = {}
        for q in questions:
            if isinstance(q, dict) and q.get("status") != "pending":
                items[str(q.get("id"))] = _number(q.get("points"), str(path))
                quiz.items.setdefault(str(q.get("id")), _number(q.get("max_points"), str(path)))
        pending = sum(_number(q.get("max_points"), str(path)) for q in questions
                      if isinstance(q, dict) and q.get("status") == "pending")
        status = str(row.get("status") or "")
        result = Result(student, _number(row.get("score"), str(path)), _number(row.get("max_score"), str(path)),
                        "completed" if status == "graded" else status, items, pending=pending,
                        reason=str(row.get("error") or "; ".join(map(str, row.get("notes") or []))),
                        source=f"{path} students[{n}]" + (f" ({row['file']})" if row.get("file") else ""))
        if bank is not None and status == "graded":
            result.choices = _picked(bank, _answers(row, path))
        if status == "graded":
            maxima.append(result.max_score)
        previous = quiz.results.get(key(student))
        if previous is not None and previous.student == student and not previous.conflicting \
                and (previous.status, result.status) != ("completed", "completed"):
            # the quiz grader's own verdict on one learner's records (a graded one and those it rejected, e.g. as
            # a duplicate): the graded one counts; two graded ones, or two ids only alike, are a conflict (add)
            if previous.status != "completed" and result.status == "completed":
                quiz.results[key(student)] = result
            continue
        add(quiz, result)
    quiz.max_score = _number(data.get("max_score"), str(path)) or (max(maxima) if maxima else 0.0)
    return quiz


def _bank(quiz_id: str, root: Path | None) -> Any:
    from autograder.quiz.bank import load_quiz as load_bank
    from autograder.quiz.bank import quizzes_dir

    if root is None:
        return None
    for suffix in (".yaml", ".yml"):
        path = quizzes_dir(root) / f"{quiz_id}{suffix}"
        if path.is_file():
            return load_bank(path, schema_check=False)
    return None


def _answers(row: dict[str, Any], grades_json: Path) -> dict[str, Any]:
    """The learner's answers: kept in grades.json, else re-read (with the grader's limits) from the file named."""
    if isinstance(row.get("answers"), dict):
        return row["answers"]
    from autograder.quiz.grading import AnswersError, load_answers
    from autograder.quiz.records import is_exam_record

    name = Path(str(row.get("file") or ""))
    for candidate in (name, grades_json.parent / name.name):
        if str(candidate) and candidate.is_file():
            try:
                data = load_answers(candidate)
            except AnswersError:
                return {}
            answers = data["answers"] if is_exam_record(data) else data
            return answers if isinstance(answers, dict) else {}
    return {}


def _picked(bank: Any, answers: dict[str, Any]) -> dict[str, list[str]]:
    """Option ids each choice question's answer picked, read as the grader reads them (an id or the option's
    text); an answer that names no option counts as no choice."""
    from autograder.quiz import grading

    out: dict[str, list[str]] = {}
    given = {str(k): v for k, v in answers.items()}
    for q in bank.questions:
        if q.type not in ("single", "multiple") or q.id not in given:
            continue
        try:
            picked = [grading.chosen_option(q, given[q.id])] if q.type == "single" else sorted(grading.chosen_options(q, given[q.id]))
        except Exception:  # noqa: BLE001 - an invalid answer is "no choice" here; grading already scored it 0
            picked = []
        out[q.id] = picked
    return out


# ------------------------------------------------------------------------------------------------ the practical


def load_practical(path: Path, data: dict[str, Any]) -> Assessment:
    parts = data["parts"] if isinstance(data.get("parts"), list) and data.get("parts") else [data]
    practical = Assessment(PRACTICAL, "practical", str(path), 0.0)
    for part in parts:
        if not isinstance(part, dict):
            continue
        student, source = _pack_student(part)
        checks = [c for c in part.get("checks") or [] if isinstance(c, dict) and _number(c.get("max_points"), str(path))]
        for c in checks:
            practical.items.setdefault(str(c.get("name")), _number(c.get("max_points"), str(path)))
        points = {str(c.get("name")): _number(c.get("points"), str(path)) for c in checks}
        # a batch's parts are written without score and max_score (an Outcome's are sums over its checks)
        score = _number(part["score"], str(path)) if "score" in part else sum(points.values())
        top = _number(part["max_score"], str(path)) if "max_score" in part else \
            sum(_number(c.get("max_points"), str(path)) for c in checks)
        named = _submitted_by(part)
        if student == "unknown" and named:
            student = named  # no file or folder name to go by: the hand-in's own claim, flagged below if odd
        result = Result(student, score, top, str(part.get("status") or ""), points,
                        reason="; ".join(str(n) for n in part.get("notes") or [])[:300], source=source)
        if named and key(named) != key(student):
            result.flags.append(f"the id {shown_id(student)} (the name of {shown_id(source)}) is not the student its "
                                f"submission.json names, {shown_id(named)}: find out whose it is; rename its file or "
                                "folder to that learner's id and run assess and the class report again")
        add(practical, result)
        practical.max_score = max(practical.max_score, result.max_score)
    return practical


def _submitted_by(part: dict[str, Any]) -> str:
    """The student the hand-in's submission.json names (assess's "submitted by" info check), or ''."""
    data = part.get("data") if isinstance(part.get("data"), dict) else part
    for checks in (part.get("checks"), data.get("handin") if isinstance(data, dict) else None):
        for c in checks if isinstance(checks, list) else []:
            if isinstance(c, dict) and c.get("name") == SUBMITTED_BY and isinstance(c.get("message"), str):
                return str(c["message"])
    return ""


def _pack_student(part: dict[str, Any]) -> tuple[str, str]:
    """The learner a hand-in is filed under, and the hand-in's name: `<id>-practical.zip` (as `submit` names it),
    else the folder holding it (alice/practical.zip: a folder per learner, the layout `assess --help` shows). The
    batch label (its path below the packs' common folder) is read first; a single hand-in's label is its file name,
    so its folder comes from the path it was assessed under."""
    target = part.get("target") if isinstance(part.get("target"), dict) else \
        (part.get("data") or {}).get("target", {}) if isinstance(part.get("data"), dict) else {}
    target = target if isinstance(target, dict) else {}
    pack = str(target.get("pack") or "")
    label = str(target.get("label") or "") or pack  # an older --json has no label: the path it was given
    if not label:
        match = re.match(r"hand-in (\S+)", str(part.get("subject") or ""))
        label = match.group(1) if match else str(part.get("subject") or "")
    label = re.sub(r" #\d+$", "", label) or "unknown"  # the same pack given twice: one learner, a conflict
    where = PurePosixPath(label.replace("\\", "/"))
    stem = where.name.removesuffix(".zip")
    if stem.endswith(f"-{PRACTICAL}") and stem != f"-{PRACTICAL}":
        return stem.removesuffix(f"-{PRACTICAL}"), label
    folder = where.parent.name or PurePosixPath(pack.replace("\\", "/")).parent.name
    if folder not in ("", ".", ".."):
        return folder, label
    stem = stem.removesuffix(f"-{PRACTICAL}")
    return (stem if stem not in ("", PRACTICAL) else "unknown"), label
