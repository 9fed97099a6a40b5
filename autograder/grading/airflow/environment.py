"""Where the grading Airflow is and what its processes share: the `Deployment` (home, executor, metadata database,
Celery broker and queue, execution API port and secret), the environment every Airflow process of a grading run
is started with (this process's minus every Airflow setting, plus the deployment's), installing the grading DAG
(`autograder/grading/airflow_dag.py`) into `<AIRFLOW_HOME>/grading-dags/`, and a new SQLite home's database (a
copy of mlinfra/airflow_home.py's migrated template). Nothing here imports Airflow.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfra import airflow_home
from mlinfra.base.errors import UsageError
from mlinfra.base.procs import free_port

DAG_ID = "autograder_grade_class"
DAG_FILE_NAME = "autograder_grade_class.py"
EXECUTORS = ("local", "celery", "standalone")
DEFAULT_QUEUE = "autograder-grading"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DAG_SOURCE = Path(__file__).resolve().parents[1] / "airflow_dag.py"


@dataclass
class Deployment:
    """Everything the grading processes (this one's child, the API server, the workers) must agree on."""

    home: Path
    executor: str = "local"
    database: str | None = None  # SQLAlchemy URL; None: SQLite in home (the local executor only)
    broker: str = DEFAULT_BROKER
    queue: str = DEFAULT_QUEUE
    api_port: int = 0  # the execution API server's port on 127.0.0.1 (Celery); 0: pick a free one
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def dags(self) -> Path:
        return self.home / "grading-dags"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def db_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'airflow.db'}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def to_dict(self) -> dict[str, Any]:
        return {"home": str(self.home), "executor": self.executor, "database": self.database,
                "broker": self.broker, "queue": self.queue, "api_port": self.api_port,
                "jwt_secret": self.jwt_secret}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Deployment:
        return cls(**{**raw, "home": Path(raw["home"])})


def default_home() -> Path:
    """The grading Airflow's home: $AUTOGRADER_AIRFLOW_HOME, else .state/airflow-grading/home. Never the course's
    $AIRFLOW_HOME (`make airflow`'s, which loads the learner's DAG lab): grading and learners' DAGs never share
    an Airflow (mlinfra/airflow_local.py `--grading`)."""
    from mlinfra.airflow_local import grading_home

    return grading_home()


def deployment(executor: str = "local", *, home: Path | None = None, database: str | None = None,
               broker: str | None = None, queue: str | None = None, api_port: int = 0,
               jwt_secret: str | None = None) -> Deployment:
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor}: unknown; use one of {', '.join(EXECUTORS)}")
    database = database or os.environ.get("AUTOGRADER_AIRFLOW_DB") or None
    if executor == "celery" and not (database or "").startswith("postgresql"):
        raise UsageError("--executor celery needs a PostgreSQL metadata database: give --airflow-db "
                         "postgresql+psycopg2://USER@HOST:5432/DB (or set AUTOGRADER_AIRFLOW_DB); "
                         "see docs/grading-at-scale.md")
    # Workers on other machines must know the execution API's port and the secret its tokens are signed with:
    # fix both through the environment for such a run (docs/grading-at-scale.md), else they are per run.
    api_port = api_port or int(os.environ.get("AUTOGRADER_AIRFLOW_API_PORT") or 0)
    dep = Deployment(home=(home or default_home()).resolve(), executor=executor, database=database,
                     broker=broker or os.environ.get("AUTOGRADER_CELERY_BROKER") or DEFAULT_BROKER,
                     queue=queue or DEFAULT_QUEUE, api_port=api_port or (free_port() if executor == "celery" else 0))
    secret = jwt_secret or os.environ.get("AUTOGRADER_AIRFLOW_SECRET")
    if secret:
        dep.jwt_secret = secret
    return dep


def with_psycopg2(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return ("postgresql+psycopg2" if scheme == "postgresql" else scheme) + sep + rest


def airflow_env(dep: Deployment) -> dict[str, str]:
    """This process's environment minus every Airflow setting, plus the deployment's: nothing leaks in."""
    settings = {
        # The DAG registers under the bundle name `make airflow` gives this folder (mlinfra/airflow_local.py), so
        # runs from either show under one DAG; "dags-folder" stays, as dag.test(use_executor=True) names it.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "grading", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(dep.dags), "refresh_interval": 10}},
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}},
        ]),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(dep.logs),
        # Tokens the executor signs for each task must verify on the execution API server: one shared secret.
        "AIRFLOW__API_AUTH__JWT_SECRET": dep.jwt_secret,
        "AIRFLOW__CORE__PARALLELISM": "8",
    }
    if dep.executor == "celery":
        assert dep.database is not None
        settings.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": dep.broker,
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: name the driver this venv has.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + with_psycopg2(dep.database),
            # One task at a time per worker process, none held back: students spread over every worker.
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{dep.api_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(dep.api_port),
        })
    env = airflow_home.environment(dep.home, dep.dags, settings, database=with_psycopg2(dep.db_url),
                                   venv_first=True, workbook_on_path=True)
    if dep.executor == "celery":
        env["AUTOGRADER_GRADING_QUEUE"] = dep.queue
    return env


def install_dag(dep: Deployment) -> Path:
    """The grading DAG in the deployment's DAGs folder (rewritten when this package's copy changed)."""
    dep.dags.mkdir(parents=True, exist_ok=True)
    dest = dep.dags / DAG_FILE_NAME
    source = DAG_SOURCE.read_text()
    if not dest.is_file() or dest.read_text() != source:
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(source)
        tmp.replace(dest)
    return dest


def new_sqlite_database(dep: Deployment) -> None:
    """A new SQLite home starts from the migrated template (mlinfra/airflow_home.py) instead of migrating."""
    if dep.database is None and not (dep.home / airflow_home.DB_FILE).exists():
        airflow_home.new_database(dep.home)
