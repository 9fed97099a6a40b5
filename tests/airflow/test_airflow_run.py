"""Lab 1.1's deploy check (autograder.deploy:airflow_run): the learner's DAG run by a real Airflow the grader starts
per student inside the grading sandbox, triggered through the REST API with a nonce, and scored from Airflow's own
metadata and the date partition the run wrote, both read as hostile files. The verdict's parts are tested on
hand-made rows and folders (fast); one slow test grades the reference and two samples for real, two at once."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from autograder.deploy import airflow_run
from autograder.deploy.airflow_check import NAME
from autograder.deploy.airflow_verdict import (
    Observed,
    output_problems,
    read_bounded,
    read_metadata,
    run_problems,
)

ROOT = Path(__file__).resolve().parents[2]
LAB = "phase1-lab1-airflow-dag"
T0 = datetime(2026, 12, 6, 5, 0, 0, tzinfo=timezone.utc)


def seen(**changes: Any) -> Observed:
    base = {"run_id": "grader__abc", "logical_date": "2025-03-07", "triggered_at": T0,
            "finished_at": T0 + timedelta(seconds=60), "api_state": "success"}
    return Observed(**{**base, **changes})


def stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S.%f")


def good_rows() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = {"run_id": "grader__abc", "state": "success", "run_type": "manual", "logical_date": "2025-03-07 00:00:00",
           "start_date": stamp(1), "end_date": stamp(50)}
    order = ["ingest", "validate", "engineer_features", "train", "evaluate"]
    tis = [{"task_id": t, "map_index": -1, "state": "success", "start_date": stamp(2 + 8 * i),
            "end_date": stamp(8 + 8 * i), "try_number": 1} for i, t in enumerate(order)]
    return run, tis


def test_the_grader_s_own_run_in_order_inside_its_window_has_no_problem() -> None:
    run, tis = good_rows()
    assert run_problems(seen(), run, tis) == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda run, tis: run.update(state="failed"), "ended 'failed'"),
        (lambda run, tis: run.update(logical_date="2025-03-08 00:00:00"), "not the 2025-03-07 the grader chose"),
        (lambda run, tis: run.update(run_type="scheduled"), "not the manual run"),
        (lambda run, tis: run.update(end_date=stamp(600)), "outside the time the grader watched"),
        (lambda run, tis: tis[3].update(state="up_for_retry"), "train ended 'up_for_retry'"),
        (lambda run, tis: tis.pop(1), "no task instance for validate"),
        (lambda run, tis: tis[4].update(start_date=None, end_date=None), "evaluate's start/end times"),
        (lambda run, tis: tis[3].update(start_date=stamp(9)), "train started before validate had ended"),
    ],
)
def test_each_flaw_in_the_metadata_is_named(change: Any, says: str) -> None:
    run, tis = good_rows()
    change(run, tis)
    problems = run_problems(seen(), run, tis)
    assert problems and any(says in p for p in problems), problems


def test_metadata_that_disagrees_with_what_the_api_said_is_refused() -> None:
    run, tis = good_rows()
    problems = run_problems(seen(api_state="running"), run, tis)
    assert any("Airflow's API told the grader 'running'" in p for p in problems), problems
    problems = run_problems(seen(api_tasks={"ingest": "success", "train": "failed"}), run, tis)
    assert problems == [("the metadata's state of train differs from what Airflow's API told the grader during "
                         "the run")], problems


def _db(path: Path, *, view: bool = False) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE dag_run (dag_id, run_id, state, run_type, logical_date, start_date, end_date, "
               "triggered_by)")
    if view:
        db.execute("CREATE VIEW task_instance AS SELECT 'course_pipeline' AS dag_id, 'grader__abc' AS run_id, "
                   "'ingest' AS task_id, -1 AS map_index, 'success' AS state, NULL AS start_date, NULL AS end_date, "
                   "1 AS try_number")
    else:
        db.execute("CREATE TABLE task_instance (dag_id, run_id, task_id, map_index, state, start_date, end_date, "
                   "try_number)")
    db.execute("INSERT INTO dag_run VALUES ('course_pipeline', 'grader__abc', 'success', 'manual', "
               "'2025-03-07 00:00:00', ?, ?, 'rest_api')", (stamp(1), stamp(50)))
    db.commit()
    db.close()


def test_metadata_is_read_from_a_private_copy_and_only_from_real_tables(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _db(home / "airflow.db")
    run, tis, why = read_metadata(home, tmp_path / "private", "course_pipeline", "grader__abc")
    assert why == "" and run is not None and run["state"] == "success" and tis == []
    assert (tmp_path / "private" / "airflow.db").is_file()
    viewed = tmp_path / "viewed"
    viewed.mkdir()
    _db(viewed / "airflow.db", view=True)
    assert read_metadata(viewed, tmp_path / "p2", "course_pipeline", "grader__abc")[2].endswith(
        "does not hold its dag_run and task_instance tables")


def test_a_planted_link_or_fifo_is_not_followed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("the grader's file")
    (home / "airflow.db").symlink_to(secret)
    assert read_bounded(home, "airflow.db", 1 << 20) is None
    assert "missing, a link" in read_metadata(home, tmp_path / "private", "course_pipeline", "x")[2]
    (home / "data").symlink_to(tmp_path)
    assert read_bounded(home, "data/secret.txt", 1 << 20) is None
    os.mkfifo(home / "fifo")
    assert read_bounded(home, "fifo", 1 << 20) is None  # never blocks on a FIFO
    with open(home / "big", "wb") as fh:
        fh.truncate(2 << 20)
    assert read_bounded(home, "big", 1 << 20) is None


def test_outputs_are_checked_against_what_the_grader_recomputes(tmp_path: Path) -> None:
    from mlinfra import pipeline

    ds = "2025-03-07"
    data = tmp_path / "dags" / "data"
    pipeline.ingest(data, ds)
    pipeline.validate(data, ds)
    pipeline.engineer_features(data, ds)
    (data / "models" / ds / "run-1").mkdir(parents=True)
    (data / "reports" / ds).mkdir(parents=True)
    (data / "reports" / ds / "evaluation.json").write_text(json.dumps({"ds": ds, "passed": True}))
    assert output_problems(tmp_path, ds) == []
    assert "wrote no raw/2025-03-08/" in output_problems(tmp_path, "2025-03-08")[0]
    linked = tmp_path / "linked"
    (linked / "dags").mkdir(parents=True)
    (linked / "dags" / "data").symlink_to(data)  # a link on the way is not followed, even to the right files
    assert "wrote no raw/2025-03-07/" in output_problems(linked, ds)[0]
    (data / "raw" / ds / "labels.npy").write_bytes(b"not the digits")
    assert any("raw/2025-03-07/labels.npy is not what pipeline.ingest writes" in p
               for p in output_problems(tmp_path, ds))


def test_hidden_airflow_skips_with_the_reason_and_no_dag_fails(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOGRADER_HIDE_ENGINES", "java,airflow")
    [check] = airflow_run(None, tmp_path, tmp_path / "work")
    assert (check.name, check.status, check.points, check.max_points) == (NAME, "skipped", 0.0, 1.0)
    assert "AUTOGRADER_HIDE_ENGINES" in check.message
    monkeypatch.setenv("AUTOGRADER_HIDE_ENGINES", "")
    [check] = airflow_run(None, tmp_path, tmp_path / "work")
    assert (check.status, check.points) == ("failed", 0.0) and "no dag.py" in check.message


@pytest.mark.slow
def test_real_runs_score_only_the_real_work(tmp_path: Path, monkeypatch) -> None:
    """The reference and two graded samples, each in its own real Airflow, two students at once (as two grading
    workers do) while a service holds the machine's 127.0.0.1:8080: the reference scores the point; a DAG whose
    task fails loses it whatever ui_run.json it hands in; a forger that writes Airflow's metadata database loses
    it. The service on 8080 gets no connection. About 2 minutes here beside other jobs (one Airflow ~50 s idle)."""
    import socket

    from graded_samples import REFERENCE, build_submission, lab_source, load_samples

    monkeypatch.setenv("AUTOGRADER_HIDE_ENGINES", "")
    source = lab_source(LAB)
    # the forger is caught by whichever cross-check it trips first: times its forged rows lack, or the partition
    wanted = {"task-fails-with-a-written-record": ("ingest ended 'up_for_retry'",),
              "forges-airflow-metadata": ("outside", "is not what pipeline", "wrote no")}
    students = {REFERENCE: None, **{s.name: s for s in load_samples(LAB) if s.name in wanted}}
    assert set(students) == {REFERENCE, *wanted}
    for name, sample in students.items():
        build_submission(sample, source, tmp_path / "subs" / name)
    results: dict[str, Any] = {}

    def grade(names: list[str]) -> None:
        for name in names:
            results[name] = airflow_run(source, tmp_path / "subs" / name, tmp_path / "work" / name / "deploy")

    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 8080))
        busy.listen()
        busy.settimeout(0)
    except OSError:
        busy.close()
        busy = None  # something already serves 8080: it must not be used either, which the verdicts show
    workers = [threading.Thread(target=grade, args=([REFERENCE],)),
               threading.Thread(target=grade, args=(list(wanted),))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=900)
    if busy is not None:
        with pytest.raises(BlockingIOError):
            busy.accept()  # nobody connected to the machine's 8080
        busy.close()
    [ref] = results[REFERENCE]
    assert (ref.name, ref.status, ref.points, ref.max_points) == (NAME, "passed", 1.0, 1.0), ref.message
    for name, says in wanted.items():
        [check] = results[name]
        assert (check.status, check.points, check.max_points) == ("failed", 0.0, 1.0), (name, check.message)
        assert any(s in check.message for s in says), (name, check.message)
    assert not list((tmp_path / "work").glob("*/deploy/airflow/airflow.db")), "each student's Airflow home is removed"
