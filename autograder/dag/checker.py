"""The engine of `autograder dag`: check (and run) a DAG file in an isolated Airflow and turn what the worker saw
into a DagReport with findings. No printing: the verb (autograder/dag/__init__.py) renders the report."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from autograder.dag.checks import idempotency_findings, import_error_finding, run_findings, structure_findings
from autograder.dag.report import DagReport, DagShape, Idempotency, RunReport
from autograder.errors import UsageError
from mlinfra.base.results import Finding

__all__ = ["check_dag", "compose"]


def check_dag(
    path: Path,
    *,
    run: bool = False,
    logical_date: str | None = None,
    dag_id: str | None = None,
    data_dir: Path | None = None,
    min_tasks: int = 3,
    timeout: float = 300.0,
    keep_home: bool = False,
    on_progress=lambda message: None,
) -> DagReport:
    from autograder.dag.isolate import run_worker

    dag_file = path.resolve()
    if not dag_file.is_file():
        raise UsageError(f"{path}: no such file; give the path of a DAG file (.py)")
    if dag_file.suffix != ".py":
        raise UsageError(f"{path}: not a Python file; a DAG file ends in .py")
    data = (data_dir or dag_file.parent / "data").resolve()
    when = logical_date or datetime.now(timezone.utc).date().isoformat()
    spec = {"dag_file": str(dag_file), "dag_id": dag_id, "run": run, "date": when, "data_dir": str(data)}
    outcome = run_worker(spec, timeout=timeout, keep_home=keep_home, on_progress=on_progress)
    report = DagReport(dag_file=str(path), data_dir=str(data))
    if keep_home:
        report.notes.append(f"Airflow home kept at {outcome.home} (log: {outcome.log})")
    if outcome.timed_out:
        report.findings.append(
            Finding(
                "timeout",
                f"the check did not finish within {timeout:.0f} s",
                fix="look for a task that waits forever or trains too long; raise --timeout if it is just slow",
                where=str(path),
            )
        )
    compose(report, outcome.result or {}, dag_id=dag_id, run=run, min_tasks=min_tasks)
    report.passed = not report.findings
    return report


def compose(report: DagReport, raw: dict, *, dag_id: str | None, run: bool, min_tasks: int) -> None:
    """Turn the worker's raw result into findings (pure: the tests feed it hand-made results)."""
    path = report.dag_file
    report.seconds = dict(raw.get("seconds", {}))
    for text in raw.get("import_errors", {}).values():
        report.findings.append(import_error_finding(path, text))
    shapes = [DagShape.from_dict(d) for d in raw.get("dags", [])]
    if not shapes:
        if not raw.get("import_errors") and raw:
            report.findings.append(
                Finding(
                    "no-dag",
                    "Airflow found no DAG in the file",
                    fix="decorate a function with @dag (from airflow.sdk import dag) and call it at the "
                    "bottom of the "
                    "file, e.g. `course_pipeline()`",
                    where=path,
                )
            )
        return
    if dag_id:
        chosen = next((s for s in shapes if s.dag_id == dag_id), None)
        if chosen is None:
            raise UsageError(f"{path} has no DAG {dag_id!r} (it has: {', '.join(s.dag_id for s in shapes)})")
    elif len(shapes) > 1:
        raise UsageError(
            f"{path} defines {len(shapes)} DAGs ({', '.join(s.dag_id for s in shapes)}): "
            "choose one with --dag-id"
        )
    else:
        chosen = shapes[0]
    report.dag_id, report.shape = chosen.dag_id, chosen
    report.findings.extend(structure_findings(chosen, path, min_tasks=min_tasks))
    if not run or "run" not in raw:
        return
    report.run = RunReport.from_dict(raw["run"])
    report.findings.extend(run_findings(report.run, path))
    outputs = raw.get("outputs", {})
    if report.run.state == "success" and not raw.get("written"):
        report.notes.append(
            f"the run wrote no files under {report.data_dir}: idempotency was checked on "
            "nothing (does the DAG write where --data-dir says?)"
        )
    if "rerun" not in raw:
        report.idempotency = Idempotency(
            checked=False, same=None, outputs=outputs, written=raw.get("written", [])
        )
        return
    report.rerun = RunReport.from_dict(raw["rerun"])
    rerun_problems = run_findings(report.rerun, path, label="rerun")
    report.findings.extend(rerun_problems)
    d = raw.get("rerun_diff", {})
    report.idempotency = Idempotency(
        checked=not rerun_problems,
        same=None if rerun_problems else not any(d.values()),
        outputs=outputs,
        written=raw.get("written", []),
        changed=d.get("changed", []),
        added=d.get("added", []),
        removed=d.get("removed", []),
    )
    report.findings.extend(idempotency_findings(report.idempotency, report.data_dir, path))
