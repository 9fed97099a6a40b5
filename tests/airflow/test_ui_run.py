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
    command finds that run, saves the record, and the deploy check accepts it. About a minute, 2 GB while it runs."""
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
        files = tmp_path / "submitted"
        files.mkdir()
        (files / "dag.py").write_text(QUICK_DAG)
        (files / UI_RUN_FILE).write_text(saved.read_text())
        [check] = airflow_ui_run(None, files, tmp_path)
        assert check.status == "passed" and check.points == 1, check.message
        (files / "dag.py").write_text(QUICK_DAG + "\n# edited after the run\n")
        [check] = airflow_ui_run(None, files, tmp_path)
        assert check.status == "failed" and "different dag.py" in check.message
    finally:
        airflow_local.stop(local)
