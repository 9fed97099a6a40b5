"""The engine of `autograder grade --engine airflow`: `grade_on_airflow` installs the DAG, writes the run's spec and
either triggers the run on the Airflow `make airflow` runs (`--executor standalone`, standalone.py) or starts the
child process (`python -m autograder.grading.airflow _run`, child.py) that runs `dag.test()` with the deployment's
Airflow settings in its environment, starting Celery workers here first when asked. It turns the child's progress
lines into a bar (or a line a student off a terminal), stops everything it started on the way out (SIGTERM unwinds
like Ctrl-C), and makes the merge task's result, which comes back through XCom, into the class's Outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from autograder.grading.airflow.environment import (
    DAG_ID,
    Deployment,
    airflow_env,
    deployment,
    install_dag,
    new_sqlite_database,
)
from autograder.grading.airflow.processes import log_tail, start_celery_worker
from autograder.grading.airflow.standalone import run_on_standalone
from mlinfra import airflow_home
from mlinfra.base.errors import UsageError
from mlinfra.base.procs import stop_group
from mlinfra.base.results import Outcome


def grade_on_airflow(lab_name: str, submissions_dir: Path, out_dir: Path, *, executor: str = "local",
                     airflow_home: Path | None = None, airflow_db: str | None = None, broker: str | None = None,
                     queue: str | None = None, celery_workers: int = 0, sandbox: str = "auto",
                     reveal_hidden: bool = False, keep_work: bool = False, progress: bool = False,
                     timeout: float = 6 * 3600, queued_timeout: float = 600, work_dir: Path | None = None,
                     api_port: int = 0, jwt_secret: str | None = None, **_ignored: Any) -> Outcome:
    """Grade a class through Airflow and return the class's Outcome (the merge task's, one part per student).

    executor "local": dag.test() runs every task in one process, in the Airflow home's own database.
    executor "celery": tasks go to Celery workers on `queue`; `celery_workers` > 0 starts that many here (each a
    separate process, stopped by its process group at the end), 0 uses workers already running elsewhere: give
    them the same api_port and jwt_secret (or set AUTOGRADER_AIRFLOW_API_PORT and AUTOGRADER_AIRFLOW_SECRET).
    """
    submissions_dir = Path(submissions_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if not submissions_dir.is_dir():
        raise UsageError(f"{submissions_dir}: not a folder; give the folder holding one folder or .zip per student")
    dep = deployment(executor, home=airflow_home, database=airflow_db, broker=broker, queue=queue,
                     api_port=api_port, jwt_secret=jwt_secret)
    try:
        dep.home.mkdir(parents=True, exist_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{exc.filename}: cannot write there ({exc.strerror}); choose another folder") from exc
    install_dag(dep)
    run_dir = dep.home / "grading-runs" / f"{lab_name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = {"lab": lab_name, "submissions": str(submissions_dir),
            "work_dir": str((work_dir or out_dir / "work").resolve()), "out_dir": str(out_dir),
            "sandbox": sandbox, "reveal_hidden": bool(reveal_hidden), "keep_work": bool(keep_work)}
    spec = {"deployment": dep.to_dict(), "conf": conf, "run_dir": str(run_dir), "queued_timeout": queued_timeout}
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    workers: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    if executor == "standalone":
        result = run_on_standalone(dep, conf, progress=progress, timeout=timeout)
        return _outcome(result, dep, run_dir, round(time.monotonic() - started, 2))
    new_sqlite_database(dep)  # a new SQLite home: a copy of the migrated template, not 5-10 s of migrating
    previous = _exit_on_sigterm()
    try:
        for i in range(celery_workers if executor == "celery" else 0):
            log = run_dir / f"celery-worker-{i + 1}.log"
            workers.append(start_celery_worker(dep, f"grader{i + 1}", log))
        result = _run_child(dep, run_dir, progress=progress, timeout=timeout)
    finally:
        for proc in workers:
            stop_group(proc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return _outcome(result, dep, run_dir, round(time.monotonic() - started, 2))


def _exit_on_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C (so `finally` stops what was started); returns the handler it replaced, or
    None off the main thread (where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


def _run_child(dep: Deployment, run_dir: Path, *, progress: bool, timeout: float) -> dict[str, Any]:
    log = run_dir / "airflow.log"
    result_file = run_dir / "result.json"
    shown = _Progress(progress)
    try:
        # its group is stopped at the end: the child (which stops its API server on SIGTERM) and any task process
        code = airflow_home.run_child(["-m", "autograder.grading.airflow", "_run", str(run_dir / "spec.json"),
                                       str(result_file)], env=airflow_env(dep), cwd=run_dir, log=log,
                                      timeout=timeout, on_line=shown)
    finally:
        shown.close()
    if code is None:
        raise UsageError(f"the Airflow grading run passed {timeout:.0f} s and was stopped; its log: {log}")
    if not result_file.is_file():
        raise UsageError(f"the Airflow grading run stopped without a result (exit {code}): "
                         f"{log_tail(log)}; full log: {log}")
    return json.loads(result_file.read_text())


class _Progress:
    """The child's lines: `total N`, `done K` (a bar with ETA on a terminal, else a line each time a student is
    done, for logs), anything else goes to stderr as it is."""

    def __init__(self, bar_wanted: bool) -> None:
        self.bar_wanted = bar_wanted
        self.bar: Any = None
        self.total = 0

    def __call__(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "total":
            self.total = int(rest)
            if self.bar_wanted and self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, desc="grading on Airflow", unit="student", file=sys.stderr)
        elif word == "done" and self.bar is not None:
            self.bar.n = int(rest)
            self.bar.refresh()
        elif word == "done":
            print(f"airflow: {rest}/{self.total} student(s) graded", file=sys.stderr, flush=True)
        else:
            print(f"airflow: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _outcome(result: dict[str, Any], dep: Deployment, run_dir: Path, seconds: float) -> Outcome:
    if result.get("error"):
        raise UsageError(f"the Airflow grading run could not run: {result['error']}; log: {run_dir / 'airflow.log'}")
    if result.get("merge") is None:
        order = {"prepare": 0, "grade": 1, "merge": 2}  # the first task that failed is the one to read
        tasks = sorted(result.get("tasks", []), key=lambda t: (order.get(t["task_id"], 3), t["map_index"]))
        failed = [t for t in tasks if t["state"] == "failed"] or [t for t in tasks if t["state"] != "success"]
        first = failed[0] if failed else {"task_id": "?", "log": run_dir / "airflow.log"}
        why = f": {first['error']}" if first.get("error") else ""
        raise UsageError(f"the grading DAG run ended {result.get('state')} without merged grades: task "
                         f"{first['task_id']} {first.get('state', '')}{why}; see its log {first.get('log')}")
    outcome = Outcome.from_dict(result["merge"])
    outcome.data["seconds"] = seconds  # the whole run, start-up included (summary.json has the DAG run's own)
    grade_tasks = [t for t in result.get("tasks", []) if t["task_id"] == "grade"]
    outcome.data["airflow"] = {
        "executor": dep.executor, "home": str(dep.home), "database": dep.db_url.split("@")[-1],
        "dag_id": DAG_ID, "run_id": result.get("run_id"), "state": result.get("state"), "seconds": seconds,
        "dag_test_seconds": result.get("seconds"), "run_dir": str(run_dir),
        "hosts": sorted({t["hostname"] for t in grade_tasks if t.get("hostname")}),
        "workers": sorted({p.data.get("airflow", {}).get("worker") or "" for p in outcome.parts} - {""}),
        "tasks": result.get("tasks", []),
    }
    return outcome

