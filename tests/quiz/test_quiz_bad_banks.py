"""Malformed banks fail with errors that name the file, the line or question, and what was expected."""

from __future__ import annotations

import pytest

from autograder.errors import BadConfig
from autograder.quiz.bank import load_quiz, validate_bank

HEAD = """\
id: bad
title: Bad quiz
pass_mark: 70%
questions:
"""

GOOD_Q = """\
  - id: fine
    type: single
    topic: t
    points: 1
    prompt: A fine question.
    options: {a: One, b: Two}
    answer: a
    explanation: Because.
"""


def bank(questions: str, head: str = HEAD) -> str:
    return head + GOOD_Q + questions


CASES = {
    "unknown type": (bank("""\
  - id: q2
    type: essay
    topic: t
    points: 1
    prompt: Write.
    explanation: Anything.
"""), ["line 14", "question 'q2'", "unknown type 'essay'", "single, multiple, truefalse, numeric, short"]),
    "duplicate id": (bank("""\
  - id: fine
    type: truefalse
    topic: t
    points: 1
    prompt: Again?
    answer: true
    explanation: Yes.
"""), ["line 13", "duplicate question id 'fine'", "must be unique"]),
    "choice answer is not an option": (bank("""\
  - id: q2
    type: single
    topic: t
    points: 1
    prompt: Which?
    options: {a: One, b: Two}
    answer: c
    explanation: Because.
"""), ["line 19", "question 'q2'", "answer 'c' is not one of the options (a, b)"]),
    "choice question without an answer": (bank("""\
  - id: q2
    type: single
    topic: t
    points: 1
    prompt: Which?
    options: {a: One, b: Two}
    explanation: Because.
"""), ["line 13", "question 'q2'", "missing required field 'answer'"]),
    "multiple select with no correct option": (bank("""\
  - id: q2
    type: multiple
    topic: t
    points: 1
    prompt: Which?
    options: {a: One, b: Two}
    answer: []
    explanation: Because.
"""), ["line 19", "question 'q2'", "a non-empty list of option ids"]),
    "points not positive": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: 0
    prompt: Zero?
    answer: true
    explanation: Yes.
"""), ["line 16", "question 'q2'", "points must be positive, got 0"]),
    "negative points": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: -2
    prompt: Negative?
    answer: true
    explanation: Yes.
"""), ["question 'q2'", "points must be positive, got -2"]),
    "missing explanation": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: 1
    prompt: No explanation?
    answer: true
"""), ["question 'q2'", "missing required field 'explanation'"]),
    "unknown field": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: 1
    prompt: A hint?
    hint: no such field
    answer: true
    explanation: Yes.
"""), ["question 'q2'", "unknown field 'hint'"]),
    "field of another type": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: 1
    prompt: Options on a true/false?
    options: {a: x, b: y}
    answer: true
    explanation: Yes.
"""), ["question 'q2'", "field 'options' does not apply to a true/false question"]),
    "numeric with answer and range": (bank("""\
  - id: q2
    type: numeric
    topic: t
    points: 1
    prompt: How many?
    answer: 3
    range: [1, 5]
    explanation: Three.
"""), ["question 'q2'", "either 'answer'", "or 'range', not both"]),
    "range the wrong way round": (bank("""\
  - id: q2
    type: numeric
    topic: t
    points: 1
    prompt: How many?
    range: [5, 1]
    explanation: Three.
"""), ["line 18", "question 'q2'", "low <= high"]),
    "regex that does not compile": (bank("""\
  - id: q2
    type: short
    topic: t
    points: 1
    prompt: Say it.
    regex: "v[0-9"
    explanation: v and digits.
"""), ["line 18", "question 'q2'", "regex does not compile"]),
    "short answer with nothing to accept": (bank("""\
  - id: q2
    type: short
    topic: t
    points: 1
    prompt: Say it.
    explanation: Anything.
"""), ["question 'q2'", "needs 'accept'"]),
    "pass mark as a bare percentage": (bank("", head=HEAD.replace("70%", "70")),
                                       ["line 3", "pass_mark must be a fraction in (0, 1] or a percentage"]),
    "draw larger than the bank": (bank("").replace("questions:\n", "draw: 5\nquestions:\n"),
                                  ["draw 5 is more than the 1 questions"]),
    "id not matching the file name": (bank("", head=HEAD.replace("id: bad", "id: other")),
                                      ["line 1", "must match the file name ('bad')"]),
    "duplicate YAML key": (bank("""\
  - id: q2
    type: truefalse
    topic: t
    points: 1
    prompt: Twice?
    answer: true
    answer: false
    explanation: Yes.
"""), ["line 19", "duplicate key 'answer'"]),
    "yes and no read as booleans": (bank("""\
  - id: q2
    type: single
    topic: t
    points: 1
    prompt: Agree?
    options: {a: Yes, b: No}
    answer: a
    explanation: Because.
"""), ["line 18", "question 'q2'", "YAML reads yes/no", "in quotes"]),
    "not YAML at all": (HEAD + "  - id: [unclosed\n", ["line", "not valid YAML"]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_bank_is_named(write_bank, case: str) -> None:
    text, fragments = CASES[case]
    path = write_bank(text, name="bad")
    problems = [str(p) for p in validate_bank(path)]
    assert problems, f"{case}: expected a problem"
    message = problems[0]
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message!r}"
    with pytest.raises(BadConfig) as raised:
        load_quiz(path)
    assert str(raised.value).startswith(str(path))


@pytest.mark.parametrize("case", ["unknown type", "points not positive", "choice answer is not an option",
                                  "not YAML at all"])
def test_the_fast_path_still_names_the_problem(write_bank, case: str) -> None:
    text, fragments = CASES[case]
    with pytest.raises(BadConfig) as raised:
        load_quiz(write_bank(text, name="bad"), schema_check=False)
    assert fragments[-1] in str(raised.value)


def test_every_problem_is_listed(write_bank) -> None:
    text = bank("""\
  - id: q2
    type: essay
    topic: t
    points: 0
    prompt: Two problems.
    explanation: Yes.
""")
    problems = validate_bank(write_bank(text, name="bad"))
    assert len(problems) == 2
    with pytest.raises(BadConfig, match=r"and 1 more: run `.venv/bin/autograder quiz validate"):
        load_quiz(write_bank(text, name="bad"))
