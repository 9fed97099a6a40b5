"""The Airflow DAG behind `autograder grade --engine airflow`: grade a class, one mapped task per student.

`autograder.grading.airflow` copies this file into the grading DAGs folder of the course's Airflow home
(`<AIRFLOW_HOME>/grading-dags/`) and runs it with a DAG-run conf naming the lab, the submissions, the work folder
and the output folder. Three steps:

    prepare  ->  grade (mapped: one task instance per student)  ->  merge

- prepare: `prepare_batch` builds the lab's gradebook template and stages every submission in the work folder
  (plan.json); it returns the student names, which the grade step is mapped over (dynamic task mapping).
- grade: `grade_student` for one student (sandboxed, a fresh kernel), returning the student's Outcome as a small
  JSON dict through XCom. Nothing a student's code can write is read as a result: the dict is what the trusted
  grading code observed. Retries (2, 10 s apart) cover the machinery failing (a lost worker, a killed process,
  an outcome "grader error"); `grade_student` never fails for the student's own faults, so a retry never
  regrades a bad notebook for being bad. What an operator sees: each mapped task is labelled with the student's
  name, score and status ("ada: 7/10 (completed)", map_index_template), so the grid's list of grade tasks reads
  as the class's results; a task is failed (red) only when the grader itself failed for that student after its
  retries, never for a student's 0/10 or dead kernel. nbgrader's exchange and checksum chatter, which says
  nothing about a grade, is kept out of the task logs.
- merge: `finish_batch` writes grades.csv, summary.json and feedback/ exactly as the local engine does. It runs
  even when some grade tasks failed for good: their results (saved beside the plan before failing) are merged
  as "grader error", with the grader's reason.

The file imports only Airflow's SDK at parse time (parsing stays fast); the grading code is imported inside the
tasks, in whichever process (local, Celery worker, Kubernetes pod) runs them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.task.trigger_rule import TriggerRule

DAG_ID = "autograder_grade_class"


def _conf() -> dict[str, Any]:
    return dict(get_current_context()["params"])


# nbgrader's messages that say nothing about a grade: it checks an exchange folder the grader never uses, and
# reports every test cell whose source it restores (the grader restores them on purpose; tampering is judged
# elsewhere, autograder/grading/tamper.py).
NOISE = ("Unwritable directory", "Attribute 'checksum'", "Checksum for")
RESULTS_DIR = "airflow-results"  # in the batch's work folder: a grade task's result when it fails for good


class _NotAGrade:
    """A logging filter dropping NOISE records (nbgrader logs them on traitlets' logger)."""

    def filter(self, record: Any) -> bool:
        return not record.getMessage().startswith(NOISE)


def _quiet_nbgrader() -> None:
    import logging

    for name in ("traitlets", "nbgrader"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NotAGrade) for f in logger.filters):
            logger.addFilter(_NotAGrade())


def label(student: str, outcome: Any) -> str:
    """A grade task's label in the UI: the student, the score and how far grading got."""
    return f"{student}: {outcome.score:g}/{outcome.max_score:g} ({outcome.status})"


def _reported(step: Any) -> Any:
    """Run a step; if it raises, leave its one-line reason as the XCom "error" (the engine prints it) first."""
    try:
        return step()
    except Exception as exc:
        get_current_context()["ti"].xcom_push(key="error", value=f"{type(exc).__name__}: {exc}"[:500])
        raise


with DAG(
    dag_id=DAG_ID,
    description=".venv/bin/autograder grade --engine airflow: one mapped task per student, merged into grades.csv",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["autograder", "grading"],
    params={
        "lab": Param("", type="string", description="the lab, e.g. lab01-environment"),
        "submissions": Param("", type="string", description="folder of student folders or .zip archives"),
        "work_dir": Param("", type="string", description="the batch's work folder (plan.json, staging)"),
        "out_dir": Param("", type="string", description="where grades.csv, summary.json, feedback/ go"),
        "sandbox": Param("auto", type="string", description="bwrap, container, none or auto"),
        "reveal_hidden": Param(False, type="boolean", description="show hidden tests' code in feedback"),
        "keep_work": Param(False, type="boolean", description="keep each student's work folder"),
    },
    # The Celery queue the grading workers listen on (the engine sets it; Airflow's own default otherwise).
    default_args={"retries": 2, "retry_delay": timedelta(seconds=10),
                  "queue": os.environ.get("AUTOGRADER_GRADING_QUEUE", "default")},
) as dag:

    # No retries: what stops preparation (no such lab, no sandbox, an unwritable folder) does not go away.
    @task(retries=0)
    def prepare() -> list[str]:
        from pathlib import Path

        from autograder.grading.engine import prepare_batch

        _quiet_nbgrader()
        conf = _conf()
        plan = _reported(lambda: prepare_batch(conf["lab"], Path(conf["submissions"]), Path(conf["work_dir"]),
                                               sandbox=conf["sandbox"], keep_work=bool(conf["keep_work"])))
        print(f"prepared {conf['lab']}: {len(plan.students)} student(s) in {conf['work_dir']}")
        return list(plan.students)

    # The label is rendered after the task ran, from the context (Airflow's "named mapping"): the name alone
    # until graded, then name, score and status.
    @task(map_index_template="{{ grade_label }}", execution_timeout=timedelta(hours=1))
    def grade(student: str) -> dict[str, Any]:
        import json
        import socket
        import time
        from pathlib import Path

        from autograder.grading.engine import grade_student, load_plan
        from mlinfra.base.results import GRADER_ERROR

        _quiet_nbgrader()
        context = get_current_context()
        context["grade_label"] = student  # type: ignore[typeddict-unknown-key]  # map_index_template reads it
        conf = dict(context["params"])
        started = time.monotonic()
        outcome = grade_student(load_plan(Path(conf["work_dir"])), student)
        seconds = round(time.monotonic() - started, 2)
        context["grade_label"] = label(student, outcome)  # type: ignore[typeddict-unknown-key]
        ti, task_ = context["ti"], context["task"]
        why = "; ".join(outcome.notes)[:300]
        if outcome.status == GRADER_ERROR and ti.try_number <= (task_.retries or 0):
            # The grading machinery failed (kernel start-up, a lost output), not the student's code: let
            # Airflow retry the task.
            raise RuntimeError(f"grading {student} failed in the grader (try {ti.try_number}): {why}")
        result = outcome.to_dict()
        result.setdefault("data", {})["airflow"] = {"host": socket.gethostname(), "seconds": seconds,
                                                    "try": ti.try_number,
                                                    "worker": os.environ.get("AUTOGRADER_WORKER_NAME", "")}
        print(f"graded {student}: {outcome.status}, {outcome.score:g}/{outcome.max_score:g} in {seconds:.1f} s "
              f"on {socket.gethostname()}")
        if outcome.status == GRADER_ERROR:
            # The last try failed in the grader too: the task fails (red in the grid: someone must look), and
            # merge still records this result, with the grader's reason.
            saved = Path(conf["work_dir"]) / RESULTS_DIR / f"{student}.json"
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(result))
            raise RuntimeError(f"grading {student} failed in the grader on every try: {why}")
        return result

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def merge(results: Any) -> dict[str, Any]:
        from datetime import datetime, timezone
        from pathlib import Path

        from autograder.grading.plan import load_plan  # light: no plan (prepare failed) fails fast
        from mlinfra.base.results import Outcome

        context = get_current_context()
        conf = dict(context["params"])
        plan = _reported(lambda: load_plan(Path(conf["work_dir"])))
        from autograder.grading.engine import finish_batch

        _quiet_nbgrader()
        outcomes: list[Outcome] = []
        for raw in results or []:
            if raw:  # a grade task that failed for good leaves no XCom result: its saved one is read below
                outcomes.append(Outcome.from_dict(raw))
        import json

        graded = {o.subject for o in outcomes}
        for student in plan.students:
            saved = Path(conf["work_dir"]) / RESULTS_DIR / f"{student}.json"
            if student not in graded and saved.is_file():  # written by the trusted grade task, never a student
                outcomes.append(Outcome.from_dict(json.loads(saved.read_text())))
        began = context["dag_run"].start_date
        seconds = round((datetime.now(timezone.utc) - began).total_seconds(), 2) if began else None
        summary = _reported(lambda: finish_batch(plan, outcomes, Path(conf["out_dir"]),
                                                 reveal_hidden=bool(conf["reveal_hidden"]), seconds=seconds))
        print(f"merged {len(outcomes)} of {len(plan.students)} result(s) into {conf['out_dir']}")
        return summary.to_dict()

    merge(grade.expand(student=prepare()))
