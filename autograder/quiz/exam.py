"""`autograder quiz take QUIZ --exam --ticket FILE`: a summative attempt, recorded for the instructor and never
scored here.

The learner brings the ticket their instructor issued (ticket.py): it names the learner and the quiz, may set a
window and a time limit, and its nonce seeds the draw. The learner answers one question at a time and sees no
feedback, no key and no explanation. The record is written after every answer, so an interrupted attempt is
still handed in; a record that exists (finished or not) refuses a second start on this machine, and `quiz grade`
scores one record per ticket. The record is a YAML file the instructor grades from the source bank with
`autograder quiz grade` (docs/quizzes.md):

    quiz: module01
    learner: ada
    ticket: {quiz: module01, learner: ada, nonce: ..., signature: ...}   # as issued, unchanged
    started: 2026-12-01T02:00:00+00:00
    finished: 2026-12-01T02:20:00+00:00       # absent when the attempt was interrupted
    drawn: [m01-..., ...]                      # the questions shown, in the order shown
    answers: {m01-...: b, ...}                 # option ids as in the bank, not the numbers on screen
    times: {m01-...: 2026-12-01T02:01:10+00:00, ...}   # when each answer was given
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import yaml

from autograder.errors import UsageError
from autograder.quiz.bank import Quiz
from autograder.quiz.shuffle import arrange
from autograder.quiz.ticket import Ticket, parse, same_learner, window_problem
from mlinfra.base.output import write_text


def default_record(root: Path, quiz_id: str, learner: str) -> Path:
    """Where an exam record lands: inside the learner's workspace, one file per quiz and learner."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in learner.strip()) or "learner"
    return root / "workspace" / "quizzes" / quiz_id / f"{safe}.yaml"


def hand_in(root: Path, quiz_id: str, learner: str, out: Path) -> Path:
    """Copy a learner's exam record to OUT/<quiz>/<learner>.yaml, the layout `quiz grade QUIZ OUT/<quiz>` reads."""
    from mlinfra.base.errors import UsageError

    record = default_record(root, quiz_id, learner)
    if not record.is_file():
        raise UsageError(f"{record} not found: take the exam first with `.venv/bin/autograder quiz take {quiz_id} --exam "
                         f"--learner {learner}` (or pass the --student you used then)")
    dest = out / quiz_id / record.name
    write_text(dest, record.read_text())
    return dest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_ticket(path: Path, quiz: Quiz, learner: str | None) -> Ticket:
    """The ticket a learner was given, checked for what a learner's machine can check (not the signature: only
    the instructor holds the key)."""
    from autograder.quiz.records import RecordError, load_mapping

    try:
        data = load_mapping(path)
    except RecordError as exc:
        raise UsageError(f"{path}: not an exam ticket ({exc}); use the file your instructor gave you") from None
    ticket = parse(data)
    if ticket is None or not isinstance(data.get("signature"), str):
        raise UsageError(f"{path}: not an exam ticket (it needs quiz, learner, nonce, issued and signature); use "
                         "the file your instructor gave you, unchanged")
    if ticket.quiz != quiz.id:
        raise UsageError(f"{path}: a ticket for quiz '{ticket.quiz}', not '{quiz.id}': take `{ticket.quiz}` with it")
    if learner and not same_learner(learner, ticket.learner):
        raise UsageError(f"{path}: the ticket is for learner '{ticket.learner}', not '{learner}': use your own "
                         "ticket (or leave out --learner)")
    problem = window_problem(ticket, datetime.now(timezone.utc))
    if problem:
        raise UsageError(f"{path}: {problem} (the time on this machine is {_now()}); ask your instructor")
    return ticket


def _write(path: Path, record: dict[str, Any]) -> None:
    header = ("# Exam record written by `.venv/bin/autograder quiz take --exam`: hand this file in as it is.\n"
              "# It carries your signed exam ticket: a record whose ticket was changed, or that is not yours, "
              "scores nothing.\n")
    write_text(path, header + yaml.safe_dump(record, sort_keys=False, allow_unicode=True))


def take_exam(quiz: Quiz, inp: TextIO, out: TextIO, *, ticket: Ticket, ticket_data: dict[str, Any],
              record: Path) -> dict[str, Any]:
    """Ask the draw of this ticket, record every answer (and when it was given) to `record`, return the record."""
    from autograder.quiz.take import EndOfInput, ask, show_question, wrap

    learner = ticket.learner
    if record.exists():
        try:
            previous = yaml.safe_load(record.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            previous = {}
        when = previous.get("started", "earlier") if isinstance(previous, dict) else "earlier"
        raise UsageError(f"{record}: an attempt at {quiz.id} was already recorded ({when}); an exam is one attempt: "
                         "hand that file in, or ask your instructor")
    presented = arrange(quiz, learner=learner, nonce=ticket.nonce)
    data: dict[str, Any] = {"quiz": quiz.id, "learner": learner.strip(), "ticket": ticket_data,
                            "started": _now(), "drawn": [p.question.id for p in presented], "answers": {},
                            "times": {}}
    _write(record, data)
    out.write(f"{quiz.title} (graded exam)\n")
    limit = f" Time limit: {ticket.minutes:g} minutes from now." if ticket.minutes else ""
    out.write(wrap(f"{len(presented)} questions drawn for learner '{learner.strip()}'. One attempt: your answers "
                    f"are recorded as you go into {record} and graded by your instructor; no feedback is shown "
                    f"here. An empty line skips a question.{limit}") + "\n")
    for number, p in enumerate(presented, start=1):
        show_question(number, len(presented), p, out)
        try:
            answer = ask(p, inp, out)
        except EndOfInput:
            out.write("(The input ended: the remaining questions count as unanswered.)\n")
            break
        if answer is not None:
            data["answers"][p.question.id] = answer
            data["times"][p.question.id] = _now()
            _write(record, data)
    data["finished"] = _now()
    _write(record, data)
    answered = len(data["answers"])
    out.write(f"\nRecorded {answered} of {len(presented)} answers in {record}.\n")
    out.write("Hand that file in to your instructor (or as your course says), unchanged: it carries your ticket. "
              "Your score per outcome comes back with your grade.\n")
    return data
