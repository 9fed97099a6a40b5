"""`autograder quiz take QUIZ --exam`: a summative attempt, recorded for the instructor and never scored here.

The learner is given their draw (seeded by their learner id, so the instructor rebuilds the same draw), answers
one question at a time, and sees no feedback, no key and no explanation. The record is written after every answer,
so one attempt stays one attempt: a record that exists (finished or not) refuses a second start. The record is a
YAML file the instructor grades from the source bank with `autograder quiz grade` (docs/quizzes.md):

    quiz: module01
    learner: ada
    started: 2026-12-01T02:00:00+00:00
    finished: 2026-12-01T02:20:00+00:00       # absent when the attempt was interrupted
    drawn: [m01-..., ...]                      # the questions shown, in the order shown
    answers: {m01-...: b, ...}                 # option ids as in the bank, not the numbers on screen
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import yaml

from autograder.errors import UsageError
from autograder.quiz.bank import Quiz
from autograder.quiz.shuffle import arrange
from mlinfra.base.output import write_text

EXAM_KEYS = ("quiz", "learner", "answers")  # what marks an answers file as an exam record


def default_record(root: Path, quiz_id: str, learner: str) -> Path:
    """Where an exam record lands: inside the learner's workspace, one file per quiz and learner."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in learner.strip()) or "learner"
    return root / "workspace" / "quizzes" / quiz_id / f"{safe}.yaml"


def hand_in(root: Path, quiz_id: str, learner: str, out: Path) -> Path:
    """Copy a learner's exam record to OUT/<quiz>/<learner>.yaml, the layout `quiz grade QUIZ OUT/<quiz>` reads."""
    from mlinfra.base.errors import UsageError

    record = default_record(root, quiz_id, learner)
    if not record.is_file():
        raise UsageError(f"{record} not found: take the exam first with `autograder quiz take {quiz_id} --exam "
                         f"--learner {learner}` (or pass the --student you used then)")
    dest = out / quiz_id / record.name
    write_text(dest, record.read_text())
    return dest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(path: Path, record: dict[str, Any]) -> None:
    header = ("# Exam record written by `autograder quiz take --exam`: hand this file in as it is.\n"
              "# Editing it does not help: the instructor rebuilds your draw from your learner id.\n")
    write_text(path, header + yaml.safe_dump(record, sort_keys=False, allow_unicode=True))


def is_exam_record(data: Any) -> bool:
    return isinstance(data, dict) and all(k in data for k in EXAM_KEYS) and isinstance(data.get("answers"), dict)


def take_exam(quiz: Quiz, inp: TextIO, out: TextIO, *, learner: str, record: Path) -> dict[str, Any]:
    """Ask this learner's draw, record every answer to `record`, and return the record."""
    from autograder.quiz.take import _ask, _EndOfInput, _show_question, _wrap

    if not learner or not learner.strip():
        raise UsageError("an exam needs your learner id: add --learner YOUR-ID (as your instructor knows you)")
    if record.exists():
        try:
            previous = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            previous = {}
        when = previous.get("started", "earlier") if isinstance(previous, dict) else "earlier"
        raise UsageError(f"{record}: an attempt at {quiz.id} was already recorded ({when}); an exam is one attempt: "
                         "hand that file in, or ask your instructor")
    presented = arrange(quiz, learner=learner)
    data: dict[str, Any] = {"quiz": quiz.id, "learner": learner.strip(), "started": _now(),
                            "drawn": [p.question.id for p in presented], "answers": {}}
    _write(record, data)
    out.write(f"{quiz.title} (graded exam)\n")
    out.write(_wrap(f"{len(presented)} questions drawn for learner '{learner.strip()}'. One attempt: your answers "
                    f"are recorded as you go into {record} and graded by your instructor; no feedback is shown "
                    "here. An empty line skips a question.") + "\n")
    for number, p in enumerate(presented, start=1):
        _show_question(number, len(presented), p, out)
        try:
            answer = _ask(p, inp, out)
        except _EndOfInput:
            out.write("(The input ended: the remaining questions count as unanswered.)\n")
            break
        if answer is not None:
            data["answers"][p.question.id] = answer
            _write(record, data)
    data["finished"] = _now()
    _write(record, data)
    answered = len(data["answers"])
    out.write(f"\nRecorded {answered} of {len(presented)} answers in {record}.\n")
    out.write("Hand that file in to your instructor (or as your course says); the explanations come with your "
              "grade.\n")
    return data
