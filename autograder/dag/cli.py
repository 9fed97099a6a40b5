"""`autograder dag`, the verb: parse, call the checker (checker.py), render. It loads any Airflow DAG file with Airflow's own DagBag, check its structure, and (with
--run) execute it end to end twice for one logical date to show each task's state and whether it is
idempotent.

Everything Airflow-related happens in a worker process with its own AIRFLOW_HOME (autograder.dag.isolate), so
the check never touches ~/airflow or a running Airflow, and `autograder --help` never imports Airflow.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from autograder.dag.checker import check_dag
from autograder.dag.report import DagReport
from autograder.errors import UsageError
from autograder.reports import add_json_option, format_table
from mlinfra.base.output import to_jsonable
from mlinfra.base.results import FAILED, PASSED, Check, ReportOutcome

DESCRIPTION = """\
Check an Airflow DAG file the way Airflow sees it.

Without --run: import the file with Airflow's DagBag (errors are shown with their line) and check the DAG's
structure: at least --min-tasks tasks, dependencies between them, no cycle, a schedule, catchup off,
retries set.

With --run: also execute the DAG end to end with dag.test() for --date (retries are switched off for the
test so a failing task fails at once), show each task's state and the line where a failing task raised, then
run it again for the same date and compare the files under the DAG's data folder (--data-dir): an idempotent
pipeline leaves them byte for byte the same. A run takes 15-25 s, most of it Airflow starting.

With --verify-ui-run: log in to the course's running Airflow (make airflow) through its REST API, find the
latest successful run of the DAG that was triggered by hand, check that every task succeeded and that the
source Airflow ran is the DAG file given, and (with --save) write that run record. A self-check, not graded:
grading runs the DAG in an Airflow of its own (docs/deploy-checks.md).
"""

EPILOG = """\
examples:
  .venv/bin/autograder dag workspace/phase1-lab1-airflow-dag/dag.py
  .venv/bin/autograder dag workspace/phase1-lab1-airflow-dag/dag.py --run --date 2024-01-01 --json -
  .venv/bin/autograder dag --verify-ui-run --save ui_run.json       (in the lab folder, with `make airflow` running)
exit codes: 0 no findings, 1 findings (listed with a fix each), 2 the check could not run
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "dag",
        help="load, check and test-run an Airflow DAG file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", type=Path, nargs="?", help="the DAG file (.py)")
    parser.add_argument(
        "--verify-ui-run",
        action="store_true",
        help="ask the course's Airflow (make airflow) through its REST API for the latest successful run of "
        "--dag-id (default course_pipeline) that you triggered in the UI, and check it against PATH "
        "(default dag.py)",
    )
    parser.add_argument(
        "--save", type=Path, metavar="FILE", help="with --verify-ui-run: write the run record there (ui_run.json)"
    )
    parser.add_argument(
        "--url", default=None, metavar="URL",
        help="with --verify-ui-run: Airflow's address (default http://127.0.0.1:8080, as make airflow starts it)",
    )
    parser.add_argument("--run", action="store_true", help="execute it twice with dag.test() (idempotency)")
    parser.add_argument(
        "--date",
        type=_iso_date,
        default=None,
        help="logical date of the test run, YYYY-MM-DD (default: today, UTC)",
    )
    parser.add_argument("--dag-id", default=None, help="which DAG to run when the file defines several")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder the DAG writes its outputs under (default: data/ beside the DAG file)",
    )
    parser.add_argument(
        "--min-tasks", type=int, default=3, help="fewest tasks a pipeline may have (default 3)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before the check gives up (300)"
    )
    parser.add_argument(
        "--keep-home", action="store_true", help="keep the temporary AIRFLOW_HOME and its log"
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def to_outcome(report: DagReport) -> ReportOutcome:
    """The report in the common vocabulary: a failed Check per finding, or one passed Check; its JSON keeps the
    report's own keys (findings, shape, run, ...) that lab notebooks read."""
    checks = [Check(f.rule, FAILED, message=f"{f.message}; {f.fix}".strip("; "),
                    where=f"{f.file or report.dag_file}:{f.line}" if f.line else f.about)
              for f in report.findings]
    if not checks:
        ran = " and gave the same outputs twice" if report.idempotency and report.idempotency.checked else ""
        checks = [Check("dag", PASSED, message=f"loads with Airflow and has the lab's shape{ran}")]
    return ReportOutcome(report.dag_file, checks, notes=list(report.notes), data=to_jsonable(report))


def run(args: argparse.Namespace) -> object:
    """The verb: check (and run) the DAG, print the findings, return the report (the runner writes --json and
    sends this printout to stderr when the JSON goes to stdout)."""
    if args.verify_ui_run:
        from autograder.dag.ui_run import verify_ui_run

        return verify_ui_run(args)
    if args.path is None:
        raise UsageError("give the DAG file to check, e.g. `.venv/bin/autograder dag dag.py` (or --verify-ui-run)")
    start = time.monotonic()

    def show(message: str) -> None:
        print(f"[{time.monotonic() - start:5.1f}s] {message}", file=sys.stderr, flush=True)

    report = check_dag(
        args.path,
        run=args.run,
        logical_date=args.date,
        dag_id=args.dag_id,
        data_dir=args.data_dir,
        min_tasks=args.min_tasks,
        timeout=args.timeout,
        keep_home=args.keep_home,
        on_progress=show,
    )
    print(render(report))
    return to_outcome(report)


def render(report: DagReport) -> str:
    out = [f"autograder dag: {report.dag_file}"]
    shape = report.shape
    if shape:
        out.append(
            f"DAG {shape.dag_id}: schedule {shape.schedule or 'none'}, catchup "
            f"{'on' if shape.catchup else 'off'}, {len(shape.tasks)} tasks: {' -> '.join(shape.order)}"
        )
    for label, run in (("run", report.run), ("rerun", report.rerun)):
        if run is None:
            continue
        out.append(
            f"\n{label} for {run.logical_date} (dag.test, retries off): {run.state} in {run.seconds:.1f} s"
        )
        rows = [
            (t.task_id, t.state, t.error or "", f"{t.file}:{t.line}" if t.line else "") for t in run.tasks
        ]
        if rows:
            out.append(format_table(["task", "state", "error", "where"], rows))
    idem = report.idempotency
    if idem and idem.checked:
        verdict = "unchanged: idempotent" if idem.same else "CHANGED: not idempotent"
        out.append(
            f"\noutputs under {report.data_dir}: {len(idem.outputs)} files "
            f"({len(idem.written)} written by the run); after the rerun {verdict}"
        )
    for note in report.notes:
        out.append(f"note: {note}")
    if report.findings:
        out.append(f"\n{len(report.findings)} finding{'s' * (len(report.findings) > 1)}:")
        for f in report.findings:
            where = f" ({f.where})" if f.line else ""
            out.append(f"  [{f.rule}] {f.message}{where}\n      fix: {f.fix}")
    else:
        out.append("\nno findings: passed" + ("" if report.run else " (add --run to execute it)"))
    return "\n".join(out)
