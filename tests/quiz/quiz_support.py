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
