"""The start page's progress view reflects what the learner really did (records written by autograder.progress)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder import progress, startpage


@pytest.fixture
def learner(tmp_path: Path) -> Path:
    """A workbook root whose learner passed lab01, fell short on lab02, opened lab03, and passed quiz lesson01."""
    progress.record(tmp_path, "lab", "lab01-environment", passed=True, score=10, max_score=10)
    progress.record(tmp_path, "lab", "lab02-ml-lifecycle", passed=False, score=3, max_score=8)
    progress.record(tmp_path, "quiz", "lesson01", passed=True, score=4, max_score=5)
    for lab in ("lab01-environment", "lab02-ml-lifecycle", "lab03-frameworks"):
        (tmp_path / "workspace" / lab).mkdir(parents=True)
    return tmp_path


def _by_name(rows: list[startpage.ProgressRow]) -> dict[str, startpage.ProgressRow]:
    return {row.name: row for row in rows}


def test_rows_reflect_records(learner: Path) -> None:
    rows = _by_name(startpage.progress_rows(learner))
    assert rows["lab01-environment"].status == "passed"
    assert rows["lab01-environment"].score == "10/10"
    assert rows["lab02-ml-lifecycle"].status == "not yet"
    assert rows["lab02-ml-lifecycle"].score == "3/8"
    assert rows["lab03-frameworks"].status == "not started"
    assert rows["lab03-frameworks"].copy == "workspace/lab03-frameworks/"
    assert rows["lab04-cloud"].copy == ""
    assert rows["lesson01"].status == "passed"
    assert rows["lesson02"].status == "not started"
    assert rows["phase1"].kind == "exam" and rows["phase1"].status == "not taken" and rows["phase1"].score == ""
    assert rows["practical"].status == "not started"


def test_every_course_item_listed_once_in_course_order(learner: Path) -> None:
    rows = startpage.progress_rows(learner)
    names = [r.name for r in rows]
    assert names == startpage.labs() + startpage.self_check_quizzes() + startpage.exams() + ["practical"]
    assert startpage.exams() == ["module01", "phase1"]
    assert len(startpage.labs()) == 10 and len(startpage.quizzes()) == 15
    assert startpage.quizzes() == [*(f"lesson{n:02d}" for n in range(1, 9)), "module01",
                                   *(f"lesson{n:02d}" for n in range(9, 14)), "phase1"]


def test_summary_and_next_step_point_at_the_failing_lab(learner: Path) -> None:
    rows = startpage.progress_rows(learner)
    assert startpage.summary(rows) == {"lab": (1, 10), "quiz": (1, 13), "exam": (0, 2), "practical": (0, 1)}
    assert "`.venv/bin/autograder check lab02-ml-lifecycle`" in startpage.next_step(rows)


def test_text_and_html_views(learner: Path) -> None:
    text = startpage.progress_text(learner)
    assert "labs passed 1/10, quizzes passed 1/13, exams taken 0/2, practical not assessed yet" in text
    line = next(x for x in text.splitlines() if "lab02-ml-lifecycle" in x)
    assert "not yet" in line and "3/8" in line
    page = startpage.progress_html(learner)
    assert page.count("<tr>") == 1 + 26
    assert "lab02-ml-lifecycle" in page


def test_latest_record_wins_and_unknown_items_are_kept(learner: Path) -> None:
    progress.record(learner, "lab", "lab02-ml-lifecycle", passed=True, score=8, max_score=8)
    progress.record(learner, "lab", "lab99-extra", passed=False, score=0, max_score=1)
    rows = _by_name(startpage.progress_rows(learner))
    assert rows["lab02-ml-lifecycle"].status == "passed"
    assert rows["lab99-extra"].status == "not yet"


def test_empty_workspace_and_broken_record(tmp_path: Path) -> None:
    folder = progress.progress_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "lab-lab01-environment.json").write_text("{not json")
    rows = startpage.progress_rows(tmp_path)
    assert {r.status for r in rows} == {"not started", "not taken"}
    assert "Start lab01-environment" in startpage.next_step(rows)


def test_all_passed_suggests_the_assessment(tmp_path: Path) -> None:
    for lab in startpage.labs():
        progress.record(tmp_path, "lab", lab, passed=True, score=1, max_score=1)
    for quiz in startpage.quizzes():
        progress.record(tmp_path, "quiz", quiz, passed=True, score=1, max_score=1)
    assert "assess" in startpage.next_step(startpage.progress_rows(tmp_path))


def test_plot_shows_passed_counts(learner: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fig = startpage.plot_progress(learner)
    widths = sorted(round(p.get_width()) for p in fig.axes[0].patches)
    assert widths == [0, 0, 1, 1, 1, 2, 10, 13]  # done and total: labs 1/10, quizzes 1/13, exams 0/2, practical 0/1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_course_map_lists_lessons_with_times() -> None:
    text = startpage.course_map_text()
    assert "2.3" in text and "phase1-lab2-pytorch-training" in text
    for lesson in startpage.COURSE:
        assert (Path(__file__).parents[2] / "modules" / lesson.notebook).is_file(), lesson.notebook


def test_progress_records_are_plain_json(learner: Path) -> None:
    # the start page relies on progress.read_all's format; pin the field names it uses
    data = json.loads((progress.progress_dir(learner) / "lab-lab01-environment.json").read_text())
    assert {"kind", "name", "passed", "score", "max_score", "when"} <= set(data)


def test_prerequisites_reports_a_failing_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra import envcheck

    facts = envcheck.MachineFacts(
        python_version=(3, 8, 10), prefix="/usr", base_prefix="/usr", cpu_count=2, memory_gb=16.0,
        disk_free_gb=50.0, tools={"git": "git version 2.39", "docker": None, "aws": None, "gcloud": None, "az": None},
        docker_engine=False, packages={name: "1.0" for name in envcheck.REQUIRED_PACKAGES}, gpu=None,
    )
    monkeypatch.setattr(envcheck, "probe", lambda *args, **kwargs: facts)
    result = startpage.prerequisites(tmp_path)
    assert not result.ok
    python_line = next(line for line in result.output.splitlines() if " python " in f" {line} ")
    assert python_line.startswith("FAIL") and "3.8.10" in python_line
    assert any(line.startswith("FAIL") and "virtualenv" in line for line in result.output.splitlines())


def test_prerequisites_falls_back_to_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, stdout="FAIL  python  3.8\n", stderr="")

    monkeypatch.setitem(sys.modules, "mlinfra.envcheck", None)  # the course library cannot be imported
    monkeypatch.setattr(startpage.subprocess, "run", fake_run)
    result = startpage.prerequisites(tmp_path)
    assert calls and calls[0][-2:] == ["autograder", "doctor"]
    assert not result.ok and "FAIL  python" in result.output


def test_exams_count_as_taken_and_the_practical_shows_its_last_score(learner: Path) -> None:
    progress.record_exam(learner, "module01")
    record = learner / "workspace" / "quizzes" / "phase1" / "ada.yaml"  # where `quiz take --exam` writes it
    record.parent.mkdir(parents=True)
    record.write_text("quiz: phase1\n")
    progress.record_practical(learner, passed=False, score=80, max_score=100)
    rows = _by_name(startpage.progress_rows(learner))
    assert (rows["module01"].status, rows["module01"].score) == ("taken", ""), "taken, never a score"
    assert rows["phase1"].status == "taken", "an exam record in the workspace counts"
    assert (rows["practical"].status, rows["practical"].score) == ("not yet", "80/100")
    text = startpage.progress_text(learner)
    assert "exams taken 2/2" in text and "practical 80/100 (not yet" in text
    progress.record_practical(learner, passed=True, score=100, max_score=100)
    assert _by_name(startpage.progress_rows(learner))["practical"].score == "100/100", "the last score wins"


def test_next_steps_after_quizzes_are_the_exams_then_the_practical(tmp_path: Path) -> None:
    for lab in startpage.labs():
        progress.record(tmp_path, "lab", lab, passed=True, score=1, max_score=1)
    for quiz in startpage.self_check_quizzes():
        progress.record(tmp_path, "quiz", quiz, passed=True, score=1, max_score=1)
    step = startpage.next_step(startpage.progress_rows(tmp_path))
    assert "`.venv/bin/autograder quiz take module01 --exam --ticket YOUR_TICKET.yaml`" in step
    for exam in startpage.exams():
        progress.record_exam(tmp_path, exam)
    assert "`.venv/bin/autograder assess --app workspace/lab07-api/app.py:app`" in \
        startpage.next_step(startpage.progress_rows(tmp_path))
    progress.record_practical(tmp_path, passed=True, score=100, max_score=100)
    assert "submit practical" in startpage.next_step(startpage.progress_rows(tmp_path))
