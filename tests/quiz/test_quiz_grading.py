"""Each question type grades right, wrong, partial, empty and malformed answers as specified."""

from __future__ import annotations

import math

import pytest
from quiz_support import SAMPLE_KEY

from autograder.quiz.grading import grade_answers, grade_question


def grade(quiz, qid: str, answer):
    return grade_question(quiz.question(qid), answer)


@pytest.mark.parametrize(
    ("qid", "answer", "status", "points"),
    [
        # single choice: the option id, any case, or the option's own text
        ("pick-one", "b", "correct", 2),
        ("pick-one", " B ", "correct", 2),
        ("pick-one", "banana-split", "correct", 2),
        ("pick-one", "a", "wrong", 0),
        ("pick-one", "", "missing", 0),
        ("pick-one", None, "missing", 0),
        ("pick-one", "z", "invalid", 0),
        ("pick-one", ["b", "c"], "invalid", 0),
        ("pick-one", {"b": 1}, "invalid", 0),
        ("pick-one", True, "invalid", 0),
        # multiple select: +1/2 per right pick, -1/2 per wrong pick, floored at 0
        ("pick-many", ["a", "c"], "correct", 1),
        ("pick-many", "c, a", "correct", 1),
        ("pick-many", ["a"], "partial", 0.5),
        ("pick-many", ["a", "c", "b"], "partial", 0.5),
        ("pick-many", ["a", "b"], "wrong", 0),
        ("pick-many", ["a", "b", "c", "d"], "wrong", 0),
        ("pick-many", ["b", "d"], "wrong", 0),
        ("pick-many", [], "missing", 0),
        ("pick-many", ["a", "z"], "invalid", 0),
        ("pick-many", 3, "invalid", 0),
        # true/false
        ("yes-or-no", False, "correct", 1),
        ("yes-or-no", "no", "correct", 1),
        ("yes-or-no", "F", "correct", 1),
        ("yes-or-no", True, "wrong", 1 - 1),
        ("yes-or-no", "maybe", "invalid", 0),
        ("yes-or-no", 0, "invalid", 0),
        ("yes-or-no", "  ", "missing", 0),
        # numeric: exact, tolerance, range
        ("exact-number", 42, "correct", 1),
        ("exact-number", "42.0", "correct", 1),
        ("exact-number", 42.5, "wrong", 0),
        ("exact-number", "forty-two", "invalid", 0),
        ("exact-number", math.nan, "invalid", 0),
        ("exact-number", True, "invalid", 0),
        ("exact-number", [42], "invalid", 0),
        ("near-number", 3.149, "correct", 1),
        ("near-number", 3.15, "correct", 1),
        ("near-number", 3.16, "wrong", 0),
        ("in-range", 10, "correct", 1),
        ("in-range", "20", "correct", 1),
        ("in-range", 20.5, "wrong", 0),
        # short answer: normalized match, regex, case-sensitive
        ("words", "Infrastructure as Code.", "correct", 1),
        ("words", "infrastructure-as-code", "correct", 1),
        ("words", "iac", "correct", 1),
        ("words", "configuration management", "wrong", 0),
        ("words", ["iac"], "invalid", 0),
        ("words", "", "missing", 0),
        ("pattern", "v12", "correct", 1),
        ("pattern", "V3", "correct", 1),
        ("pattern", "version 3", "wrong", 0),
        ("exact-case", "CMD", "correct", 1),
        ("exact-case", "cmd", "wrong", 0),
    ],
)
def test_grade_question(sample, qid, answer, status, points) -> None:
    result = grade(sample, qid, answer)
    assert (result.status, result.points) == (status, pytest.approx(points))
    if status in ("invalid", "missing"):
        assert result.reason, "a zero for a malformed or missing answer must say why"


def test_invalid_choice_names_the_options(sample) -> None:
    assert "options: a, b, c" in grade(sample, "pick-one", "z").reason


def test_the_key_scores_full_marks(sample) -> None:
    result = grade_answers(sample, SAMPLE_KEY)
    assert (result.score, result.max_score, result.passed) == (10, 10, True)
    assert result.topics_to_review() == []


def test_missing_unknown_and_mistyped_answers_never_crash(sample) -> None:
    answers = {"pick-one": "a", "pick-many": ["a"], "yes-or-no": "perhaps", "no-such-question": "x", 7: "y"}
    result = grade_answers(sample, answers)
    by_id = {r.id: r for r in result.questions}
    assert by_id["pick-one"].status == "wrong"
    assert by_id["yes-or-no"].status == "invalid"
    assert by_id["exact-number"].status == "missing"
    assert result.score == 0.5
    assert any("no-such-question" in note for note in result.notes)
    assert any("'7'" in note for note in result.notes)


def test_pass_mark_and_topics_to_review(sample) -> None:
    answers = dict(SAMPLE_KEY, **{"pick-one": "a", "words": "nope"})  # lose 2 (choice) + 1 (words)
    result = grade_answers(sample, answers)
    assert result.score == 7
    assert result.passed  # 7/10 >= 0.5
    assert result.topics_to_review() == [("choice", 2.0), ("words", 1.0)]
    lose_more = dict(answers, **{"exact-number": 0, "near-number": 0, "in-range": 0})
    assert not grade_answers(sample, lose_more).passed  # 4/10 < 0.5
