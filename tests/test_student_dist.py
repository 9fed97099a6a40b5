"""`autograder release --student-dist`: what an instructor-led class receives carries no solutions or keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.errors import UsageError
from autograder.release import _is_distinctive, _solution_lines, student_dist

ROOT = Path(__file__).resolve().parent.parent


def test_student_dist_has_no_solutions_hidden_tests_or_plain_keys(tmp_path: Path) -> None:
    dest = tmp_path / "class"
    student_dist(ROOT, dest)
    assert (dest / "labs" / "lab01-environment").is_dir() and (dest / "mlinfra").is_dir()
    assert not (dest / "solutions").exists() and not (dest / "tests").exists()
    for folder in ("labs", "modules", "quizzes"):
        for path in (dest / folder).rglob("*"):
            if path.is_file():
                text = path.read_text(errors="ignore")
                assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text, path
    secret: set[str] = set()
    public: set[str] = set()
    for lab in (ROOT / "solutions").iterdir():
        for path in lab.rglob("*"):
            if path.is_file():
                inside, outside = _solution_lines(path)
                secret |= inside
                public |= outside
    secret = {line for line in secret - public if _is_distinctive(line)}
    # The course library (mlinfra/) is complete by design and may share lines with lab solutions (the API lab's
    # solution resembles the reference service); what learners fill in lives under labs/.
    for path in (dest / "labs").rglob("*"):
        if path.is_file() and path.suffix != ".ipynb":
            lines = {line.strip() for line in path.read_text(errors="ignore").splitlines()}
            assert not (lines & secret), f"{path} holds solution lines: {sorted(lines & secret)[:3]}"
    quizzes = sorted(p.name for p in (dest / "quizzes").glob("*"))
    assert "module01.yaml" in " ".join(quizzes) or quizzes, "learner copies of the quizzes are included"


def test_student_dist_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        student_dist(ROOT, tmp_path / "x")
