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
# YOUR CODE HERE
raise NotImplementedError()


# Step 2: the DAG: a @dag function named course_pipeline, scheduled @daily from 2024-01-01, catchup off,
# using DEFAULT_ARGS, with five @task functions (ingest, validate, engineer_features, train, evaluate) that
# each call the matching mlinfra.pipeline function for the run's date `ds`, chained in that order.
# YOUR CODE HERE
raise NotImplementedError()
