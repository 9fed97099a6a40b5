"""The learner's self-check of a run they started in their own Airflow's UI (`autograder dag --verify-ui-run`,
autograder/dag/ui_run.py): is the record a successful, hand-triggered run of course_pipeline whose every required
task succeeded, of this very dag.py source? Not graded: a record made on the learner's machine can be written by
hand, so grading runs the DAG in an Airflow of its own instead (airflow_check.py; docs/deploy-checks.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

UI_RUN_FILE = "ui_run.json"


def source_digest(source: bytes) -> str:
    """The digest a run record carries of the DAG source Airflow ran (line endings and trailing space ignored)."""
    text = source.decode("utf-8", errors="replace").replace("\r\n", "\n").strip()
    return hashlib.sha256(text.encode()).hexdigest()


def ui_run_problems(record: Any, dag_source: bytes | None, dag_id: str = "course_pipeline") -> list[str]:
    """Why a run record does not show a successful, hand-triggered run of this DAG file ([] when it does)."""
    from mlinfra.pipeline import MUST_FOLLOW

    again = "trigger it again in the UI and save a new record"
    if not isinstance(record, dict):
        return [f"{UI_RUN_FILE} holds no run record: save it with `.venv/bin/autograder dag --verify-ui-run --save {UI_RUN_FILE}`"]
    get: Callable[[str], Any] = record.get
    problems = []
    if get("dag_id") != dag_id:
        problems.append(f"the recorded run is of DAG {get('dag_id')!r}, not {dag_id}: {again}")
    if get("run_type") != "manual":
        problems.append(f"the recorded run was {get('run_type') or 'not'} triggered, not by hand in the UI: {again}")
    if get("state") != "success":
        problems.append(f"the recorded run ended {get('state')!r}, not success: fix what failed, then {again}")
    tasks = get("tasks") if isinstance(get("tasks"), dict) else {}
    not_ok = [t for t in MUST_FOLLOW if tasks.get(t) != "success"]
    if not_ok:
        problems.append(f"in the recorded run, {', '.join(not_ok)} did not succeed: {again}")
    if dag_source is None:
        problems.append("no dag.py in the submission to compare the recorded run with: hand in the lab folder")
    elif get("dag_source_sha256") != source_digest(dag_source):
        problems.append("the recorded run is of a different dag.py than the one handed in: after your last edit, "
                        f"{again}")
    return problems
