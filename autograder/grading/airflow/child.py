"""The child process of a grading run (`python -m autograder.grading.airflow _run SPEC RESULT`, started by
engine.py with the deployment's Airflow settings already in its environment, since Airflow reads them once, at
import): migrates the metadata database when needed (a new SQLite home is a migrated copy already), loads the
grading DAG with Airflow's DagBag, starts the execution API server for Celery, and runs `dag.test()`. A watcher
thread writes `total N` / `done K` progress lines on stdout (Airflow's own output goes to the log) and stops a
Celery run whose tasks wait with no worker taking them. The result (run id, state, tasks, and the merge task's
Outcome from XCom) goes to RESULT as JSON; an error is one line in it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autograder.grading.airflow.environment import DAG_FILE_NAME, DAG_ID, Deployment
from autograder.grading.airflow.processes import start_api_server, wait_for_api_server
from mlinfra.base.errors import UsageError
from mlinfra.base.procs import stop_group
from mlinfra.base.runner import EXIT_PASSED


def child_main(spec_path: Path, result_path: Path) -> int:
    """Runs with the deployment's Airflow settings in its environment (set before Airflow is imported)."""
    spec = json.loads(spec_path.read_text())
    dep = Deployment.from_dict(spec["deployment"])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # so `finally` stops the API server
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # Airflow's own chatter goes to the log, not the progress channel
    result: dict[str, Any] = {}
    api: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        progress.write(f"{dep.executor} executor; database {dep.db_url.split('@')[-1]}\n")
        db.initdb()  # creates a new database, upgrades an old one, a no-op check on a current one
        result["migrate_seconds"] = round(time.perf_counter() - t0, 2)
        bag = DagBag(dag_folder=str(dep.dags / DAG_FILE_NAME), safe_mode=False)
        if DAG_ID not in bag.dags:
            result["error"] = f"the grading DAG did not load: {dict(bag.import_errors) or 'no DAG in the file'}"
            return EXIT_PASSED
        dag = bag.dags[DAG_ID]
        if dep.executor == "celery":
            log = Path(spec["run_dir"]) / "api-server.log"
            api = start_api_server(dep, log)
            wait_for_api_server(dep, api, log)
        celery = dep.executor == "celery"
        watcher = _Watcher(progress, float(spec.get("queued_timeout", 600)) if celery else None, dep.queue)
        watcher.start()
        t1 = time.perf_counter()
        try:
            dr = dag.test(run_conf=spec["conf"], use_executor=celery)
        except KeyboardInterrupt:
            if not watcher.stalled:
                raise
            result["error"] = watcher.stalled
            return EXIT_PASSED
        finally:
            watcher.stop()
        result["seconds"] = round(time.perf_counter() - t1, 2)
        result.update(_collect(dr, dep))
    except UsageError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line; the log has the traceback
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if api is not None:
            stop_group(api)
        result_path.write_text(json.dumps(result, indent=2, default=str))
    return EXIT_PASSED


class _Watcher(threading.Thread):
    """Counts finished grade tasks of the running DAG run every second: `total N` once, then `done K`. With an
    executor, a task that waits `queued_timeout` seconds with no worker taking it stops the run (SIGINT to this
    process, which dag.test() sees as Ctrl-C) with `stalled` saying why."""

    def __init__(self, out: Any, queued_timeout: float | None = None, queue: str = "") -> None:
        super().__init__(daemon=True)
        self.out = out
        self.halt = threading.Event()
        self.queued_timeout = queued_timeout
        self.queue = queue
        self.stalled = ""
        self.queued_since: float | None = None

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        self.poll()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            try:
                self.poll()
            except Exception:  # noqa: BLE001, S112 - progress is best effort; the run itself reports errors
                continue

    def poll(self) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import State
        from sqlalchemy import select

        with create_session() as session:
            run = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)
                                  .order_by(DagRun.id.desc()).limit(1)).first()
            if run is None:
                return
            all_states = session.scalars(select(TaskInstance.state).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)).all()
            states = session.scalars(select(TaskInstance.state).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == "grade", TaskInstance.map_index >= 0)).all()
        self.check_stall(all_states)
        if not states:
            return
        if not getattr(self, "total", None):
            self.total = len(states)
            self.out.write(f"total {self.total}\n")
        done = sum(1 for s in states if s in State.finished)
        if done != getattr(self, "done", -1):
            self.done = done
            self.out.write(f"done {done}\n")


    def check_stall(self, states: Sequence[Any]) -> None:
        """Queued tasks and none running: no worker is taking them (none started, wrong queue, broker down)."""
        if self.queued_timeout is None or self.stalled:
            return
        names = {str(getattr(s, "value", s)) for s in states}
        if "queued" in names and "running" not in names:
            self.queued_since = self.queued_since or time.monotonic()
            if time.monotonic() - self.queued_since > self.queued_timeout:
                self.stalled = (f"no Celery worker took a task from queue {self.queue!r} in "
                                f"{self.queued_timeout:.0f} s: start workers for that queue (--celery-workers N, or "
                                f"`.venv/bin/python -m autograder.grading.airflow worker NAME` where they run) and "
                                f"check the broker")
                os.kill(os.getpid(), signal.SIGINT)
        else:
            self.queued_since = None


def _collect(dr: Any, dep: Deployment) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks = []
    with create_session() as session:
        for ti in dr.get_task_instances(session=session):
            tasks.append({
                "task_id": ti.task_id, "map_index": ti.map_index, "label": ti.rendered_map_index,
                "student": (ti.rendered_map_index or "").partition(": ")[0] or None,
                "state": str(getattr(ti.state, "value", ti.state)), "try_number": ti.try_number,
                "hostname": ti.hostname, "duration": ti.duration,
                "log": str(dep.logs / f"dag_id={DAG_ID}" / f"run_id={dr.run_id}" / f"task_id={ti.task_id}"
                           / (f"map_index={ti.map_index}" if ti.map_index >= 0 else "")),
            })
        row = session.scalars(XComModel.get_many(run_id=dr.run_id, key="return_value", dag_ids=DAG_ID,
                                                 task_ids="merge")).first()
        merge = XComModel.deserialize_value(row) if row is not None else None
        errors = {r.task_id: XComModel.deserialize_value(r) for r in session.scalars(  # type: ignore[attr-defined]
            XComModel.get_many(run_id=dr.run_id, key="error", dag_ids=DAG_ID, task_ids=["prepare", "merge"]))}
    for t in tasks:
        if t["task_id"] in errors:
            t["error"] = errors[t["task_id"]]
    return {"run_id": dr.run_id, "state": str(getattr(dr.state, "value", dr.state)),
            "tasks": sorted(tasks, key=lambda t: (t["task_id"], t["map_index"])), "merge": merge}

