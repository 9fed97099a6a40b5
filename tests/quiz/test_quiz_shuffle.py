"""Seeded per learner: the same learner always gets the same quiz; draws are rebuilt for grading."""

from __future__ import annotations

from quiz_support import BANKS

from autograder.quiz.bank import load_quiz
from autograder.quiz.grading import grade_batch
from autograder.quiz.shuffle import arrange, drawn_ids, learner_seed


def order(quiz, **kw) -> list[tuple[str, tuple[str, ...]]]:
    return [(p.question.id, p.options) for p in arrange(quiz, **kw)]


def test_same_learner_same_quiz_different_learners_differ() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    assert order(quiz, learner="ada") == order(quiz, learner="ada")
    assert order(quiz, learner="ada") == order(quiz, learner=" Ada ")  # names are compared loosely
    assert order(quiz, learner="ada") != order(quiz, learner="grace")
    assert order(quiz, seed=7) == order(quiz, seed=7) != order(quiz, seed=8)


def test_the_seed_is_stable_across_processes() -> None:
    # derived from SHA-256, not from Python's hash(), which is salted per process
    import hashlib

    expected = int(hashlib.sha256(b"module01\nada").hexdigest()[:16], 16)
    assert learner_seed("module01", "ada") == expected


def test_shuffle_moves_questions_and_options_but_keeps_the_set() -> None:
    quiz = load_quiz(BANKS / "module01.yaml")
    shown = arrange(quiz, learner="ada")
    drawn = [q.id for q in quiz.questions if q.id in {p.question.id for p in shown}]
    assert len(shown) == quiz.draw == 20
    assert [p.question.id for p in shown] != drawn  # drawn, then shuffled
    assert sorted(p.question.id for p in shown) == sorted(drawn)
    assert any(p.options != tuple(p.question.options) for p in shown)
    assert all(sorted(p.options) == sorted(p.question.options) for p in shown)


def test_lessons_keep_question_order_but_shuffle_options() -> None:
    quiz = load_quiz(BANKS / "lesson01.yaml")
    assert [p.question.id for p in arrange(quiz, learner="ada")] == [q.id for q in quiz.questions]


def test_draws_are_per_learner_and_grading_uses_the_learners_draw(write_bank, tmp_path) -> None:
    questions = "".join(
        f"""
  - id: q{i}
    type: truefalse
    topic: t{i}
    points: 1
    prompt: Statement {i}.
    answer: true
    explanation: True.
""" for i in range(10))
    quiz = load_quiz(write_bank(f"id: drawn\ntitle: Drawn\npass_mark: 1.0\ndraw: 4\nquestions:{questions}",
                                name="drawn"))
    ada = drawn_ids(quiz, "ada")
    assert len(ada) == 4 and ada == drawn_ids(quiz, "ada")
    assert ada == {p.question.id for p in arrange(quiz, learner="ada")}
    assert any(drawn_ids(quiz, name) != ada for name in ("grace", "alan", "edsger"))
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "ada.yaml").write_text("".join(f"q{i}: true\n" for i in range(10)))
    [grade] = grade_batch(quiz, answers)
    assert (grade.result.score, grade.result.max_score, grade.result.passed) == (4, 4, True)
    assert sum("not in this learner's draw" in note for note in grade.result.notes) == 6
