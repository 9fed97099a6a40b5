"""`python -m autograder.deploy.airflow_inner`: what the phase1-lab1 deploy check runs inside the grading sandbox
(started by airflow_check.py through `python -m autograder.deploy _inner`, which relays the sandbox's API port to the
grader). With the private AIRFLOW_HOME and settings already in its environment, it runs Airflow's scheduler
(LocalExecutor) and API server until either exits, and meanwhile parses the DAGs folder once into the metadata
database (`airflow dags reserialize`: the scheduler and API server never import DAG files; no DAG processor runs),
then writes reserialize.done in the home. The grader stops it all by process id. Not for use by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

DONE = "reserialize.done"  # written once the DAGs folder has been parsed into the database


def main() -> int:
    from mlinfra import airflow_home

    home = Path(os.environ["AIRFLOW_HOME"])
    port = os.environ["AIRFLOW__API__PORT"]
    log = home / "airflow.out"

    def start(*args: str) -> subprocess.Popen[bytes]:  # in this process's group: the grader kills the tree
        return airflow_home.start(args, env=None, cwd=None, log=log, own_group=False)

    # All three start at once (each spends seconds importing Airflow): the servers do not need the DAG yet.
    procs = [start("scheduler"), start("api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1")]
    parse: subprocess.Popen[bytes] | None = start("dags", "reserialize")
    while all(p.poll() is None for p in procs):
        if parse is not None and parse.poll() is not None:
            (home / DONE).write_text(f"{parse.returncode}\n")  # the grader may now look for the DAG
            parse = None
        time.sleep(0.5)  # waiting on several children at once: the grader ends everything by pid
    return next(p.returncode for p in procs if p.returncode is not None) or 1


if __name__ == "__main__":
    sys.exit(main())
