"""`python -m autograder.grading.airflow worker NAME`: start one Celery worker for the grading queue in the
foreground (what a second machine runs; docs/grading-at-scale.md). It needs AUTOGRADER_AIRFLOW_API_PORT and
AUTOGRADER_AIRFLOW_SECRET set as for the grading run. `python -m autograder.grading.airflow _run SPEC RESULT` is
the grading run's child process (child.py), started by the engine, never by hand.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from autograder.grading.airflow.environment import DEFAULT_BROKER, DEFAULT_QUEUE, deployment
from autograder.grading.airflow.processes import start_celery_worker
from mlinfra.base.procs import stop_group
from mlinfra.base.runner import EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_run"]:
        from autograder.grading.airflow.child import child_main

        return child_main(Path(argv[1]), Path(argv[2]))
    parser = argparse.ArgumentParser(
        prog="python -m autograder.grading.airflow",
        description="Start one Celery worker for `.venv/bin/autograder grade --engine airflow --executor celery`, in the "
        "foreground (Ctrl-C stops it). Run it on every machine that should grade: each needs this workbook and "
        "its venv at the same path, the submissions and output folders on shared storage, and the same broker, "
        "database and secret as the grading run (docs/grading-at-scale.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="one Celery worker for the grading queue")
    worker.add_argument("name", help="the worker's name (unique per machine)")
    worker.add_argument("--home", type=Path, default=None, help="AIRFLOW_HOME (default: the course's)")
    worker.add_argument("--database", default=None, help="PostgreSQL SQLAlchemy URL (or AUTOGRADER_AIRFLOW_DB)")
    worker.add_argument("--broker", default=None, help=f"Celery broker URL (default {DEFAULT_BROKER})")
    worker.add_argument("--queue", default=DEFAULT_QUEUE, help=f"queue (default {DEFAULT_QUEUE})")
    worker.add_argument("--api-port", type=int, default=int(os.environ.get("AUTOGRADER_AIRFLOW_API_PORT") or 0),
                        help="the grading run's execution API port on this machine's 127.0.0.1 (an SSH tunnel to "
                        "the grading machine; default $AUTOGRADER_AIRFLOW_API_PORT)")
    args = parser.parse_args(argv)
    if not args.api_port or not os.environ.get("AUTOGRADER_AIRFLOW_SECRET"):
        parser.error("set AUTOGRADER_AIRFLOW_API_PORT (or --api-port) and AUTOGRADER_AIRFLOW_SECRET to the grading "
                     "run's values (docs/grading-at-scale.md)")
    dep = deployment("celery", home=args.home, database=args.database, broker=args.broker, queue=args.queue,
                     api_port=args.api_port)
    log = dep.home / f"celery-worker-{args.name}.log"
    proc = start_celery_worker(dep, args.name, log)
    print(f"worker {args.name}: process group {proc.pid}, log {log}; Ctrl-C stops it")
    try:
        return proc.wait()
    except KeyboardInterrupt:
        stop_group(proc)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
