"""The notebook widget: checking answers, recording progress, and running headless without error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.quiz.widget import build_quiz, show_quiz, to_html


def _answer(card, value) -> None:
    q = card.presented.question
    if q.type == "multiple":
        for option, box in zip(card.presented.options, card.boxes, strict=False):
            box.value = option in value
    else:
        card.input.value = value


def _key(q):
    return {"single": q.answer, "multiple": q.answer, "truefalse": q.answer}.get(q.type, str(q.answer))


def test_checking_every_question_scores_and_records(workbook: Path) -> None:
    view = build_quiz("lesson04", learner="ada")
    for card in view.cards:
        _answer(card, _key(card.presented.question))
        card.button.click()
        assert card.result.status == "correct"
        assert card.button.disabled
        assert "Why:" in card.feedback.value
    assert view.result.passed and view.result.score == 4
    assert "Passed: 4 of 4" in view.summary.value
    record = json.loads((workbook / "workspace" / ".progress" / "quiz-lesson04.json").read_text())
    assert record["passed"] is True and record["score"] == 4


def test_wrong_and_empty_answers(workbook: Path) -> None:
    view = build_quiz("lesson04", seed=3)
    first = view.cards[0]
    first.button.click()  # nothing chosen yet: asks for an answer, does not lock
    assert first.result is None and not first.button.disabled
    assert "Choose or type an answer first" in first.feedback.value
    numeric = next(c for c in view.cards if c.presented.question.type == "numeric")
    numeric.input.value = "about seventy thousand"
    numeric.check()
    assert numeric.result is None and "expected a number" in numeric.feedback.value
    q = first.presented.question
    _answer(first, next(o for o in q.options if o != q.answer))
    first.button.click()
    assert first.result.status == "wrong" and "The answer:" in first.feedback.value
    assert view.result is None, "no score until every question is checked"
    assert not (workbook / "workspace" / ".progress").exists()


def test_works_from_a_learner_copy(workbook: Path, tmp_path: Path) -> None:
    from autograder.quiz.learner import write_learner_copies

    source = build_quiz("lesson06", seed=1)
    copy_path = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}["lesson06"]
    view = build_quiz(copy_path, seed=1)
    for card, src in zip(view.cards, source.cards, strict=True):
        _answer(card, _key(src.presented.question))
        card.check()
    statuses = [c.result.status for c in view.cards]
    assert statuses.count("pending") == 1 and statuses.count("correct") == 4
    assert "graded by your instructor" in view.summary.value


def test_show_quiz_outside_a_kernel_prints_a_pointer(workbook: Path, capsys) -> None:
    show_quiz("lesson03")
    assert "autograder quiz take lesson03" in capsys.readouterr().out


def test_markdown_bits_become_html() -> None:
    assert to_html("Use `x < 1`.\n\n    code()\n    more()") == (
        "<p>Use <code>x &lt; 1</code>.</p><pre>code()\nmore()</pre>")


@pytest.mark.slow
def test_runs_headless_in_a_real_kernel(workbook: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from autograder.quiz.widget import show_quiz\nshow_quiz('lesson03')")])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(workbook / "labs")}}).execute()
    [output] = nb.cells[0].outputs
    assert output.output_type == "display_data"
    assert "application/vnd.jupyter.widget-view+json" in output.data
    assert "autograder quiz take lesson03" in output.data["text/plain"]
    assert not (workbook / "workspace" / ".progress").exists()


def test_a_summative_learner_copy_shows_how_to_take_the_exam(workbook: Path, tmp_path: Path, capsys) -> None:
    from autograder.quiz.learner import write_learner_copies
    from autograder.quiz.widget import show_quiz

    copies = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}
    show_quiz(copies["phase1"])
    out = capsys.readouterr().out
    assert "graded quiz" in out and "--exam" in out
