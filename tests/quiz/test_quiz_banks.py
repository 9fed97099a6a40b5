"""The course's banks: every one valid, the summative pools shaped as the course says, the reference key scores
100% on any learner's draw, and every learner's draw covers the same topics."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from quiz_support import BANKS, REFERENCE, REPO

from autograder.quiz.bank import bank_paths, load_quiz, validate_bank
from autograder.quiz.grading import grade_answers
from autograder.quiz.shuffle import arrange, drawn_ids

EXPECTED = ["module01", "phase1", *(f"lesson{n:02d}" for n in range(1, 14))]
SUMMATIVE = {"module01": 20, "phase1": 12}  # quiz -> questions each learner is asked
LEARNERS = [f"learner-{i:03d}" for i in range(100)]


@pytest.mark.parametrize("path", bank_paths(REPO), ids=lambda p: p.stem)
def test_every_bank_validates(path: Path) -> None:
    assert validate_bank(path) == []
    quiz = load_quiz(path)
    assert quiz.id == path.stem
    assert all(q.explanation and q.topic for q in quiz.questions)


def test_the_course_has_its_banks_and_outcomes_file_is_not_one() -> None:
    assert sorted(p.stem for p in bank_paths(REPO)) == sorted(EXPECTED)
    assert (BANKS / "outcomes.yaml").is_file()


@pytest.mark.parametrize("n", range(1, 14))
def test_lesson_banks_are_formative_with_three_to_five_questions(n: int) -> None:
    quiz = load_quiz(BANKS / f"lesson{n:02d}.yaml")
    assert 3 <= len(quiz.questions) <= 5 and not quiz.summative


def test_question_ids_are_unique_across_the_course() -> None:
    ids = [q.id for p in bank_paths(REPO) for q in load_quiz(p).questions]
    assert len(ids) == len(set(ids))


def test_no_summative_question_is_also_a_practice_question() -> None:
    """Practice keys may be recovered from a learner copy (docs/quizzes.md): a graded prompt must not be one."""
    def prompts(summative: bool) -> dict[str, str]:
        found = {}
        for path in bank_paths(REPO):
            quiz = load_quiz(path)
            if quiz.summative == summative:
                found.update({" ".join(q.prompt.lower().split()): f"{quiz.id}:{q.id}" for q in quiz.questions})
        return found

    graded, practice = prompts(True), prompts(False)
    shared = sorted(f"{graded[p]} = {practice[p]}" for p in graded.keys() & practice.keys())
    assert shared == [], f"graded questions also asked in a practice quiz: {shared}"


@pytest.mark.parametrize(("quiz_id", "asked"), SUMMATIVE.items())
def test_summative_pools_are_at_least_twice_what_they_ask(quiz_id: str, asked: int) -> None:
    quiz = load_quiz(BANKS / f"{quiz_id}.yaml")
    assert quiz.summative and quiz.asked == asked and quiz.draw == asked
    assert len(quiz.questions) >= 2 * asked
    assert sum(n for _, n in quiz.draw_by_topic) == asked
    assert {t for t, _ in quiz.draw_by_topic} == {q.topic for q in quiz.questions}
    assert quiz.pass_mark == pytest.approx(0.70) and all(q.points == 1 for q in quiz.questions)
    assert all(q.outcomes for q in quiz.questions), "every summative question names the outcomes it asks about"


@pytest.mark.parametrize(("quiz_id", "asked"), SUMMATIVE.items())
def test_a_hundred_learners_each_get_the_stated_topic_coverage(quiz_id: str, asked: int) -> None:
    quiz = load_quiz(BANKS / f"{quiz_id}.yaml")
    wanted = dict(quiz.draw_by_topic)
    seen: Counter[str] = Counter()
    draws = set()
    for learner in LEARNERS:
        presented = arrange(quiz, learner=learner)
        assert len(presented) == asked and len({p.question.id for p in presented}) == asked
        assert Counter(p.question.topic for p in presented) == wanted, learner
        seen.update(p.question.id for p in presented)
        draws.add(frozenset(p.question.id for p in presented))
    assert set(seen) == {q.id for q in quiz.questions}, "over 100 learners every question of the pool is asked"
    assert len(draws) > 90, "learners get different draws"


def test_the_same_learner_id_always_draws_the_same_questions() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    first = [p.question.id for p in arrange(quiz, learner="ada")]
    again = [p.question.id for p in arrange(load_quiz(BANKS / "module01.yaml"), learner="ada")]
    assert first == again
    assert set(first) == drawn_ids(quiz, "ada") == drawn_ids(quiz, " ADA ")  # ids compare case-insensitively
    assert set(first) != drawn_ids(quiz, "grace")


def _reference() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def test_reference_answers_cover_module01_exactly() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    assert set(_reference()) == {q.id for q in quiz.questions}


def test_reference_answers_score_full_marks_on_every_draw() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    everything = grade_answers(quiz, _reference())
    assert [r.id for r in everything.questions if r.status != "correct"] == []
    for learner in LEARNERS[:20]:
        result = grade_answers(quiz, _reference(), only=drawn_ids(quiz, learner))
        assert (result.score, result.max_score, result.passed) == (20, 20, True)


def _spoil(quiz, answers: dict, ids: list[str]) -> dict:
    """The reference with the questions `ids` answered wrongly (a wrong option, or a wrong text or number)."""
    spoiled = dict(answers)
    for qid in ids:
        q = quiz.question(qid)
        if q.type == "single":
            spoiled[q.id] = next(o for o in q.options if o != q.answer)
        elif q.type == "multiple":
            spoiled[q.id] = [next(o for o in q.options if o not in q.answer)]
        elif q.type == "truefalse":
            spoiled[q.id] = not q.answer
        elif q.type == "numeric":
            spoiled[q.id] = -12345
        else:
            spoiled[q.id] = "no idea"
    return spoiled


@pytest.mark.parametrize(("wrong", "passed"), [(6, True), (7, False)])
def test_fourteen_of_twenty_passes_thirteen_fails(wrong: int, passed: bool) -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    drawn = drawn_ids(quiz, "ada")
    mine = [q.id for q in quiz.questions if q.id in drawn]
    result = grade_answers(quiz, _spoil(quiz, _reference(), mine[:wrong]), only=drawn)
    assert result.score == 20 - wrong
    assert result.passed is passed
