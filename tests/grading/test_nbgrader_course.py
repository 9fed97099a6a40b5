"""A plain nbgrader course (source/, submitted/, nbgrader_config.py; no lab.yaml) graded by `autograder grade`
in its sandbox, with a manually graded answer, a course file's due time, a late submission and an extension; the
instructor's points entered with `autograder review`, and kept by a regrade."""

from __future__ import annotations

import csv
import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from autograder.cli import main
from autograder.grading.practice import HW1_CLASS, make_nbgrader_course
from autograder.grading.sandbox import bwrap_works

DUE = datetime(2026, 10, 5, 23, 59, tzinfo=timezone.utc)


def make_course(root: Path) -> Path:
    """The practice class's nbgrader course (ada on time, bob 25 h late, cy 25 h late with an extension) and
    a course file for it."""
    # dee passes the visible test by rote: only the hidden (sealed) test can tell
    learners = {**HW1_CLASS, "dee": ("return 3 if (a, b) == (1, 2) else 0", "No idea.", 0.0)}
    course = make_nbgrader_course(root / "course", DUE, learners)
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
    # the manual answer (3) and task (1) are listed, pending, and counted in the maximum
    assert ada["status"] == "needs manual grading" and ada["score"] == "2" and ada["max_score"] == "6"
    assert ada["manual_pending"] == "4" and ada["explain"] == "0" and ada["examples"] == "0"
    assert ada["test-add"] == "2"
    assert "needs manual grading" in printed and "autograder review" in printed
    assert "no sealed hidden check" not in printed  # hw1's hidden test is sealed
    # on time / late: 25 h after the due time is 2 days at 10% of 6 points
    assert ada["submitted_at"] == "2026-10-05T11:59:00+00:00" and ada["late_by"] == "0" and ada["penalty"] == "0"
    assert bob["late_by"] == "25" and bob["penalty"] == "1.2" and bob["score"] == "0.8"
    assert "late penalty 20%" in bob["reason"]
    # the extension moved cy's due time: not late; the failed hidden test's message is the reason
    assert cy["penalty"] == "0" and cy["late_by"] == "0" and cy["test-add"] == "0"
    assert "test-add: AssertionError: add(1, 2) should be 3" in cy["reason"]
    assert "add must add" not in (out / "feedback" / "cy.html").read_text()  # hidden tests' code stays hidden
    dee = rows["dee"]  # the hidden test ran, sealed: the kernel never saw 15, and its failure is dee's reason
    assert dee["test-add"] == "0" and dee["status"] == "needs manual grading"
    assert "test-add: AssertionError: add must add any two numbers" in dee["reason"]
    assert "assert add(10, 5)" not in (out / "feedback" / "dee.html").read_text()
    page = (out / "feedback" / "bob.html").read_text()
    assert "Late penalty: 1.2 point(s)" in page and "needs manual grading" in page
    # group-readable outputs, and no work folder left behind
    assert stat.S_IMODE((out / "grades.csv").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "feedback").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "feedback" / "ada.html").stat().st_mode) == 0o640
    assert not (out / "work").exists()
    answers = json.loads((out / "answers" / "ada.json").read_text())
    assert answers["explain"]["text"] == "Reuse: fix it once." and answers["explain"]["max_points"] == 3
    assert answers["examples"]["text"].startswith("Task: show") and "add(2, 2), add(-1, 1)" in answers["examples"]["text"]

    # the instructor's points, without a terminal: a file and --set
    (tmp_path / "points.yaml").write_text("ada:\n  explain: {points: 3, comment: Clear.}\n  examples: 1\n")
    assert main(["review", str(out), "--points", str(tmp_path / "points.yaml"),
                 "--set", "bob:explain=1.5:Too short"]) == 0
    rows = _rows(out)
    assert rows["ada"]["status"] == "completed" and rows["ada"]["score"] == "6" and rows["ada"]["manual_pending"] == "0"
    assert rows["bob"]["score"] == "2.3" and rows["bob"]["explain"] == "1.5"  # 2 + 1.5 - 1.2 (the late penalty)
    assert rows["bob"]["status"] == "needs manual grading" and rows["bob"]["manual_pending"] == "1"
    assert "Too short" in (out / "feedback" / "bob.html").read_text()
    assert rows["cy"]["status"] == "needs manual grading"

    # a regrade keeps the entered points
    assert main(["grade", "hw1", "--course", str(tmp_path / "course.yaml"), "--workers", "2"]) == 0
    rows = _rows(out)
    assert rows["ada"]["score"] == "6" and rows["bob"]["score"] == "2.3"
    assert rows["cy"]["manual_pending"] == "4"
    from nbgrader.api import Gradebook  # nbgrader's own tools see the entered points

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", "mlinfra-workbook") as gb:
        assert gb.find_submission("hw1", "ada").score == 6 and not gb.find_submission("hw1", "ada").needs_manual_grade
        assert gb.find_submission("hw1", "bob").score == 3.5  # nbgrader's score: no late rule in its gradebook
        assert gb.find_submission("hw1", "bob").needs_manual_grade


def test_an_unknown_assignment_names_the_ones_there_are(tmp_path: Path, monkeypatch, capsys) -> None:
    course = make_course(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["grade", "hw9", "--nbgrader-course", str(course)]) == 2
    err = capsys.readouterr().err
    assert "no assignment 'hw9'" in err and "(assignments: hw1)" in err


def test_the_practice_class_is_built_from_the_samples(tmp_path: Path) -> None:
    """`make practice-class`: the known-bad samples as learners, one late, one extended, the course file valid
    for them, and an nbgrader course `grade` finds."""
    from autograder.grading.late import judge, load_course, received_time
    from autograder.grading.practice import build
    from autograder.nbgrader_course import find_course

    out = tmp_path / "practice"
    now = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    commands = build(out, ("lab01-environment",), now=now)
    subs = out / "submissions" / "lab01-environment"
    samples = {p.stem for p in (Path(__file__).parents[1] / "samples" / "lab01-environment").glob("*.yaml")}
    assert {p.name for p in subs.iterdir()} == samples | {"reference"}
    course = load_course(out / "course.yaml")
    lab = "lab01-environment"
    assert judge(course, lab, "partly-done", received_time(subs / "partly-done")).penalty_percent == 20
    assert judge(course, lab, "blank", received_time(subs / "blank")).penalty_percent == 0  # extended
    assert judge(course, lab, "reference", received_time(subs / "reference")).late_by_hours == 0
    assert find_course(out / "nbgrader-course" / "submitted") == (out / "nbgrader-course").resolve()
    hw1 = out / "nbgrader-course" / "submitted"
    assert judge(course, "hw1", "bob", received_time(hw1 / "bob")).penalty_percent == 20
    assert judge(course, "hw1", "cy", received_time(hw1 / "cy")).penalty_percent == 0
    assert any("--nbgrader-course" in c for c in commands) and all(c.split()[0].endswith("autograder")
                                                                    for c in commands)


def test_hidden_tests_the_grader_cannot_seal_are_named(tmp_path: Path) -> None:
    """A course written elsewhere may check its hidden tests in a way no seal holds: the batch says which cells."""
    import nbformat

    from autograder.grading.engine import prepare_batch

    course = make_course(tmp_path)
    source = course / "source" / "hw1" / "hw1.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("assert add(10, 5) == 15", "assert add(10, 5) == add(5, 10)")
    nbformat.write(nb, source)
    plan = prepare_batch(course / "source" / "hw1", course / "submitted", tmp_path / "work", sandbox="none")
    assert plan.tests == {"test-add": 2.0} and plan.manual == {"explain": 3.0, "examples": 1.0}
    assert any(n.startswith("no sealed hidden check in test-add") for n in plan.notes), plan.notes


def test_inside_a_course_an_unknown_assignment_is_named_not_the_workbook(tmp_path: Path, monkeypatch,
                                                                         capsys) -> None:
    course = make_course(tmp_path / "elsewhere")
    monkeypatch.chdir(course)
    monkeypatch.setenv("WORKBOOK_ROOT", str(tmp_path / "no-workbook-here"))
    assert main(["grade", "hw2"]) == 2
    assert "no assignment 'hw2'" in capsys.readouterr().err
