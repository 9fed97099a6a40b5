"""Structure checks on a loaded DAG; findings for import errors, failed tasks and non-idempotent reruns.

Pure functions over the plain description the worker returns (no Airflow import), each finding with a fix.
"""

from __future__ import annotations

import re

from autograder.dag.report import DagShape, Idempotency, RunReport
from mlinfra.base.results import Finding, at

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_CYCLE = re.compile(r"Cycle detected in Dag: (?P<dag>\S+)\. Faulty task: (?P<task>\S+)", re.IGNORECASE)


def import_error_finding(dag_file: str, text: str) -> Finding:
    """One finding for an error Airflow's DagBag reported while importing the file."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    summary = lines[-1].strip() if lines else "unknown import error"
    cycle = _CYCLE.search(text)
    if cycle:
        return Finding(
            rule="cycle",
            message=f"the dependencies loop back on themselves (Airflow: cycle in {cycle['dag']} at task "
            f"{cycle['task']})",
            fix="a DAG only flows forward: remove the `>>` (or argument) that makes a later task feed an "
            "earlier one",
            where=dag_file,
            about=cycle["task"],
        )
    line = None
    name = _basename(dag_file)
    for match in _FRAME.finditer(text):  # the innermost frame in the DAG file is the line to fix
        if _basename(match["file"]) == name:
            line = int(match["line"])
    where = at(dag_file, line)
    if summary.startswith(("SyntaxError", "IndentationError", "TabError")):
        fix = f"fix the syntax at {where} (an unclosed bracket or a missing colon is often on the line above)"
    elif summary.startswith("NotImplementedError"):
        fix = f"write the part marked `# YOUR CODE HERE` above {where}, then delete that raise"
    elif summary.startswith(("ModuleNotFoundError", "ImportError")):
        fix = f"check the import at {where}: Airflow 3 names live in airflow.sdk"
    else:
        fix = f"fix the error at {where}; the file must import cleanly for Airflow to see the DAG"
    return Finding("import-error", f"Airflow could not import the file: {summary}", where, fix)


def structure_findings(shape: DagShape, dag_file: str, *, min_tasks: int = 3) -> list[Finding]:
    out: list[Finding] = []
    n = len(shape.tasks)
    if n < min_tasks:
        out.append(
            Finding(
                "too-few-tasks",
                f"DAG {shape.dag_id} has {n} task{'s' * (n != 1)}; a pipeline needs at least {min_tasks}",
                fix="split the work into one @task per step (for example ingest, validate, train)",
                where=dag_file,
            )
        )
    edges = sum(len(t.downstream) for t in shape.tasks)
    if n > 1 and edges == 0:
        out.append(
            Finding(
                "no-dependencies",
                f"DAG {shape.dag_id} has no dependencies: all {n} tasks would start at once",
                fix="chain them, either by passing one task's result to the next (b(a())) or with a >> b >> c",
                where=dag_file,
            )
        )
    elif n > 1:
        for t in shape.tasks:
            if not t.upstream and not t.downstream:
                out.append(
                    Finding(
                        "isolated-task",
                        f"task {t.task_id} has no upstream or downstream task, so it runs on its own",
                        fix=f"connect {t.task_id} to the pipeline (pass it a result or use >>), or remove it",
                        where=dag_file,
                        about=t.task_id,
                    )
                )
    if shape.schedule is None:
        out.append(
            Finding(
                "no-schedule",
                f"DAG {shape.dag_id} has no schedule: it only runs when someone triggers it",
                fix='give the @dag a schedule, e.g. schedule="@daily", and a start_date',
                where=dag_file,
            )
        )
    if shape.catchup:
        out.append(
            Finding(
                "catchup-on",
                f"DAG {shape.dag_id} has catchup on: unpausing it runs every interval since its start_date",
                fix="set catchup=False on the @dag (backfill on purpose with `airflow backfill create`)",
                where=dag_file,
            )
        )
    no_retries = [t.task_id for t in shape.tasks if t.retries < 1]
    if no_retries:
        out.append(
            Finding(
                "no-retries",
                f"task{'s' * (len(no_retries) > 1)} {', '.join(no_retries)} never retry a failure",
                fix='set retries on the @dag: default_args={"retries": 2, "retry_delay": timedelta(minutes=1)}',
                where=dag_file,
                about=no_retries[0],
            )
        )
    return out


def run_findings(run: RunReport, dag_file: str, *, label: str = "run") -> list[Finding]:
    out: list[Finding] = []
    if run.error:
        out.append(
            Finding(
                "run-error",
                f"the {label} for {run.logical_date} could not execute: {run.error}",
                fix="fix the error above, then rerun with --run",
                where=dag_file,
            )
        )
        return out
    for t in run.tasks:
        if t.state != "failed":
            continue
        where = f"{t.file}:{t.line}" if t.file and t.line else (t.file or dag_file)
        again = " on a second run for the same date (its output already existed)" if label == "rerun" else ""
        fix = (
            f"fix the error at {where}, then rerun `.venv/bin/autograder dag {dag_file} --run`"
            if label == "run"
            else f"make {t.task_id} safe to repeat: overwrite its outputs (mkdir(exist_ok=True), "
            "open(..., 'w')) instead of failing when they exist"
        )
        out.append(
            Finding(
                "task-failed" if label == "run" else "rerun-failed",
                f"task {t.task_id} failed{again}: {t.error or 'see the Airflow log'}",
                fix=fix,
                where=at(t.file or dag_file, t.line),
                about=t.task_id,
            )
        )
    not_done = [
        t.task_id for t in run.tasks if t.state not in ("success", "failed", "upstream_failed", "skipped")
    ]
    if run.state != "success" and not out:
        out.append(
            Finding(
                "run-failed",
                f"the {label} for {run.logical_date} ended {run.state}"
                + (f" with tasks not finished: {', '.join(not_done)}" if not_done else ""),
                fix="look at the task states above; rerun with --keep-home to read the full Airflow log",
                where=dag_file,
            )
        )
    return out


def idempotency_findings(idem: Idempotency, data_dir: str, dag_file: str) -> list[Finding]:
    if not idem.checked or idem.same:
        return []
    parts = []
    for label, paths in (("changed", idem.changed), ("new", idem.added), ("gone", idem.removed)):
        if paths:
            shown = ", ".join(paths[:4]) + (f" and {len(paths) - 4} more" if len(paths) > 4 else "")
            parts.append(f"{label}: {shown}")
    return [
        Finding(
            "not-idempotent",
            f"running the same date twice left different files under {data_dir} ({'; '.join(parts)})",
            fix="make each task overwrite its outputs for the run's date (open(..., 'w'), not 'a'), name files "
            "after the logical date ({{ ds }} / ds), never the clock, and keep timestamps out of them",
            where=dag_file,
        )
    ]


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
