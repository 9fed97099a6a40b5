"""The course's banks: every one valid, module01 shaped as the course says, the reference key scores 100%."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from quiz_support import BANKS, REFERENCE

from autograder.quiz.bank import load_quiz, validate_bank
from autograder.quiz.grading import grade_answers

EXPECTED = ["module01", "phase1", *(f"lesson{n:02d}" for n in range(1, 9))]


@pytest.mark.parametrize("path", sorted(BANKS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_bank_validates(path: Path) -> None:
    assert validate_bank(path) == []
    quiz = load_quiz(path)
    assert quiz.id == path.stem
    assert all(q.explanation and q.topic for q in quiz.questions)


def test_the_course_has_its_banks() -> None:
    assert sorted(p.stem for p in BANKS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("n", range(1, 9))
def test_lesson_banks_have_three_to_five_questions(n: int) -> None:
    assert 3 <= len(load_quiz(BANKS / f"lesson{n:02d}.yaml").questions) <= 5


def test_question_ids_are_unique_across_the_course() -> None:
    ids = [q.id for p in BANKS.glob("*.yaml") for q in load_quiz(p).questions]
    assert len(ids) == len(set(ids))


def test_module01_is_twenty_one_point_questions_with_a_70_percent_pass_mark() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    assert len(quiz.questions) == 20
    assert quiz.pass_mark == pytest.approx(0.70)
    assert all(q.points == 1 for q in quiz.questions)
    assert {q.type for q in quiz.questions} <= {"single", "multiple", "short"}
    assert any(q.type == "short" for q in quiz.questions)


def _reference() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def test_reference_answers_cover_module01_exactly() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    assert set(_reference()) == {q.id for q in quiz.questions}


def test_reference_answers_score_full_marks() -> None:
    result = grade_answers(load_quiz(BANKS / "module01.yaml"), _reference())
    assert [r.id for r in result.questions if r.status != "correct"] == []
    assert (result.score, result.max_score, result.passed) == (20, 20, True)


def _spoil(quiz, answers: dict, count: int) -> dict:
    """The reference with `count` questions answered wrongly (a wrong option, or a wrong text)."""
    spoiled = dict(answers)
    for q in quiz.questions[:count]:
        if q.type == "single":
            spoiled[q.id] = next(o for o in q.options if o != q.answer)
        elif q.type == "multiple":
            spoiled[q.id] = [next(o for o in q.options if o not in q.answer)]
        else:
            spoiled[q.id] = "no idea"
    return spoiled


@pytest.mark.parametrize(("wrong", "passed"), [(6, True), (7, False)])
def test_fourteen_of_twenty_passes_thirteen_fails(wrong: int, passed: bool) -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    result = grade_answers(quiz, _spoil(quiz, _reference(), wrong))
    assert result.score == 20 - wrong
    assert result.passed is passed
