"""Lab 1.1: the course pipeline as an Airflow DAG (TaskFlow API).

ingest -> validate -> engineer_features -> train -> evaluate, once a day.

The computation lives in the course library (mlinfra.pipeline); this file is the orchestration: which steps
exist, in what order, when they run, how often they retry, and which date partition each one works on.
Every task writes under DATA_DIR/<stage>/<ds>/, where ds is the run's logical date (YYYY-MM-DD).

Check it:   autograder dag dag.py --run --date 2024-01-01
Watch it:   make airflow   (then open http://127.0.0.1:8080)
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

from mlinfra import pipeline

# Every task reads and writes under this folder, never under the current directory (a scheduler's cwd is not
# yours). PIPELINE_DATA_DIR moves it; the default is data/ beside this file.
DATA_DIR = Path(os.environ.get(pipeline.DATA_DIR_ENV) or Path(__file__).resolve().parent / "data")

# Step 1: the retry policy every task inherits.
### BEGIN SOLUTION
DEFAULT_ARGS = {
    "owner": "mlops-course",
    "retries": 2,  # a transient failure (a busy disk, a flaky source) gets two more tries
    "retry_delay": timedelta(seconds=30),
}
### END SOLUTION


# Step 2: the DAG: a @dag function named course_pipeline, scheduled @daily from 2024-01-01, catchup off,
# using DEFAULT_ARGS, with five @task functions (ingest, validate, engineer_features, train, evaluate) that
# each call the matching mlinfra.pipeline function for the run's date `ds`, chained in that order.
### BEGIN SOLUTION
@dag(
    dag_id="course_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,  # unpausing must not launch one run per day since 2024
    default_args=DEFAULT_ARGS,
    tags=["mlops-course", "lab1.1"],
    doc_md=__doc__,
)
def course_pipeline():
    @task
    def ingest(ds: str | None = None) -> str:
        return pipeline.ingest(DATA_DIR, ds)

    @task
    def validate(raw_path: str, ds: str | None = None) -> dict:
        return pipeline.validate(DATA_DIR, ds)

    @task
    def engineer_features(validation: dict, ds: str | None = None) -> dict:
        return pipeline.engineer_features(DATA_DIR, ds)

    @task
    def train(features: dict, ds: str | None = None) -> dict:
        return pipeline.train(DATA_DIR, ds, epochs=1)

    @task
    def evaluate(trained: dict, ds: str | None = None) -> dict:
        return pipeline.evaluate(DATA_DIR, ds, trained["checkpoint"])

    # Passing each result to the next task is what makes the dependencies: ingest >> validate >> ...
    evaluate(train(engineer_features(validate(ingest()))))


course_pipeline()
### END SOLUTION
