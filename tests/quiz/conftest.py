"""Fixtures for the quiz engine's tests: a small bank with every question type, and a throwaway workbook."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from quiz_support import BANKS, SAMPLE


@pytest.fixture
def write_bank(tmp_path: Path) -> Callable[..., Path]:
    """Write a bank's YAML (dedented) to <tmp>/quizzes/<name>.yaml and return its path."""

    def write(text: str, name: str = "sample") -> Path:
        folder = tmp_path / "quizzes"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def sample(write_bank):  # -> Quiz
    from autograder.quiz.bank import load_quiz

    return load_quiz(write_bank(SAMPLE))


@pytest.fixture
def workbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A minimal workbook root holding copies of the course's banks; WORKBOOK_ROOT points at it."""
    root = tmp_path / "workbook"
    (root / "labs").mkdir(parents=True)
    for marker in ("pyproject.toml", "Makefile"):
        (root / marker).write_text("")
    shutil.copytree(BANKS, root / "quizzes")
    monkeypatch.setenv("WORKBOOK_ROOT", str(root))
    return root
