"""Shared data for the quiz engine's tests (a uniquely named module: `conftest` is a name other test folders use)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BANKS = REPO / "quizzes"
REFERENCE = Path(__file__).with_name("module01_answers.yaml")

SAMPLE = """\
id: sample
title: Sample quiz
pass_mark: 0.5
questions:
  - id: pick-one
    type: single
    topic: choice
    points: 2
    prompt: Pick b.
    options: {a: Apple, b: Banana split, c: Cherry}
    answer: b
    explanation: Because b.
  - id: pick-many
    type: multiple
    topic: choice
    points: 1
    prompt: Pick a and c.
    options: {a: One, b: Two, c: Three, d: Four}
    answer: [a, c]
    explanation: Because a and c.
  - id: yes-or-no
    type: truefalse
    topic: logic
    points: 1
    prompt: Is this false?
    answer: false
    explanation: It is.
  - id: exact-number
    type: numeric
    topic: numbers
    points: 1
    prompt: Six times seven?
    answer: 42
    explanation: The answer is 42.
  - id: near-number
    type: numeric
    topic: numbers
    points: 1
    prompt: Pi to two places?
    answer: 3.14
    tolerance: 0.01
    explanation: About 3.14.
  - id: in-range
    type: numeric
    topic: numbers
    points: 1
    prompt: A number from 10 to 20.
    range: [10, 20]
    explanation: Any of them.
  - id: words
    type: short
    topic: words
    points: 1
    prompt: Name the practice of managing servers with code.
    accept: [infrastructure as code, IaC]
    explanation: Infrastructure as code.
  - id: pattern
    type: short
    topic: words
    points: 1
    prompt: A version string like v1 or v2.
    regex: "v[0-9]+"
    explanation: v and digits.
  - id: exact-case
    type: short
    topic: words
    points: 1
    prompt: Which Dockerfile instruction sets the default command?
    accept: [CMD]
    case_sensitive: true
    explanation: CMD.
"""

SAMPLE_KEY = {
    "pick-one": "b",
    "pick-many": ["a", "c"],
    "yes-or-no": False,
    "exact-number": 42,
    "near-number": 3.14,
    "in-range": 15,
    "words": "Infrastructure-as-code",
    "pattern": "v2",
    "exact-case": "CMD",
}


def ticket_key(root: Path) -> bytes:
    """The instructor's exam-ticket key in <root>/.state/ (created, as `quiz ticket` would)."""
    from autograder.quiz.ticket import key_path, load_key

    return load_key(key_path(root), create=True)


def exam_record(quiz, key: bytes, learner: str, answers: dict, *, ticket: dict | None = None,
                started: str = "2026-12-01T09:00:00+00:00", finished: str = "2026-12-01T09:20:00+00:00",
                **ticket_fields) -> dict:
    """What `quiz take --exam --ticket` writes for `learner` answering `answers` (a key: question id -> answer):
    a freshly issued ticket (or `ticket`), the ticket's draw, and the answers to the drawn questions."""
    from autograder.quiz.shuffle import arrange
    from autograder.quiz.ticket import issue

    ticket = ticket or issue(key, quiz.id, learner, **ticket_fields)
    drawn = [p.question.id for p in arrange(quiz, learner=ticket["learner"], nonce=ticket["nonce"])]
    return {"quiz": quiz.id, "learner": learner, "ticket": ticket, "started": started, "finished": finished,
            "drawn": drawn, "answers": {qid: answers[qid] for qid in drawn if qid in answers}}


def drawn_for(quiz, record: dict) -> list[str]:
    """The questions a record's ticket drew, in bank order."""
    from autograder.quiz.shuffle import drawn_ids

    ids = drawn_ids(quiz, record["ticket"]["learner"], record["ticket"]["nonce"])
    return [q.id for q in quiz.questions if q.id in ids]
