"""Structural checks of the lesson notebooks, no kernel needed (nbval runs them: `pytest --nbval-lax modules/`)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from autograder import startpage

MODULES = Path(__file__).resolve().parents[2] / "modules"
NOTEBOOKS = sorted(MODULES.rglob("*.ipynb"))
LESSONS = {lesson.notebook: lesson for lesson in startpage.COURSE}


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def test_every_notebook_is_on_the_course_map() -> None:
    found = {p.relative_to(MODULES).as_posix() for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts}
    assert found == set(LESSONS) | {"START-HERE.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(MODULES).as_posix())
def test_notebook_is_commit_ready(path: Path) -> None:
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                      "language": "python"}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"cell {i} has outputs: clear them"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("rel", sorted(LESSONS), ids=str)
def test_lesson_has_outcomes_quiz_and_lab_pointer(rel: str) -> None:
    lesson = LESSONS[rel]
    nb = _read(MODULES / rel)
    text = "\n".join(cell.source for cell in nb.cells)
    assert "## What you will be able to do" in nb.cells[0].source, "learning outcomes come first"
    assert f'show_quiz("{lesson.quiz}")' in nb.cells[-1].source or f'show_quiz("{lesson.quiz}")' in text
    if lesson.lab:
        assert f"autograder check {lesson.lab}" in text and f"workspace/{lesson.lab}/" in text
    assert 12 <= len(nb.cells) <= 60, f"{len(nb.cells)} cells: lessons aim for 15-30 short cells (a 2-hour lesson may reach 60)"
    for match in re.finditer(r"\]\(([^)]+\.ipynb)\)", text):  # links to other notebooks resolve
        assert ((MODULES / rel).parent / match.group(1)).resolve().is_file(), match.group(1)


def test_start_page_links_every_lesson_and_lab() -> None:
    text = "\n".join(cell.source for cell in _read(MODULES / "START-HERE.ipynb").cells)
    for lesson in startpage.COURSE:
        assert f"]({lesson.notebook})" in text
        if lesson.lab:
            assert f"autograder check {lesson.lab}" in text


def test_course_map_names_real_labs_and_quizzes() -> None:
    from autograder.labs import lab_names

    root = MODULES.parent
    assert set(startpage.labs()) == set(lab_names(root)), "course map and solutions/ disagree on the labs"
    missing = [q for q in startpage.quizzes() if not (root / "quizzes" / f"{q}.yaml").is_file()]
    assert not missing, f"quizzes named on the course map have no bank under quizzes/: {missing}"
