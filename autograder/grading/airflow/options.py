"""The options `autograder grade` offers for `--engine airflow` (`--executor`, `--airflow-home`, `--airflow-db`,
`--broker`, `--queue`, `--celery-workers`), kept beside the engine that reads them, and `airflow_options`, which
turns the parsed options into keyword arguments for `grade_on_airflow`. Light to import: `autograder grade
--help` loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autograder.grading.airflow.environment import DEFAULT_BROKER, DEFAULT_QUEUE, EXECUTORS
from mlinfra.base.errors import UsageError


def add_airflow_options(parser: argparse.ArgumentParser) -> None:
    """The options `autograder grade` offers for --engine airflow (they live here, beside the engine)."""
    group = parser.add_argument_group("with --engine airflow (docs/grading-at-scale.md)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local (default): Airflow's dag.test() in the course's Airflow home, one student after "
                       "another; celery: tasks go to Celery workers (needs --airflow-db and a Redis broker); "
                       "standalone: trigger the run on the grading Airflow (`.venv/bin/python -m mlinfra.airflow_local "
                       "start --grading`), and watch it in its UI")
    group.add_argument("--airflow-home", type=Path, metavar="DIR",
                       help="the grading Airflow's home (default: $AUTOGRADER_AIRFLOW_HOME, else "
                       ".state/airflow-grading/home; never the course's, which loads the learners' DAG lab)")
    group.add_argument("--airflow-db", metavar="URL",
                       help="metadata database, e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/grading "
                       "(default SQLite in the Airflow home; or set AUTOGRADER_AIRFLOW_DB)")
    group.add_argument("--broker", metavar="URL", help=f"Celery broker (default {DEFAULT_BROKER})")
    group.add_argument("--queue", metavar="NAME", default=DEFAULT_QUEUE,
                       help=f"Celery queue the workers listen on (default {DEFAULT_QUEUE})")
    group.add_argument("--celery-workers", type=int, default=0, metavar="N",
                       help="start N Celery workers on this machine for the run (default 0: use workers already "
                       "running, started with `.venv/bin/python -m autograder.grading.airflow worker`)")


def airflow_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for grade_on_airflow from the options above."""
    if getattr(args, "celery_workers", 0) < 0:
        raise UsageError(f"--celery-workers {args.celery_workers}: give 0 or more")
    return {"executor": getattr(args, "executor", "local"), "airflow_home": getattr(args, "airflow_home", None),
            "airflow_db": getattr(args, "airflow_db", None), "broker": getattr(args, "broker", None),
            "queue": getattr(args, "queue", None), "celery_workers": getattr(args, "celery_workers", 0),
            "progress": sys.stderr.isatty()}

