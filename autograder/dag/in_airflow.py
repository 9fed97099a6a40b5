"""Runs inside the isolated Airflow process `autograder dag` starts: load, describe, and (with --run) test.

Usage (internal): python -m autograder.dag.in_airflow SPEC.json RESULT.json

The parent sets AIRFLOW_HOME and the DAGs folder before this process imports Airflow, which reads its settings
at import time: that is why the work happens here and not in the CLI's own process. Airflow's own logging
goes to the log file named in the spec; fd 1 as inherited becomes a line-per-phase progress channel for the
parent.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from autograder.dag.snapshot import diff, snapshot
from mlinfra.base.runner import EXIT_PASSED

_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve())
    for p in {
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result_path = Path(argv[1])
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(spec["log"], "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    result: dict[str, Any] = {"import_errors": {}, "dags": [], "seconds": {}}
    try:
        work(spec, result, progress)
    finally:
        result_path.write_text(json.dumps(result, indent=2, default=str))
    return EXIT_PASSED


def work(spec: dict[str, Any], result: dict[str, Any], progress: TextIO) -> None:
    dag_file = Path(spec["dag_file"])
    progress.write(f"loading {dag_file.name} with Airflow's DagBag\n")
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    t1 = time.perf_counter()
    # safe_mode=False: a file that never spells "dag" is still imported: its error is reported, not skipped.
    bag = DagBag(dag_folder=str(dag_file), safe_mode=False)
    result["seconds"]["import_airflow"] = round(t1 - t0, 2)
    result["seconds"]["parse"] = round(time.perf_counter() - t1, 2)
    result["import_errors"] = dict(bag.import_errors)
    dags = [d for d in bag.dags.values() if Path(d.fileloc).resolve() == dag_file.resolve()]
    result["dags"] = [describe(d) for d in dags]
    if not spec["run"] or not dags:
        return
    wanted = spec.get("dag_id")
    chosen = next((d for d in dags if d.dag_id == wanted), None) if wanted else dags[0]
    if chosen is None or (not wanted and len(dags) > 1):
        return  # the parent reports the ambiguity
    # The parent copied a migrated database into this home (autograder/dag/isolate.py).
    data_dir = Path(spec["data_dir"])
    before = snapshot(data_dir)
    # A task that raises must fail now, not wait out retry_delay: retries were checked, now switched off.
    for task in chosen.tasks:
        task.retries = 0
    progress.write(f"running {chosen.dag_id} for {spec['date']} with dag.test() (15-25 s)\n")
    result["run"] = run_once(chosen, spec["date"])
    after_first = snapshot(data_dir)
    result["outputs"] = after_first
    result["written"] = sorted(p for p, h in after_first.items() if before.get(p) != h)
    if result["run"]["state"] != "success":
        return
    progress.write(f"running {chosen.dag_id} again for {spec['date']} to check idempotency\n")
    result["rerun"] = run_once(chosen, spec["date"])
    d = diff(after_first, snapshot(data_dir))
    result["rerun_diff"] = {"changed": d.changed, "added": d.added, "removed": d.removed}


def describe(dag: Any) -> dict[str, Any]:
    schedule = dag.schedule
    if schedule is not None and not isinstance(schedule, str):
        schedule = getattr(dag.timetable, "summary", None) or type(schedule).__name__
    start = dag.start_date or dag.default_args.get("start_date")
    return {
        "dag_id": dag.dag_id,
        "schedule": schedule,
        "catchup": bool(dag.catchup),
        "start_date": start.isoformat() if start else None,
        "tasks": [
            {
                "task_id": t.task_id,
                "operator": type(t).__name__,
                "retries": int(t.retries or 0),
                "upstream": sorted(t.upstream_task_ids),
                "downstream": sorted(t.downstream_task_ids),
            }
            for t in dag.tasks
        ],
    }


def run_once(dag: Any, date: str) -> dict[str, Any]:
    errors: dict[str, dict[str, Any]] = {}

    def record_failure(context: Any) -> None:
        exc = context.get("exception")
        ti = context.get("ti") or context.get("task_instance")
        if ti is not None and exc is not None:
            errors[ti.task_id] = explain(exc, dag.fileloc)

    for task in dag.tasks:
        task.on_failure_callback = [c for c in task.on_failure_callback if c.__name__ != "record_failure"]
        task.on_failure_callback.append(record_failure)
    logical = datetime.fromisoformat(date).replace(tzinfo=timezone.utc)
    t0 = time.perf_counter()
    try:
        dr = dag.test(logical_date=logical)
    except Exception as exc:  # noqa: BLE001 - dag.test itself raised: as often as not, the DAG's fault
        traceback.print_exc()
        return {
            "logical_date": date,
            "state": "error",
            "seconds": round(time.perf_counter() - t0, 2),
            "tasks": [],
            "error": explain(exc, dag.fileloc)["error"],
        }
    seconds = round(time.perf_counter() - t0, 2)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()}
    tasks = [
        {"task_id": t.task_id, "state": states.get(t.task_id, "none"), **errors.get(t.task_id, {})}
        for t in dag.tasks
    ]
    return {
        "logical_date": date,
        "state": str(getattr(dr.state, "value", dr.state)),
        "seconds": seconds,
        "tasks": tasks,
        "error": None,
    }


def explain(exc: BaseException, dag_file: str) -> dict[str, Any]:
    """`Type: message` and the line to look at: the DAG file's own frame if it is on the stack, else the
    innermost frame outside the standard library and installed packages (the course library, say)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    out: dict[str, Any] = {"error": f"{type(exc).__name__}: {message}"[:400], "file": None, "line": None}
    frames = traceback.extract_tb(exc.__traceback__)
    dag_path = str(Path(dag_file).resolve())
    in_dag = [f for f in frames if str(Path(f.filename).resolve()) == dag_path]
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_LIBRARY_ROOTS)]
    frame = (in_dag or own or [None])[-1]
    if frame is not None:
        out["file"], out["line"] = frame.filename, frame.lineno
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
