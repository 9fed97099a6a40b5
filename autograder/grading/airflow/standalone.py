"""`--executor standalone`: the grading run triggered on the instructor's grading Airflow for the same home
(`python -m mlinfra.airflow_local start --grading`: the grading DAG only, never a learner's), through its REST API: log in with the admin password it generated, wait for its DAG
processor to load the grading bundle, unpause the DAG, trigger a run with the batch's conf, follow the mapped
grade tasks into a bar, and read the merge task's result from XCom. Its scheduler's LocalExecutor grades several
students at once and the instructor watches the run in the UI. `api_request` is the one small REST client.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from autograder.grading.airflow.environment import DAG_ID, Deployment
from mlinfra.base.errors import UsageError
from mlinfra.base.wait import NotReady, wait_until


def api_request(url: str, method: str = "GET", body: Any = None, token: str = "", timeout: float = 30) -> Any:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200]
        raise UsageError(f"Airflow's API answered {exc.code} to {method} {url}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"Airflow's API at {url} did not answer ({exc}); is `make airflow` running?") from None
    return json.loads(raw) if raw else None


def run_on_standalone(dep: Deployment, conf: dict[str, Any], *, progress: bool, timeout: float,
                       port: int = 0) -> dict[str, Any]:
    """Trigger the DAG on the Airflow `make airflow` runs for this home (its scheduler and LocalExecutor run the
    tasks, several at once; the run shows in its UI) and wait for it through the REST API."""
    from mlinfra import airflow_local

    local = airflow_local.resolve(home=dep.home, grading=True,
                                  port=port or int(os.environ.get("AUTOGRADER_AIRFLOW_PORT") or 0) or None)
    start = ".venv/bin/python -m mlinfra.airflow_local start --grading" + \
        ("" if dep.home == airflow_local.grading_home() else f" --home {dep.home}")
    if not airflow_local.running_pid(local) or not airflow_local.healthy(airflow_local.health(local)):
        raise UsageError(f"no healthy grading Airflow runs for {dep.home} at {local.url}: start it with `{start}`, "
                         "or grade with --executor local")
    users = json.loads(local.password_file.read_text()) if local.password_file.is_file() else {}
    if "admin" not in users:
        raise UsageError(f"{local.password_file}: no admin password; restart the grading Airflow with `{start}`")
    login = {"username": "admin", "password": users["admin"]}
    token = api_request(f"{local.url}/auth/token", "POST", login)["access_token"]
    dags = f"{local.url}/api/v2/dags/{DAG_ID}"

    def listed() -> bool:
        try:
            api_request(dags, token=token)
            return True
        except UsageError:
            return False  # not parsed yet

    try:  # the DAG processor looks at the grading bundle every 10 s (mlinfra/airflow_local.py)
        wait_until(listed, timeout=180, interval=2, what=f"Airflow's {DAG_ID}")
    except NotReady:
        raise UsageError(f"Airflow at {local.url} has not loaded {DAG_ID} from {dep.dags} after 180 s: "
                         f"restart it with `{airflow_local.stop_command(local)} && {start}`") from None
    api_request(dags, "PATCH", {"is_paused": False}, token=token)
    run = api_request(f"{dags}/dagRuns", "POST", {"logical_date": None, "conf": conf}, token=token)
    run_id = run["dag_run_id"]
    print(f"airflow: run {run_id} of {DAG_ID}: {local.url}/dags/{DAG_ID}/runs/{run_id}", file=sys.stderr,
          flush=True)
    bar = None
    t0 = time.monotonic()
    state = run.get("state")
    while state not in ("success", "failed"):
        if time.monotonic() - t0 > timeout:
            raise UsageError(f"the grading run {run_id} passed {timeout:.0f} s; see it at {local.url}")
        time.sleep(2)  # polling the run's state: the REST API has no push
        state = api_request(f"{dags}/dagRuns/{run_id}", token=token).get("state")
        tis = api_request(f"{dags}/dagRuns/{run_id}/taskInstances?limit=1000", token=token)["task_instances"]
        grade = [t for t in tis if t["task_id"] == "grade" and t["map_index"] >= 0]
        if progress and grade:
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=len(grade), desc="grading on Airflow", unit="student", file=sys.stderr)
            bar.n = sum(1 for t in grade if t["state"] in ("success", "failed", "upstream_failed", "skipped"))
            bar.refresh()
    if bar is not None:
        bar.close()
    tis = api_request(f"{dags}/dagRuns/{run_id}/taskInstances?limit=1000", token=token)["task_instances"]
    tasks = [{"task_id": t["task_id"], "map_index": t["map_index"], "label": t.get("rendered_map_index"),
              "student": (t.get("rendered_map_index") or "").partition(": ")[0] or None,
              "state": t["state"], "try_number": t["try_number"], "hostname": t.get("hostname"),
              "duration": t.get("duration"), "log": f"{local.url}/dags/{DAG_ID}/runs/{run_id}"} for t in tis]
    merge = None
    try:
        entry = api_request(f"{dags}/dagRuns/{run_id}/taskInstances/merge/xcomEntries/return_value?deserialize=true",
                     token=token)
        merge = entry.get("value")
        if isinstance(merge, str):
            merge = json.loads(merge)
    except UsageError:
        merge = None
    return {"run_id": run_id, "state": state, "tasks": tasks, "merge": merge,
            "seconds": round(time.monotonic() - t0, 2)}

