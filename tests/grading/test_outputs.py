"""finish_batch's outputs from hand-made outcomes (no kernel): grades.csv, summary.json, feedback without tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder.grading.engine import finish_batch
from autograder.grading.plan import BatchPlan, load_plan
from mlinfra.base.results import Check, Outcome


def _plan(tmp_path: Path) -> BatchPlan:
    plan = BatchPlan(lab_name="lab01-environment", lab_folder=str(tmp_path), work_dir=str(tmp_path / "work"),
                     sandbox="bwrap", tests={"test-a": 2.0, "test-b": 1.0}, students=["ada", "bob", "cy"],
                     submissions={s: {"files": None, "notes": [], "flags": [], "entry": s, "unreadable": ""}
                                  for s in ("ada", "bob", "cy")})
    (tmp_path / "work").mkdir()
    plan.save()
    return plan


def test_plan_round_trips(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert load_plan(tmp_path / "work") == plan


def test_outputs_list_flags_deploy_checks_and_missing_students(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    ada = Outcome("ada", [Check("test-a", "passed", 2, 2), Check("test-b", "failed", 0, 1, "AssertionError: no"),
                          Check("deploy: reachable", "passed", 1, 1)],
                  notes=["a note"], status="flagged", data={"flags": ["tampering? cell 3 line 1: os.kill"]})
    bob = Outcome("bob", [Check("test-a", "passed", 2, 2, where="cell 4"), Check("test-b", "passed", 1, 1)])
    batch = finish_batch(plan, [bob, ada], tmp_path / "out")  # cy never came back
    assert [p.subject for p in batch.parts] == ["ada", "bob", "cy"]
    rows = list(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert [r["student"] for r in rows] == ["ada", "bob", "cy"]
    assert rows[0]["status"] == "flagged" and rows[0]["reason"].startswith("tampering? cell 3 line 1: os.kill")
    assert rows[0]["deploy: reachable"] == "1" and rows[0]["score"] == "3" and rows[0]["max_score"] == "4"
    assert rows[2]["status"] == "grader error" and "no result came back" in rows[2]["reason"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["flagged"] == {"ada": ["tampering? cell 3 line 1: os.kill"]}
    assert summary["statuses"] == {"completed": 1, "flagged": 1, "grader error": 1}
    page = (tmp_path / "out" / "feedback" / "ada.html").read_text()
    assert "test-b" in page and "AssertionError: no" in page and "a note" in page


def test_feedback_escapes_what_students_wrote(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    evil = Outcome("ada", [Check("test-a", "failed", 0, 2, "<script>alert(1)</script>")])
    finish_batch(plan, [evil], tmp_path / "out")
    page = (tmp_path / "out" / "feedback" / "ada.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_files_a_sandbox_wrote_are_read_without_links_and_bounded(tmp_path: Path) -> None:
    """kernel.log is the kernel's to write: a link planted in its place is not followed, and a huge one is cut."""
    from autograder.grading.worker import read_bounded

    secret = tmp_path / "solution.ipynb"
    secret.write_text("### BEGIN SOLUTION")
    planted = tmp_path / "kernel.log"
    planted.symlink_to(secret)
    assert read_bounded(planted, 1000) == b""
    planted.unlink()
    planted.write_bytes(b"y" * 5000)
    assert read_bounded(planted, 1000) == b"y" * 1000
    assert read_bounded(tmp_path / "missing.log", 1000) == b""


def test_grades_csv_never_holds_a_formula() -> None:
    """A student id or a reason a spreadsheet would run as a formula is written as text (OWASP CSV injection)."""
    from autograder.grading.outputs import grades_csv

    outcome = Outcome('=HYPERLINK("http://127.0.0.1/x","click")', [Check("test-a", "passed", 1.0, 1.0)],
                      notes=["+cmd|' /C calc'!A0"], status="completed")
    rows = list(csv.reader(grades_csv("lab01-environment", ["test-a"], [outcome]).splitlines()))
    assert rows[1][0].startswith("'=") and rows[1][-1].startswith("'+"), rows[1]
    assert rows[1][2:4] == ["1", "1"], "numbers stay numbers"
