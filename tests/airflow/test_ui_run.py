"""The learner's self-check of a run they started in their own Airflow's UI (`autograder dag --verify-ui-run`): the
record it finds is checked against their dag.py. Not graded (a record can be written by hand): grading runs the DAG
in an Airflow of its own (tests/airflow/test_airflow_check.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.deploy import source_digest, ui_run_problems
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


def test_a_good_record_has_no_problem() -> None:
    assert ui_run_problems(record(), DAG) == []


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
def test_each_flaw_is_named(changes: dict, says: str) -> None:
    problems = ui_run_problems(record(**changes), DAG)
    assert problems and says in problems[0], problems


def test_a_record_that_is_not_a_record_says_how_to_save_one() -> None:
    assert "--verify-ui-run --save ui_run.json" in ui_run_problems([1, 2], DAG)[0]


def test_a_record_without_the_dag_file_fails() -> None:
    assert any("no dag.py" in p for p in ui_run_problems(record(), None))


QUICK_DAG = '''
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="course_pipeline", schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
     catchup=False, default_args={"retries": 1})
def course_pipeline():
    @task
    def ingest():
        return "raw"

    @task
    def validate(raw):
        return {"ok": True}

    @task
    def engineer_features(raw):
        return {"features": 1}

    @task
    def train(features, checked):
        return {"checkpoint": "model.pt"}

    @task
    def evaluate(trained):
        return {"accuracy": 1.0}

    raw = ingest()
    evaluate(train(engineer_features(raw), validate(raw)))


course_pipeline()
'''


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("os").environ.get("AIRFLOW_STANDALONE_TEST") != "1",
    reason="starts a whole Airflow (about 2 minutes on a busy machine, 2 GB): AIRFLOW_STANDALONE_TEST=1",
)
def test_verify_ui_run_against_a_real_airflow(tmp_path: Path) -> None:
    """A real `airflow standalone` (the course's launcher, its own home and port), a DAG with the lab's five task
    ids doing nothing (seconds), triggered through the REST API exactly as the UI's button does; then the verify
    command finds that run, saves the record, and the record matches that dag.py only. About a minute, 2 GB while it runs."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    from mlinfra import airflow_local

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "dag.py").write_text(QUICK_DAG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    local = airflow_local.resolve(home=tmp_path / "home", dags=dags, port=port)
    if any(airflow_local.port_busy("127.0.0.1", p) for p in airflow_local.LOG_SERVER_PORTS):
        pytest.skip("Airflow's log-server ports 8793/8794 are taken (another Airflow is running)")
    env = {"AIRFLOW_HOME": str(local.home)}
    try:
        assert airflow_local.start(local, wait=300) == 0, airflow_local.tail(local.log)
        password = json.loads(local.password_file.read_text())["admin"]
        with httpx.Client(base_url=local.url, timeout=30) as client:
            token = client.post("/auth/token", json={"username": "admin", "password": password}).json()
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            api = "/api/v2/dags/course_pipeline"
            deadline = time.monotonic() + 120
            while client.get(api).status_code != 200:  # the DAG processor has not parsed the file yet
                assert time.monotonic() < deadline, "Airflow never listed course_pipeline"
                time.sleep(2)
            assert client.patch(api, json={"is_paused": False}).status_code == 200
            run = client.post(f"{api}/dagRuns", json={"logical_date": None})
            assert run.status_code == 200, run.text
            run_id = run.json()["dag_run_id"]
            while (state := client.get(f"{api}/dagRuns/{run_id}").json()["state"]) not in ("success", "failed"):
                assert time.monotonic() < deadline + 180, f"the run is still {state}"
                time.sleep(2)
            assert state == "success"
        saved = tmp_path / "ui_run.json"
        proc = subprocess.run([sys.executable, "-m", "autograder", "dag", "--verify-ui-run", str(dags / "dag.py"),
                               "--url", local.url, "--save", str(saved), "--json", "-"],
                              capture_output=True, text=True, env={**os.environ, **env}, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["passed"] and result["record"]["dag_run_id"] == run_id
        assert result["record"]["run_type"] == "manual" and set(result["record"]["tasks"]) == set(MUST_FOLLOW)
        assert ui_run_problems(result["record"], QUICK_DAG.encode()) == []
        edited = ui_run_problems(result["record"], (QUICK_DAG + "\n# edited after the run\n").encode())
        assert edited and "different dag.py" in edited[0]
    finally:
        airflow_local.stop(local)
