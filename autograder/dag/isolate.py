"""An isolated Airflow for one check: its own AIRFLOW_HOME (SQLite) in a temp folder, a worker process in its
own process group, a timeout, and a migrated empty database kept as a template so only the first run pays
for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from mlinfra.base.procs import stop_group

TEMPLATE_ENV = "AUTOGRADER_AIRFLOW_TEMPLATE"  # a folder for the migrated template DB (tests point it at tmp)
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


@dataclass
class WorkerOutcome:
    result: dict[str, Any] | None  # None when the worker timed out
    timed_out: bool
    home: Path
    log: Path


def template_db() -> Path | None:
    """Where the migrated empty database is cached, per Airflow version: .state/ in the workbook, or none."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tag = version("apache-airflow-core")
    except PackageNotFoundError:
        raise UsageError(
            "Airflow is not installed in this Python: run `make setup` (or pip install apache-airflow)"
        ) from None
    folder = os.environ.get(TEMPLATE_ENV)
    if not folder:
        from autograder.paths import repo_root, state_dir

        try:
            folder = str(state_dir(repo_root()) / "airflow-dag")
        except UsageError:
            return None
    return Path(folder) / f"empty-{tag}.db"


def isolated_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """The caller's environment minus every Airflow setting, plus a private home: nothing leaks in or out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
    )
    return env


def run_worker(
    spec: dict[str, Any], *, timeout: float, keep_home: bool, on_progress: Callable[[str], None]
) -> WorkerOutcome:
    dag_file = Path(spec["dag_file"])
    home = Path(tempfile.mkdtemp(prefix="autograder-dag-"))
    log = home / "worker.log"
    template = template_db()
    migrated = False
    if spec["run"] and template is not None and template.is_file():
        shutil.copyfile(template, home / "airflow.db")
        migrated = True
    spec = {**spec, "log": str(log), "migrated": migrated, "template": str(template) if template else None}
    (home / "spec.json").write_text(json.dumps(spec, indent=2))
    result_file = home / "result.json"
    with log.open("ab") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.dag.worker", str(home / "spec.json"), str(result_file)],
            stdout=subprocess.PIPE,
            stderr=log_fh,
            stdin=subprocess.DEVNULL,
            cwd=home,
            env=isolated_env(home, dag_file.parent),
            start_new_session=True,
            text=True,
        )
    reader = threading.Thread(target=_pump, args=(proc, on_progress), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        stop_group(proc, 10)  # also reaps anything the DAG's tasks started
    reader.join(timeout=5)
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    if result is None and not timed_out:
        tail = _tail(log)
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)
        raise UsageError(
            f"the Airflow worker for {dag_file} stopped without a result (exit {proc.returncode}): "
            f"{tail or 'no output'}; rerun with --keep-home to keep its log"
        )
    if not keep_home:
        shutil.rmtree(home, ignore_errors=True)
    return WorkerOutcome(result=result, timed_out=timed_out, home=home, log=log)


def _pump(proc: subprocess.Popen[str], on_progress: Callable[[str], None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            on_progress(line.strip())


def _tail(log: Path) -> str:
    if not log.is_file():
        return ""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
