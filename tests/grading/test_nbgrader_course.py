"""A plain nbgrader course (source/, submitted/, nbgrader_config.py; no lab.yaml) graded by `autograder grade`
in its sandbox, with a manually graded answer, a course file's due time, a late submission and an extension; the
instructor's points entered with `autograder review`, and kept by a regrade."""

from __future__ import annotations

import copy
import csv
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main
from autograder.grading.sandbox import bwrap_works

SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
TESTS = ('assert add(1, 2) == 3, "add(1, 2) should be 3"\n### BEGIN HIDDEN TESTS\n'
         'assert add(10, 5) == 15, "add must add any two numbers"\n### END HIDDEN TESTS')


def _meta(gid: str, *, grade: bool, solution: bool, points: float = 0, locked: bool = False) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": gid, "schema_version": 3}
    if grade:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Homework 1"),
        nbformat.v4.new_code_cell(SOLUTION, metadata=_meta("add", grade=False, solution=True)),
        nbformat.v4.new_code_cell(TESTS, metadata=_meta("test-add", grade=True, solution=False, points=2,
                                                         locked=True)),
        nbformat.v4.new_markdown_cell("Explain why a function beats copy and paste.\n\n"
                                      "=== model answer: reuse, one place to fix ===",
                                      metadata=_meta("explain", grade=True, solution=True, points=3)),
    ]
    return nb


def student_notebook(body: str, answer: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(source_notebook())
    nb.cells[1].source = f"def add(a, b):\n    {body}"
    nb.cells[2].source = 'assert add(1, 2) == 3, "add(1, 2) should be 3"'  # released: no hidden tests
    nb.cells[3].source = answer
    return nb


def _stamp(folder: Path, when: datetime) -> None:
    """The time the instructor's copy gave every file and folder of a submission (as collected)."""
    t = when.timestamp()
    for path in sorted(folder.rglob("*"), reverse=True):
        os.utime(path, (t, t), follow_symlinks=False)
    os.utime(folder, (t, t))


def make_course(root: Path) -> Path:
    course = root / "course"
    (course / "source" / "hw1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "demo"\n'
                                               "c.Execute.timeout = 30\n")
    nbformat.write(source_notebook(), course / "source" / "hw1" / "hw1.ipynb")
    handed = {"ada": ("return a + b", "Reuse: fix it once.", "2026-10-05T12:00:00+00:00"),
              "bob": ("return a + b", "It is shorter.", "2026-10-07T01:00:00+00:00"),   # 25 h late
              "cy": ("return a - b", "", "2026-10-07T01:00:00+00:00")}                  # late but extended
    for student, (body, answer, when) in handed.items():
        folder = course / "submitted" / student / "hw1"
        folder.mkdir(parents=True)
        nbformat.write(student_notebook(body, answer), folder / "hw1.ipynb")
        _stamp(course / "submitted" / student, datetime.fromisoformat(when))
    (root / "course.yaml").write_text(
        "timezone: UTC\n"
        "late: {grace_minutes: 10, penalty_per_day: 10, max_penalty: 50}\n"
        "due:\n  hw1: 2026-10-05 23:59\n"
        "extensions:\n  cy:\n    hw1: {days: 3}\n")
    return course


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


def test_a_plain_nbgrader_course_is_graded_with_late_rule_and_manual_points(tmp_path: Path, monkeypatch,
                                                                           capsys) -> None:
    why = bwrap_works()
    if why:
        pytest.skip(f"bubblewrap cannot run here: {why}")
    course = make_course(tmp_path)
    monkeypatch.chdir(course)  # found by itself: no lab.yaml, no WORKBOOK_ROOT, no SUBMISSIONS_DIR
    monkeypatch.delenv("WORKBOOK_ROOT", raising=False)
    mask = os.umask(0o027)  # an instructor whose group may read, others not
    try:
        assert main(["grade", "hw1", "--course", str(tmp_path / "course.yaml"), "--workers", "2"]) == 0
    finally:
        os.umask(mask)
    printed = capsys.readouterr().out
    out = course / "grades" / "hw1"
    rows = _rows(out)
    assert list(next(csv.reader((out / "grades.csv").open())))[:8] == [
        "student", "status", "score", "max_score", "submitted_at", "late_by", "penalty", "manual_pending"]
    ada, bob, cy = rows["ada"], rows["bob"], rows["cy"]
    # the manual cell is listed, pending, and counted in the maximum
    assert ada["status"] == "needs manual grading" and ada["score"] == "2" and ada["max_score"] == "5"
    assert ada["manual_pending"] == "3" and ada["explain"] == "0" and ada["test-add"] == "2"
    assert "needs manual grading" in printed and "autograder review" in printed
    # on time / late: 25 h after the due time is 2 days at 10% of 5 points
    assert ada["submitted_at"] == "2026-10-05T12:00:00+00:00" and ada["late_by"] == "0" and ada["penalty"] == "0"
    assert bob["late_by"] == "25.02" and bob["penalty"] == "1" and bob["score"] == "1"
    assert "late penalty 20%" in bob["reason"]
    # the extension moved cy's due time: not late; the failed hidden test's message is the reason
    assert cy["penalty"] == "0" and cy["late_by"] == "0" and cy["test-add"] == "0"
    assert "test-add: AssertionError: add(1, 2) should be 3" in cy["reason"]
    assert "add must add" not in (out / "feedback" / "cy.html").read_text()  # hidden tests stay hidden
    page = (out / "feedback" / "bob.html").read_text()
    assert "Late penalty: 1 point(s)" in page and "needs manual grading" in page
    # group-readable outputs, and no work folder left behind
    assert stat.S_IMODE((out / "grades.csv").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "feedback").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "feedback" / "ada.html").stat().st_mode) == 0o640
    assert not (out / "work").exists()
    answers = json.loads((out / "answers" / "ada.json").read_text())
    assert answers["explain"]["text"] == "Reuse: fix it once." and answers["explain"]["max_points"] == 3

    # the instructor's points, without a terminal: a file and --set
    (tmp_path / "points.yaml").write_text("ada:\n  explain: {points: 3, comment: Clear.}\n")
    assert main(["review", str(out), "--points", str(tmp_path / "points.yaml"),
                 "--set", "bob:explain=1.5:Too short"]) == 0
    rows = _rows(out)
    assert rows["ada"]["status"] == "completed" and rows["ada"]["score"] == "5" and rows["ada"]["manual_pending"] == "0"
    assert rows["bob"]["score"] == "2.5" and rows["bob"]["explain"] == "1.5"  # 2 + 1.5 - 1 (the late penalty)
    assert "Too short" in (out / "feedback" / "bob.html").read_text()
    assert rows["cy"]["status"] == "needs manual grading"

    # a regrade keeps the entered points
    assert main(["grade", "hw1", "--course", str(tmp_path / "course.yaml"), "--workers", "2"]) == 0
    rows = _rows(out)
    assert rows["ada"]["score"] == "5" and rows["bob"]["score"] == "2.5"
    assert rows["cy"]["manual_pending"] == "3"


def test_an_unknown_assignment_names_the_ones_there_are(tmp_path: Path, monkeypatch, capsys) -> None:
    course = make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["grade", "hw9", "--nbgrader-course", str(course)]) == 2
    err = capsys.readouterr().err
    assert "no assignment 'hw9'" in err and "(assignments: hw1)" in err
