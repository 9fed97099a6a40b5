"""`autograder check`: a learner's self-check, run for real in a fresh kernel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autograder.cli import main

ROOT = Path(__file__).resolve().parent.parent
LAB = "lab01-environment"
pytestmark = pytest.mark.slow


@pytest.fixture
def learner_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A course checkout of one's own, so progress records land in a temporary workspace."""
    for item in ("labs", "solutions"):
        shutil.copytree(ROOT / item / LAB, tmp_path / item / LAB)
    for item in ("pyproject.toml", "Makefile"):
        shutil.copy(ROOT / item, tmp_path / item)
    monkeypatch.setenv("WORKBOOK_ROOT", str(tmp_path))
    return tmp_path


def test_reference_passes_and_records_progress(learner_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = learner_root / "solutions" / LAB / f"{LAB}.ipynb"
    before = notebook.read_bytes()
    assert main(["check", LAB, str(notebook), "--json", str(learner_root / "r.json")]) == 0
    result = json.loads((learner_root / "r.json").read_text())
    assert result["status"] == "completed" and result["checks"] and all(c["status"] == "passed" for c in result["checks"])
    assert notebook.read_bytes() == before, "self-check never modifies the learner's notebook"
    record = json.loads((learner_root / "workspace" / ".progress" / f"lab-{LAB}.json").read_text())
    assert record["passed"] is True and record["score"] == record["max_score"] == 10


def test_blank_lab_fails_and_says_what_next(learner_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = learner_root / "labs" / LAB / f"{LAB}.ipynb"
    assert main(["check", LAB, str(notebook)]) == 1
    out = capsys.readouterr().out
    assert "0/10 points" in out
    assert "next: fix test-venv (cell" in out and f"autograder check {LAB}" in out


def test_unreadable_notebook_is_one_line(learner_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = learner_root / "broken.ipynb"
    broken.write_text("{oops")
    assert main(["check", LAB, str(broken)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert any("not a readable notebook" in line and "broken.ipynb" in line for line in out)


def test_json_to_stdout_is_only_json(learner_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = learner_root / "labs" / LAB / f"{LAB}.ipynb"
    assert main(["check", LAB, str(notebook), "--json", "-"]) == 1
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["score"] == 0 and result["max_score"] == 10


def test_unwritable_json_path_is_one_line(learner_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notebook = learner_root / "solutions" / LAB / f"{LAB}.ipynb"
    (learner_root / "afile").write_text("")
    assert main(["check", LAB, str(notebook), "--json", str(learner_root / "afile" / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "afile" in err[0]
