"""The Airflow lab's deploy check: the run record a learner saves from their own Airflow (`autograder dag
--verify-ui-run --save ui_run.json`), checked on the trusted side against the dag.py they hand in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.deploy import UI_RUN_FILE, airflow_ui_run, source_digest, ui_run_problems
from mlinfra.pipeline import MUST_FOLLOW

ROOT = Path(__file__).resolve().parents[2]
DAG = (ROOT / "solutions" / "phase1-lab1-airflow-dag" / "dag.py").read_bytes()


def record(**changes: object) -> dict:
    good = {
        "dag_id": "course_pipeline",
        "dag_run_id": "manual__2026-12-01T02:00:00+00:00",
        "run_type": "manual",
        "state": "success",
        "start_date": "2026-12-01T02:00:01+00:00",
        "end_date": "2026-12-01T02:01:30+00:00",
        "tasks": {task: "success" for task in MUST_FOLLOW},
        "dag_source_sha256": source_digest(DAG),
    }
    return {**good, **changes}


def submission(tmp_path: Path, rec: object | None, dag: bytes | None = DAG) -> Path:
    folder = tmp_path / "files"
    folder.mkdir(parents=True)
    if dag is not None:
        (folder / "dag.py").write_bytes(dag)
    if rec is not None:
        (folder / UI_RUN_FILE).write_text(rec if isinstance(rec, str) else json.dumps(rec))
    return folder


def test_a_good_record_scores_its_point(tmp_path: Path) -> None:
    [check] = airflow_ui_run(None, submission(tmp_path, record()), tmp_path)
    assert (check.status, check.points, check.max_points) == ("passed", 1.0, 1.0), check


def test_line_endings_do_not_change_the_digest() -> None:
    assert source_digest(DAG) == source_digest(DAG.replace(b"\n", b"\r\n") + b"\n\n")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"dag_id": "my_dag"}, "not course_pipeline"),
        ({"run_type": "scheduled"}, "not by hand in the UI"),
        ({"state": "failed"}, "ended 'failed'"),
        ({"tasks": {t: "success" for t in MUST_FOLLOW if t != "train"}}, "train did not succeed"),
        ({"dag_source_sha256": source_digest(b"a different file")}, "different dag.py"),
    ],
)
def test_each_flaw_loses_the_point_with_its_reason(tmp_path: Path, changes: dict, says: str) -> None:
    [check] = airflow_ui_run(None, submission(tmp_path, record(**changes)), tmp_path)
    assert (check.status, check.points, check.max_points) == ("failed", 0.0, 1.0)
    assert says in check.message, check.message


def test_no_record_says_how_to_make_one(tmp_path: Path) -> None:
    [check] = airflow_ui_run(None, submission(tmp_path, None), tmp_path)
    assert check.status == "failed" and check.points == 0 and check.max_points == 1
    assert "make airflow" in check.message and "--verify-ui-run --save ui_run.json" in check.message


def test_a_broken_record_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    [check] = airflow_ui_run(None, submission(tmp_path, "{not json"), tmp_path)
    assert check.status == "failed" and "not the JSON" in check.message
    [check] = airflow_ui_run(None, submission(tmp_path / "b", "[1, 2]"), tmp_path)
    assert check.status == "failed" and "no run record" in check.message


def test_a_record_without_the_dag_file_fails(tmp_path: Path) -> None:
    assert any("no dag.py" in p for p in ui_run_problems(record(), None))
