"""An isolated Airflow for one check: its own AIRFLOW_HOME (SQLite) in a temp folder, a worker process in its
own process group, a timeout. The environment and the database (a copy of the migrated template, so only the first
run pays for migrating) come from mlinfra/airflow_home.py.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from mlinfra import airflow_home


@dataclass
class WorkerOutcome:
    result: dict[str, Any] | None  # None when the worker timed out
    timed_out: bool
    home: Path
    log: Path


def run_worker(
    spec: dict[str, Any], *, timeout: float, keep_home: bool, on_progress: Callable[[str], None]
) -> WorkerOutcome:
    dag_file = Path(spec["dag_file"])
    template, migrate_s = None, None
    if spec["run"]:  # dag.test() needs a migrated database; loading the DAG does not
        began = time.monotonic()
        made = airflow_home.is_migrated(airflow_home.template_path())
        template = airflow_home.template(on_progress)
        migrate_s = None if made else round(time.monotonic() - began, 2)
    home = Path(tempfile.mkdtemp(prefix="autograder-dag-"))
    log = home / "worker.log"
    if template is not None:
        airflow_home.copy_database(template, home / airflow_home.DB_FILE, immutable=True)
    spec = {**spec, "log": str(log)}
    (home / "spec.json").write_text(json.dumps(spec, indent=2))
    result_file = home / "result.json"
    # The caller's environment minus every Airflow setting, plus a private home: nothing leaks in or out. The
    # worker's group is stopped at the end: that also reaps anything the DAG's tasks started.
    code = airflow_home.run_child(["-m", "autograder.dag.in_airflow", str(home / "spec.json"), str(result_file)],
                                  env=airflow_home.environment(home, dag_file.parent,
                                                               database=airflow_home.sqlite_url(home),
                                                               workbook_on_path=True),
                                  cwd=home, log=log, timeout=timeout, on_line=on_progress, grace=10)
    timed_out = code is None
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    if result is not None and migrate_s is not None:
        result.setdefault("seconds", {})["migrate"] = migrate_s  # this check made the template
    if result is None and not timed_out:
        tail = _tail(log)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        raise UsageError(
            f"the Airflow worker for {dag_file} stopped without a result (exit {code}): "
            f"{tail or 'no output'}; rerun with --keep-home to keep its log"
        )
    if not keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return WorkerOutcome(result=result, timed_out=timed_out, home=home, log=log)


def _tail(log: Path) -> str:
    if not log.is_file():
        return ""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
