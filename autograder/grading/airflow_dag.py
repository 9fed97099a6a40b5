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
  regrades a bad notebook for being bad.
- merge: `finish_batch` writes grades.csv, summary.json and feedback/ exactly as the local engine does. It runs
  even when some grade tasks failed for good; `finish_batch` records those students as "grader error".

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

        conf = _conf()
        plan = _reported(lambda: prepare_batch(conf["lab"], Path(conf["submissions"]), Path(conf["work_dir"]),
                                               sandbox=conf["sandbox"], keep_work=bool(conf["keep_work"])))
        print(f"prepared {conf['lab']}: {len(plan.students)} student(s) in {conf['work_dir']}")
        return list(plan.students)

    @task(map_index_template="{{ task.op_kwargs['student'] }}", execution_timeout=timedelta(hours=1))
    def grade(student: str) -> dict[str, Any]:
        import socket
        import time
        from pathlib import Path

        from autograder.grading.engine import grade_student, load_plan
        from mlinfra.base.results import GRADER_ERROR

        context = get_current_context()
        conf = dict(context["params"])
        started = time.monotonic()
        outcome = grade_student(load_plan(Path(conf["work_dir"])), student)
        seconds = round(time.monotonic() - started, 2)
        ti, task_ = context["ti"], context["task"]
        if outcome.status == GRADER_ERROR and ti.try_number <= (task_.retries or 0):
            # The grading machinery failed (kernel start-up, a lost output), not the student's code: let
            # Airflow retry the task. The last try's result is kept, whatever it is.
            raise RuntimeError(f"grading {student} failed in the grader (try {ti.try_number}): "
                               f"{'; '.join(outcome.notes)[:300]}")
        result = outcome.to_dict()
        result.setdefault("data", {})["airflow"] = {"host": socket.gethostname(), "seconds": seconds,
                                                    "try": ti.try_number,
                                                    "worker": os.environ.get("AUTOGRADER_WORKER_NAME", "")}
        print(f"graded {student}: {outcome.status}, {outcome.score:g}/{outcome.max_score:g} in {seconds:.1f} s "
              f"on {socket.gethostname()}")
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

        outcomes: list[Outcome] = []
        for raw in results or []:
            if raw:  # a grade task that failed for good leaves no result: finish_batch records a grader error
                outcomes.append(Outcome.from_dict(raw))
        began = context["dag_run"].start_date
        seconds = round((datetime.now(timezone.utc) - began).total_seconds(), 2) if began else None
        summary = _reported(lambda: finish_batch(plan, outcomes, Path(conf["out_dir"]),
                                                 reveal_hidden=bool(conf["reveal_hidden"]), seconds=seconds))
        print(f"merged {len(outcomes)} of {len(plan.students)} result(s) into {conf['out_dir']}")
        return summary.to_dict()

    merge(grade.expand(student=prepare()))
