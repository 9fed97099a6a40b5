"""`autograder grade --engine airflow`: grade a class as an Airflow DAG (`autograder/grading/airflow_dag.py`), one
mapped task per student, calling the same `prepare_batch` / `grade_student` / `finish_batch` as the local engine
and writing the same grades.csv, summary.json and feedback/; docs/grading-at-scale.md says which executor to use
when. The package, by concern: environment.py (where Airflow is, its environment, installing the DAG), engine.py
(`grade_on_airflow`), child.py (the child process that runs `dag.test()`, and its watcher), standalone.py
(`--executor standalone` through the REST API of `make airflow`), processes.py (the execution API server, Celery
workers, stopping them), postgres.py (template and scratch databases, broker queues), options.py (grade's
`--executor` etc.) and __main__.py (`python -m autograder.grading.airflow worker NAME`). Its public names are
importable from here; no module of it imports Airflow at top level, so `autograder grade --help` stays instant.
"""

from __future__ import annotations

from autograder.grading.airflow.engine import grade_on_airflow
from autograder.grading.airflow.environment import (
    DAG_FILE_NAME,
    DAG_ID,
    DEFAULT_BROKER,
    DEFAULT_QUEUE,
    EXECUTORS,
    Deployment,
    airflow_env,
    default_home,
    deployment,
    install_dag,
)
from autograder.grading.airflow.options import add_airflow_options, airflow_options
from autograder.grading.airflow.postgres import (
    create_scratch_database,
    database_url,
    drop_database,
    ensure_template,
    forget_queue,
    services_answer,
    template_name,
)
from autograder.grading.airflow.processes import (
    start_api_server,
    start_celery_worker,
    wait_for_api_server,
    wait_for_worker,
)
from autograder.grading.airflow.standalone import api_request
from mlinfra.base.procs import free_port, stop_group

__all__ = [
    "DAG_FILE_NAME", "DAG_ID", "DEFAULT_BROKER", "DEFAULT_QUEUE", "EXECUTORS", "Deployment", "add_airflow_options",
    "airflow_env", "airflow_options", "api_request", "create_scratch_database", "database_url", "default_home",
    "deployment", "drop_database", "ensure_template", "forget_queue", "free_port", "grade_on_airflow",
    "install_dag", "services_answer", "start_api_server", "start_celery_worker", "stop_group", "template_name",
    "wait_for_api_server", "wait_for_worker",
]
