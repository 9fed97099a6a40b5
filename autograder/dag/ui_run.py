"""`autograder dag --verify-ui-run`: find, through Airflow's REST API (/api/v2), the run a learner started in the UI.

It logs in to the course's Airflow (what `make airflow` starts: 127.0.0.1:8080, the simple auth manager's admin
user, whose password Airflow writes to $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated), takes the
latest successful run of the DAG that was triggered by hand (run_type "manual": the UI's trigger button), reads its
task states and the DAG source Airflow stored for the version that ran, and checks them against the DAG file.
With --save it writes that run record. This is the learner's self-check and is not graded: a record made on the
learner's machine can be written by hand, so grading triggers the DAG in a private Airflow of its own and reads the
run from Airflow's database (autograder.deploy:airflow_run; docs/deploy-checks.md).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from mlinfra.base.runner import Done

DEFAULT_URL = "http://127.0.0.1:8080"


def _password(user: str = "admin") -> str:
    from mlinfra.airflow_local import resolve

    local = resolve()
    try:
        return str(json.loads(local.password_file.read_text())[user])
    except (OSError, ValueError, KeyError):
        raise UsageError(f"no password for {user} in {local.password_file}: start Airflow with `make airflow` "
                         "(it writes that file on first start), then retry") from None


def fetch_run_record(url: str, dag_id: str, password: str, user: str = "admin") -> dict[str, Any]:
    """The latest successful hand-triggered run of dag_id, as a record (UsageError naming what is missing)."""
    import httpx

    base = url.rstrip("/")
    try:
        with httpx.Client(base_url=base, timeout=20) as client:
            login = client.post("/auth/token", json={"username": user, "password": password})
            if login.status_code not in (200, 201):
                raise UsageError(f"Airflow at {base} refused the login as {user} (HTTP {login.status_code}): is "
                                 "this the course's Airflow (`make airflow`)?")
            client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            api = f"/api/v2/dags/{dag_id}"
            runs = client.get(f"{api}/dagRuns", params={"state": "success", "run_type": "manual",
                                                         "order_by": "-end_date", "limit": 1})
            if runs.status_code == 404:
                raise UsageError(f"Airflow at {base} has no DAG {dag_id}: is the lab folder its DAGs folder "
                                 "(`make airflow` uses your workspace copy), and does dag.py import?")
            runs.raise_for_status()
            found = runs.json().get("dag_runs", [])
            if not found:
                raise UsageError(f"Airflow at {base} has no successful run of {dag_id} triggered by hand: unpause it "
                                 "and press the trigger button in the UI, wait until every task is green, then retry")
            run = found[0]
            tis = client.get(f"{api}/dagRuns/{run['dag_run_id']}/taskInstances", params={"limit": 100})
            tis.raise_for_status()
            versions = [v.get("version_number") for v in run.get("dag_versions") or [] if v.get("version_number")]
            params = {"version_number": versions[-1]} if versions else {}
            source = client.get(f"/api/v2/dagSources/{dag_id}", params=params, headers={"Accept": "application/json"})
            source.raise_for_status()
    except httpx.TransportError as exc:
        raise UsageError(f"no Airflow answers at {base} ({type(exc).__name__}): start it with `make airflow`, then "
                         "retry") from None
    except httpx.HTTPStatusError as exc:
        raise UsageError(f"Airflow at {base} answered {exc.response.status_code} to {exc.request.url.path}: "
                         "is it the course's Airflow 3 (`make airflow`)?") from None
    from autograder.deploy import source_digest

    return {
        "dag_id": dag_id,
        "dag_run_id": run["dag_run_id"],
        "run_type": run.get("run_type"),
        "state": run.get("state"),
        "triggered_by": run.get("triggered_by"),
        "logical_date": run.get("logical_date"),
        "start_date": run.get("start_date"),
        "end_date": run.get("end_date"),
        "dag_version": params.get("version_number"),
        "tasks": {ti["task_id"]: ti.get("state") for ti in tis.json().get("task_instances", [])},
        "dag_source_sha256": source_digest((source.json().get("content") or "").encode()),
        "airflow": base,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def verify_ui_run(args: argparse.Namespace) -> Done:
    from autograder.deploy import ui_run_problems
    from mlinfra.base.output import write_text

    dag_file = args.path or Path("dag.py")
    if not dag_file.is_file():
        raise UsageError(f"{dag_file}: no such file; run this in the lab folder, or give the DAG file's path")
    dag_id = args.dag_id or "course_pipeline"
    record = fetch_run_record(args.url or DEFAULT_URL, dag_id, _password())
    problems = ui_run_problems(record, dag_file.read_bytes(), dag_id)
    print(f"latest successful run of {dag_id} triggered by hand: {record['dag_run_id']} "
          f"(ended {record['end_date']})")
    for task, state in record["tasks"].items():
        print(f"  {task:20} {state}")
    for problem in problems:
        print(f"problem: {problem}")
    if args.save:
        write_text(args.save, json.dumps(record, indent=2) + "\n")
        print(f"saved the run record to {args.save} (for you: grading runs your DAG in an Airflow of its own)")
    if not problems:
        print(f"verified: that run is of {dag_file} and every task succeeded")
    return Done(0 if not problems else 1, {"record": record, "problems": problems, "passed": not problems})
