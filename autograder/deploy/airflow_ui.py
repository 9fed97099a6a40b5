"""The phase1-lab1 deploy check (`autograder.deploy:airflow_ui_run`): the run the learner started in their own
Airflow's UI, from the record they saved with `autograder dag --verify-ui-run --save ui_run.json`, checked against
the dag.py they handed in (a successful, hand-triggered run of course_pipeline whose every required task
succeeded, of this very source). `source_digest` and `ui_run_problems` are shared with `autograder dag`
(autograder/dag/ui_run.py); docs/deploy-checks.md says what the record proves and what it cannot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autograder.deploy.common import POINTS_EACH
from mlinfra.base.results import FAILED, PASSED, Check

UI_RUN_FILE = "ui_run.json"


def airflow_ui_run(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Phase1-lab1: the run the learner started in Airflow's UI, from the record they saved (ui_run.json)."""
    name = "Airflow: a run started in the UI"
    record_path = files_dir / UI_RUN_FILE
    dag_file = files_dir / "dag.py"
    if not record_path.is_file():
        return [Check(name, FAILED, 0.0, POINTS_EACH, f"no {UI_RUN_FILE}: start `make airflow`, trigger "
                      "course_pipeline in the UI, then run `.venv/bin/autograder dag --verify-ui-run --save ui_run.json` in "
                      "the lab folder and hand the file in", UI_RUN_FILE)]
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [Check(name, FAILED, 0.0, POINTS_EACH, f"{UI_RUN_FILE} is not the JSON the verify command writes "
                      f"({exc}): save it again with `.venv/bin/autograder dag --verify-ui-run --save ui_run.json`",
                      UI_RUN_FILE)]
    source = dag_file.read_bytes() if dag_file.is_file() else None
    problems = ui_run_problems(record, source)
    if problems:
        return [Check(name, FAILED, 0.0, POINTS_EACH, problems[0], UI_RUN_FILE)]
    return [Check(name, PASSED, POINTS_EACH, POINTS_EACH,
                  f"run {record['dag_run_id']} of course_pipeline succeeded ({record.get('end_date')})", UI_RUN_FILE)]


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
