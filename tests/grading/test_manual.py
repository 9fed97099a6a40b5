"""Manually graded cells from hand-made outcomes (no kernel): pending until `autograder review` enters points,
interactively or from a file; wrong points are refused naming the key; a regrade keeps what was entered."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest
import yaml

from autograder.cli import main
from autograder.errors import BadConfig
from autograder.grading.engine import finish_batch
from autograder.grading.manual import load_entered
from autograder.grading.plan import BatchPlan
from mlinfra.base.results import Check, Outcome

ANSWERS = {"ada": "Because reuse.", "bob": "I do not know.\x1b]0;owned\x07"}  # bob's sets the terminal's title


def _grade(tmp_path: Path) -> Path:
    """What finish_batch writes for two students whose notebook has a 2-point test and a 4-point essay."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    plan = BatchPlan(lab_name="hw1", lab_folder=str(tmp_path), work_dir=str(work), sandbox="none",
                     tests={"test-a": 2.0}, manual={"essay": 4.0}, students=sorted(ANSWERS),
                     submissions={s: {"files": "x", "notes": [], "flags": [], "entry": s, "unreadable": "",
                                      "received": None} for s in ANSWERS})
    outcomes = [Outcome(s, [Check("test-a", "passed", 2.0, 2.0)],
                        data={"answers": {"essay": {"where": "cell 5", "kind": "markdown", "text": text,
                                                    "max_points": 4.0}}})
                for s, text in ANSWERS.items()]
    finish_batch(plan, outcomes, tmp_path / "out")
    return tmp_path / "out"


def _rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


def test_pending_then_entered_interactively_then_kept_by_a_regrade(tmp_path: Path, monkeypatch, capsys) -> None:
    out = _grade(tmp_path)
    rows = _rows(out)
    assert rows["ada"]["status"] == "needs manual grading" and rows["ada"]["manual_pending"] == "4"
    assert rows["ada"]["score"] == "2" and rows["ada"]["max_score"] == "6" and rows["ada"]["essay"] == "0"
    assert "needs manual grading: essay (4 points pending" in rows["ada"]["reason"]

    # a terminal: ada gets 3 with a comment after one typo and one out-of-range answer; bob is skipped
    monkeypatch.setattr(sys, "stdin", io.StringIO("three\n5\n3\nGood, but say why.\n\n"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert main(["review", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "Because reuse." in shown and "I do not know." in shown  # each answer is shown before its points
    assert "\x1b" not in shown and "\\x1b]0;owned\\x07" in shown  # escapes shown, never sent to the terminal
    assert "'three' is not a number" in shown and "give 0 to 4" in shown
    rows = _rows(out)
    assert rows["ada"]["status"] == "completed" and rows["ada"]["score"] == "5" and rows["ada"]["essay"] == "3"
    assert rows["bob"]["status"] == "needs manual grading"
    assert "Good, but say why." in (out / "feedback" / "ada.html").read_text()
    assert load_entered(out / "manual.yaml")["ada"]["essay"].points == 3

    _grade(tmp_path)  # the same folder graded again
    assert _rows(out)["ada"]["score"] == "5" and _rows(out)["bob"]["manual_pending"] == "4"


def test_points_are_checked_against_the_cell(tmp_path: Path, capsys) -> None:
    out = _grade(tmp_path)
    assert main(["review", str(out), "--set", "ada:essay=5"]) == 2
    assert "ada.essay.points: expected a number from 0 to 4.0" in capsys.readouterr().err
    assert main(["review", str(out), "--set", "ada:nope=1"]) == 2
    assert "no manually graded cell 'nope'" in capsys.readouterr().err
    assert main(["review", str(out), "--set", "zed:essay=1"]) == 2
    assert "'zed' is not in" in capsys.readouterr().err
    (out / "manual.yaml").write_text(yaml.safe_dump({"ada": {"essay": {"points": "lots"}}}))
    with pytest.raises(BadConfig, match=r"manual.yaml: ada.essay.points"):
        load_entered(out / "manual.yaml", {"essay": 4.0})


def test_list_changes_nothing(tmp_path: Path, capsys) -> None:
    out = _grade(tmp_path)
    before = (out / "grades.csv").read_text()
    assert main(["review", str(out), "--list"]) == 0
    assert "2 answer(s) pending" in capsys.readouterr().out
    assert (out / "grades.csv").read_text() == before and not (out / "manual.yaml").exists()


def test_outputs_get_the_mode_of_any_new_file(tmp_path: Path) -> None:
    """grades.csv, feedback and every report written through write_text: readable by the group the umask allows."""
    import os
    import stat

    from mlinfra.base.output import write_text

    mask = os.umask(0o027)
    try:
        write_text(tmp_path / "report.md", "x")
        out = _grade(tmp_path)
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "report.md").stat().st_mode) == 0o640
    for path in (out / "grades.csv", out / "summary.json", out / "feedback", out / "feedback" / "ada.html",
                 out / "answers" / "ada.json"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o750 if path.is_dir() else 0o640), path


def test_the_reason_names_every_lost_point_once(tmp_path: Path) -> None:
    from autograder.grading.outputs import reason

    died = Outcome("ada", [Check("t1", "not run", 0, 1, "the kernel died"), Check("t2", "not run", 0, 1,
                                                                                  "the kernel died")],
                   notes=["the kernel died"], status="kernel died")
    assert reason(died) == "the kernel died"
    lied = Outcome("bob", [Check("t1", "failed", 0, 1, "not scored: lies"), Check("t2", "failed", 0, 1, "not scored: lies"),
                           Check("t3", "error", 0, 2, "NameError: x\nTraceback"), Check("t4", "failed", 0, 1)])
    assert reason(lied) == "t1, t2: not scored: lies; t3: NameError: x; t4: failed"
