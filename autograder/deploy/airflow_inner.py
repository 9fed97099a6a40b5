"""`python -m autograder.deploy.airflow_inner`: what the phase1-lab1 deploy check runs inside the grading sandbox
(started by airflow_run.py through `python -m autograder.deploy _inner`, which relays the sandbox's API port to the
grader). With the private AIRFLOW_HOME and settings already in its environment, it parses the DAGs folder once into
the metadata database (`airflow dags reserialize`: the scheduler and API server never import DAG files), then runs
Airflow's scheduler (LocalExecutor) and API server until either exits; the grader stops it all by process id. Not
for use by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    home = Path(os.environ["AIRFLOW_HOME"])
    port = os.environ["AIRFLOW__API__PORT"]
    airflow = [sys.executable, "-m", "airflow"]
    with (home / "airflow.out").open("ab") as log:
        subprocess.run([*airflow, "dags", "reserialize"], stdout=log, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=300, check=False)
        procs = [subprocess.Popen([*airflow, "scheduler"], stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL),
                 subprocess.Popen([*airflow, "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1"],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)]
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)  # waiting on two children at once: the grader ends everything by pid
    return next(p.returncode for p in procs if p.returncode is not None) or 1


if __name__ == "__main__":
    sys.exit(main())
