"""`autograder grade --engine airflow`: grade a class as an Airflow DAG, one mapped task per student.

Which engine to use:

- `--engine local` (the default): the warm-pool engine on this machine. Fastest per student, no services, nothing
  to set up. Use it for a class that one machine grades in acceptable time (a laptop does a light lab at well under
  a second a student, a PyTorch lab at a few seconds a student).
- `--engine airflow --executor local`: the same grading run by Airflow's own `dag.test()` in the course's Airflow
  home (SQLite). Students are graded one after another in one process, so it is slower than the local engine; what
  it adds is Airflow's record of the run: per-task logs, retries and the grid view of the DAG run in the UI that
  `make airflow` starts (same Airflow home). Use it to watch and audit a run, or to try the DAG before scaling out.
- `--engine airflow --executor standalone`: the run is triggered on the Airflow `make airflow` runs for the same
  home, through its REST API; its scheduler's LocalExecutor grades a few students at once and the instructor
  watches the grid view live. The DAG reaches it through a second DAG bundle (`<AIRFLOW_HOME>/grading-dags/`).
- `--engine airflow --executor celery`: the grade tasks go to Celery workers through a Redis broker, with a
  PostgreSQL metadata database. Workers on other machines share the submissions and output folders (NFS or any
  shared mount at the same path). Use it when one machine is not enough: cost per student is the grading itself
  plus Airflow's task overhead (a few seconds of a worker's core: a task process, Airflow's imports, the
  execution API calls), paid in parallel across every worker.
- KubernetesExecutor: a recipe, not a flag here (docs/grading-at-scale.md): the course image with the sandbox as
  each task's image, submissions and outputs on a shared volume.

All engines call the same functions (`prepare_batch`, `grade_student`, `finish_batch` of
`autograder.grading.engine`) and write the same grades.csv, summary.json and feedback/.

How it runs: this module copies the DAG (`airflow_dag.py`) into `<AIRFLOW_HOME>/grading-dags/`, then starts a
child Python process with the Airflow settings in its environment (Airflow reads them once, at import), which
migrates the database when needed and calls `dag.test(run_conf=...)`, with `use_executor=True` for Celery (the
tasks then run on the workers, which report through an execution API server the child starts on 127.0.0.1). The
child prints progress lines that this process turns into a bar; the merge task's result (the class's Outcome)
comes back through Airflow's XCom, never through a file a student could write.

    python -m autograder.grading.airflow_engine worker NAME [--home DIR] [--database URL] [--broker URL]
        starts one Celery worker for the grading queue in the foreground (what a second machine runs; it needs
        AUTOGRADER_AIRFLOW_API_PORT and AUTOGRADER_AIRFLOW_SECRET set as for the grading run).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfra.base.errors import UsageError
from mlinfra.base.results import Outcome

DAG_ID = "autograder_grade_class"
DAG_FILE_NAME = "autograder_grade_class.py"
EXECUTORS = ("local", "celery", "standalone")
DEFAULT_QUEUE = "autograder-grading"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
_DAG_SOURCE = Path(__file__).with_name("airflow_dag.py")


# ---------------------------------------------------------------------------------------------- where Airflow is


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
    """The course's Airflow home: $AIRFLOW_HOME, else .state/airflow in the workbook (what `make airflow` uses)."""
    env = os.environ.get("AIRFLOW_HOME")
    if env:
        return Path(env).resolve()
    from mlinfra.base.paths import repo_root, state_dir

    return state_dir(repo_root()) / "airflow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _with_psycopg2(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return ("postgresql+psycopg2" if scheme == "postgresql" else scheme) + sep + rest


def airflow_env(dep: Deployment) -> dict[str, str]:
    """This process's environment minus every Airflow setting, plus the deployment's: nothing leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if p)
    env.update({
        "AIRFLOW_HOME": str(dep.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dep.dags),
        # The DAG registers under the bundle name `make airflow` gives this folder (mlinfra/airflow_local.py), so
        # runs from either show under one DAG; "dags-folder" stays, as dag.test(use_executor=True) names it.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "grading", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(dep.dags), "refresh_interval": 10}},
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}},
        ]),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _with_psycopg2(dep.db_url),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(dep.logs),
        # Tokens the executor signs for each task must verify on the execution API server: one shared secret.
        "AIRFLOW__API_AUTH__JWT_SECRET": dep.jwt_secret,
        "AIRFLOW__CORE__PARALLELISM": "8",
    })
    if dep.executor == "celery":
        assert dep.database is not None
        env.update({
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": dep.broker,
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: name the driver this venv has.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _with_psycopg2(dep.database),
            # One task at a time per worker process, none held back: students spread over every worker.
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AUTOGRADER_GRADING_QUEUE": dep.queue,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{dep.api_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(dep.api_port),
        })
    return env


def install_dag(dep: Deployment) -> Path:
    """The grading DAG in the deployment's DAGs folder (rewritten when this package's copy changed)."""
    dep.dags.mkdir(parents=True, exist_ok=True)
    dest = dep.dags / DAG_FILE_NAME
    source = _DAG_SOURCE.read_text()
    if not dest.is_file() or dest.read_text() != source:
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(source)
        tmp.replace(dest)
    return dest


# ---------------------------------------------------------------------------------------------- processes


def start_api_server(dep: Deployment, log: Path) -> subprocess.Popen[bytes]:
    """Airflow's execution API (the only part Celery workers talk to), on 127.0.0.1 only."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--apps", "execution", "--host", "127.0.0.1",
             "--port", str(dep.api_port), "--workers", "1"],
            env=airflow_env(dep), cwd=dep.home, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for_api_server(dep: Deployment, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise UsageError(f"Airflow's API server exited ({proc.returncode}) before it answered: {_tail(log)}")
        try:
            with urllib.request.urlopen(f"{dep.api_url}/execution/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)  # readiness probe
    raise UsageError(f"Airflow's API server did not answer on {dep.api_url} within {timeout:.0f} s; see {log}")


def start_celery_worker(dep: Deployment, name: str, log: Path) -> subprocess.Popen[bytes]:
    """One Celery worker process for the grading queue, in its own process group (stop it with stop_process)."""
    install_dag(dep)
    dep.logs.mkdir(parents=True, exist_ok=True)
    env = airflow_env(dep)
    env["AUTOGRADER_WORKER_NAME"] = name  # each grade task records which worker ran it
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "airflow", "celery", "worker", "--celery-hostname", f"{name}@%h",
             "--queues", dep.queue, "--concurrency", "1", "--skip-serve-logs", "--without-gossip",
             "--without-mingle"],
            env=env, cwd=dep.home, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for_worker(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until Celery logs that the worker is ready to take tasks."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if proc.poll() is not None:
            raise UsageError(f"a Celery worker exited ({proc.returncode}) before it was ready: {_tail(log)}")
        if log.is_file() and " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.5)  # readiness probe
    raise UsageError(f"a Celery worker was not ready within {timeout:.0f} s; see {log}")


def stop_process(proc: subprocess.Popen[Any], wait: float = 20) -> None:
    """Stop a process started here and its group (started with start_new_session): TERM, then KILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever the group still holds (task processes, kernels)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(log: Path, lines: int = 1) -> str:
    if not log.is_file():
        return "no output"
    text = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(text[-lines:])[:300] if text else "no output"


# ---------------------------------------------------------------------------------------------- PostgreSQL

# A migrated, empty Airflow database kept as a template: a scratch database cloned from it is ready in well
# under a second, where migrating a new one takes 10-15 s. Named per Airflow version.
def template_name() -> str:
    from importlib.metadata import version

    return "autograder_airflow_template_" + version("apache-airflow-core").replace(".", "_")


def _admin(server_url: str) -> Any:
    """An autocommit connection to the server's maintenance database (CREATE/DROP DATABASE need one); closed
    when its `with` block ends."""
    from contextlib import closing

    import psycopg2

    url = _with_psycopg2(server_url).replace("postgresql+psycopg2://", "postgresql://")
    conn = psycopg2.connect(url, connect_timeout=3)
    conn.autocommit = True
    return closing(conn)


def database_url(server_url: str, name: str) -> str:
    """server_url with its database replaced by `name` (server_url: postgresql+psycopg2://USER@HOST:PORT/DB)."""
    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def ensure_template(server_url: str, home: Path) -> str:
    """The migrated template database on this server, created (migrated under a temporary name, then renamed,
    so a half-made one never counts) when missing."""
    name = template_name()
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return name
        building = f"{name}_building_{os.getpid()}"
        cur.execute(f'CREATE DATABASE "{building}"')
    dep = Deployment(home=home, executor="local", database=database_url(server_url, building))
    home.mkdir(parents=True, exist_ok=True)
    install_dag(dep)
    done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=airflow_env(dep), cwd=home,
                          capture_output=True, text=True, check=False)
    with _admin(server_url) as conn, conn.cursor() as cur:
        if done.returncode != 0:
            cur.execute(f'DROP DATABASE IF EXISTS "{building}"')
            raise UsageError(f"migrating an Airflow database on {server_url} failed: {done.stderr.strip()[-300:]}")
        cur.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


def create_scratch_database(server_url: str, name: str, home: Path) -> str:
    """A new database `name` cloned from the migrated template; returns its URL. Drop it with drop_database."""
    template = ensure_template(server_url, home)
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def forget_queue(broker: str, queue: str) -> None:
    """Remove a Celery queue of our own from a Redis broker (its pending messages and kombu's binding key), so
    scratch runs with queues of their own leave nothing behind."""
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=3)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()


def services_answer(server_url: str, broker: str = DEFAULT_BROKER) -> str:
    """'' when the PostgreSQL server and the Redis broker both answer, else why not (one line)."""
    try:
        with _admin(server_url):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means: no database here
        return f"no PostgreSQL at {server_url.split('@')[-1]}: {str(exc).strip().splitlines()[0][:120]}"
    hostport = broker.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return f"the broker at {hostport} is not Redis"
    except OSError as exc:
        return f"no Redis broker at {hostport}: {exc.strerror or exc}"
    return ""


# ---------------------------------------------------------------------------------------------- the engine


def grade_on_airflow(lab_name: str, submissions_dir: Path, out_dir: Path, *, executor: str = "local",
                     airflow_home: Path | None = None, airflow_db: str | None = None, broker: str | None = None,
                     queue: str | None = None, celery_workers: int = 0, sandbox: str = "auto",
                     reveal_hidden: bool = False, keep_work: bool = False, progress: bool = False,
                     timeout: float = 6 * 3600, queued_timeout: float = 600, work_dir: Path | None = None,
                     api_port: int = 0, jwt_secret: str | None = None, **_ignored: Any) -> Outcome:
    """Grade a class through Airflow and return the class's Outcome (the merge task's, one part per student).

    executor "local": dag.test() runs every task in one process, in the Airflow home's own database.
    executor "celery": tasks go to Celery workers on `queue`; `celery_workers` > 0 starts that many here (each a
    separate process, stopped by its process group at the end), 0 uses workers already running elsewhere: give
    them the same api_port and jwt_secret (or set AUTOGRADER_AIRFLOW_API_PORT and AUTOGRADER_AIRFLOW_SECRET).
    """
    submissions_dir = Path(submissions_dir).resolve()
    out_dir = Path(out_dir).resolve()
    if not submissions_dir.is_dir():
        raise UsageError(f"{submissions_dir}: not a folder; give the folder holding one folder or .zip per student")
    dep = deployment(executor, home=airflow_home, database=airflow_db, broker=broker, queue=queue,
                     api_port=api_port, jwt_secret=jwt_secret)
    try:
        dep.home.mkdir(parents=True, exist_ok=True)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{exc.filename}: cannot write there ({exc.strerror}); choose another folder") from exc
    install_dag(dep)
    run_dir = dep.home / "grading-runs" / f"{lab_name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    conf = {"lab": lab_name, "submissions": str(submissions_dir),
            "work_dir": str((work_dir or out_dir / "work").resolve()), "out_dir": str(out_dir),
            "sandbox": sandbox, "reveal_hidden": bool(reveal_hidden), "keep_work": bool(keep_work)}
    spec = {"deployment": dep.to_dict(), "conf": conf, "run_dir": str(run_dir), "queued_timeout": queued_timeout,
            "save_template": _use_sqlite_template(dep)}
    (run_dir / "spec.json").write_text(json.dumps(spec, indent=2))
    workers: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    if executor == "standalone":
        result = _run_on_standalone(dep, conf, progress=progress, timeout=timeout)
        return _outcome(result, dep, run_dir, round(time.monotonic() - started, 2))
    previous = _exit_on_sigterm()
    try:
        for i in range(celery_workers if executor == "celery" else 0):
            log = run_dir / f"celery-worker-{i + 1}.log"
            workers.append(start_celery_worker(dep, f"grader{i + 1}", log))
        result = _run_child(dep, run_dir, progress=progress, timeout=timeout)
    finally:
        for proc in workers:
            stop_process(proc)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return _outcome(result, dep, run_dir, round(time.monotonic() - started, 2))


def _exit_on_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C (so `finally` stops what was started); returns the handler it replaced, or
    None off the main thread (where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)


def _sqlite_template() -> Path | None:
    """Where a migrated, empty SQLite database is kept for new Airflow homes (.state/airflow-grading/)."""
    from importlib.metadata import version

    from mlinfra.base.paths import repo_root, state_dir

    try:
        return state_dir(repo_root()) / "airflow-grading" / f"empty-{version('apache-airflow-core')}.db"
    except UsageError:
        return None


def _sqlite_copy(source: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database (its write-ahead log included), written aside then renamed."""
    import sqlite3
    from contextlib import closing

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(tmp)) as out:
        src.backup(out)
    tmp.replace(dest)


def _use_sqlite_template(dep: Deployment) -> str | None:
    """A new SQLite home starts from the template (migrating costs 5-10 s); returns where the child should save
    the template after migrating, when there is none yet."""
    db_file = dep.home / "airflow.db"
    template = _sqlite_template()
    if dep.database is not None or db_file.exists() or template is None:
        return None
    if template.is_file() and template.stat().st_size > 64 * 1024:  # a migrated Airflow 3 database: ~1 MB
        shutil.copyfile(template, db_file)
        return None
    return str(template)


def _run_child(dep: Deployment, run_dir: Path, *, progress: bool, timeout: float) -> dict[str, Any]:
    log = run_dir / "airflow.log"
    result_file = run_dir / "result.json"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.grading.airflow_engine", "_run", str(run_dir / "spec.json"),
             str(result_file)],
            env=airflow_env(dep), cwd=run_dir, stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL,
            start_new_session=True, text=True,
        )
    reader = threading.Thread(target=_show_progress, args=(proc, progress), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise UsageError(f"the Airflow grading run passed {timeout:.0f} s and was stopped; its log: {log}") from None
    except KeyboardInterrupt:
        stop_process(proc)
        raise
    finally:
        stop_process(proc)  # the child (which stops its API server on SIGTERM) and any task process it left
        reader.join(timeout=5)
    if not result_file.is_file():
        raise UsageError(f"the Airflow grading run stopped without a result (exit {proc.returncode}): "
                         f"{_tail(log)}; full log: {log}")
    return json.loads(result_file.read_text())


def _show_progress(proc: subprocess.Popen[str], bar_wanted: bool) -> None:
    """The child's lines: `total N`, `done K` (a bar with ETA on a terminal, else a line each time a student is
    done, for logs), anything else goes to stderr as it is."""
    assert proc.stdout is not None
    bar = None
    total = 0
    for line in proc.stdout:
        line = line.strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        if word == "total":
            total = int(rest)
            if bar_wanted and bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, desc="grading on Airflow", unit="student", file=sys.stderr)
        elif word == "done" and bar is not None:
            bar.n = int(rest)
            bar.refresh()
        elif word == "done":
            print(f"airflow: {rest}/{total} student(s) graded", file=sys.stderr, flush=True)
        else:
            print(f"airflow: {line}", file=sys.stderr, flush=True)
    if bar is not None:
        bar.close()


def _outcome(result: dict[str, Any], dep: Deployment, run_dir: Path, seconds: float) -> Outcome:
    if result.get("error"):
        raise UsageError(f"the Airflow grading run could not run: {result['error']}; log: {run_dir / 'airflow.log'}")
    if result.get("merge") is None:
        order = {"prepare": 0, "grade": 1, "merge": 2}  # the first task that failed is the one to read
        tasks = sorted(result.get("tasks", []), key=lambda t: (order.get(t["task_id"], 3), t["map_index"]))
        failed = [t for t in tasks if t["state"] == "failed"] or [t for t in tasks if t["state"] != "success"]
        first = failed[0] if failed else {"task_id": "?", "log": run_dir / "airflow.log"}
        why = f": {first['error']}" if first.get("error") else ""
        raise UsageError(f"the grading DAG run ended {result.get('state')} without merged grades: task "
                         f"{first['task_id']} {first.get('state', '')}{why}; see its log {first.get('log')}")
    outcome = Outcome.from_dict(result["merge"])
    outcome.data["seconds"] = seconds  # the whole run, start-up included (summary.json has the DAG run's own)
    grade_tasks = [t for t in result.get("tasks", []) if t["task_id"] == "grade"]
    outcome.data["airflow"] = {
        "executor": dep.executor, "home": str(dep.home), "database": dep.db_url.split("@")[-1],
        "dag_id": DAG_ID, "run_id": result.get("run_id"), "state": result.get("state"), "seconds": seconds,
        "dag_test_seconds": result.get("seconds"), "run_dir": str(run_dir),
        "hosts": sorted({t["hostname"] for t in grade_tasks if t.get("hostname")}),
        "workers": sorted({p.data.get("airflow", {}).get("worker") or "" for p in outcome.parts} - {""}),
        "tasks": result.get("tasks", []),
    }
    return outcome


# ---------------------------------------------------------------------------------------------- `make airflow`


def _api(url: str, method: str = "GET", body: Any = None, token: str = "", timeout: float = 30) -> Any:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json",
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:200]
        raise UsageError(f"Airflow's API answered {exc.code} to {method} {url}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"Airflow's API at {url} did not answer ({exc}); is `make airflow` running?") from None
    return json.loads(raw) if raw else None


def _run_on_standalone(dep: Deployment, conf: dict[str, Any], *, progress: bool, timeout: float,
                       port: int = 0) -> dict[str, Any]:
    """Trigger the DAG on the Airflow `make airflow` runs for this home (its scheduler and LocalExecutor run the
    tasks, several at once; the run shows in its UI) and wait for it through the REST API."""
    from mlinfra import airflow_local

    local = airflow_local.resolve(home=dep.home, port=port or int(os.environ.get("AUTOGRADER_AIRFLOW_PORT", "8080")))
    if not airflow_local.running_pid(local) or not airflow_local.healthy(airflow_local.health(local)):
        raise UsageError(f"no healthy Airflow runs for {dep.home} at {local.url}: start it with `make airflow`, "
                         "or grade with --executor local")
    users = json.loads(local.password_file.read_text()) if local.password_file.is_file() else {}
    if "admin" not in users:
        raise UsageError(f"{local.password_file}: no admin password; restart Airflow with `make airflow`")
    token = _api(f"{local.url}/auth/token", "POST", {"username": "admin", "password": users["admin"]})["access_token"]
    dags = f"{local.url}/api/v2/dags/{DAG_ID}"
    began = time.monotonic()
    while True:  # the DAG processor looks at the grading bundle every 10 s (mlinfra/airflow_local.py)
        try:
            _api(dags, token=token)
            break
        except UsageError:
            if time.monotonic() - began > 180:
                raise UsageError(f"Airflow at {local.url} has not loaded {DAG_ID} from {dep.dags} after 180 s: "
                                 "restart it with `make airflow-stop && make airflow` (it reads that folder "
                                 "since this version)") from None
            time.sleep(2)  # readiness probe: the DAG appears once parsed
    _api(dags, "PATCH", {"is_paused": False}, token=token)
    run = _api(f"{dags}/dagRuns", "POST", {"logical_date": None, "conf": conf}, token=token)
    run_id = run["dag_run_id"]
    print(f"airflow: run {run_id} of {DAG_ID}: {local.url}/dags/{DAG_ID}/runs/{run_id}", file=sys.stderr,
          flush=True)
    bar = None
    t0 = time.monotonic()
    state = run.get("state")
    while state not in ("success", "failed"):
        if time.monotonic() - t0 > timeout:
            raise UsageError(f"the grading run {run_id} passed {timeout:.0f} s; see it at {local.url}")
        time.sleep(2)  # polling the run's state: the REST API has no push
        state = _api(f"{dags}/dagRuns/{run_id}", token=token).get("state")
        tis = _api(f"{dags}/dagRuns/{run_id}/taskInstances?limit=1000", token=token)["task_instances"]
        grade = [t for t in tis if t["task_id"] == "grade" and t["map_index"] >= 0]
        if progress and grade:
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=len(grade), desc="grading on Airflow", unit="student", file=sys.stderr)
            bar.n = sum(1 for t in grade if t["state"] in ("success", "failed", "upstream_failed", "skipped"))
            bar.refresh()
    if bar is not None:
        bar.close()
    tis = _api(f"{dags}/dagRuns/{run_id}/taskInstances?limit=1000", token=token)["task_instances"]
    tasks = [{"task_id": t["task_id"], "map_index": t["map_index"], "student": t.get("rendered_map_index"),
              "state": t["state"], "try_number": t["try_number"], "hostname": t.get("hostname"),
              "duration": t.get("duration"), "log": f"{local.url}/dags/{DAG_ID}/runs/{run_id}"} for t in tis]
    merge = None
    try:
        entry = _api(f"{dags}/dagRuns/{run_id}/taskInstances/merge/xcomEntries/return_value?deserialize=true",
                     token=token)
        merge = entry.get("value")
        if isinstance(merge, str):
            merge = json.loads(merge)
    except UsageError:
        merge = None
    return {"run_id": run_id, "state": state, "tasks": tasks, "merge": merge,
            "seconds": round(time.monotonic() - t0, 2)}


# ---------------------------------------------------------------------------------------------- the child


def _child(spec_path: Path, result_path: Path) -> int:
    """Runs with the deployment's Airflow settings in its environment (set before Airflow is imported)."""
    spec = json.loads(spec_path.read_text())
    dep = Deployment.from_dict(spec["deployment"])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # so `finally` stops the API server
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # Airflow's own chatter goes to the log, not the progress channel
    result: dict[str, Any] = {}
    api: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        from airflow.dag_processing.dagbag import DagBag
        from airflow.utils import db

        progress.write(f"{dep.executor} executor; database {dep.db_url.split('@')[-1]}\n")
        db.initdb()  # creates a new database, upgrades an old one, a no-op check on a current one
        result["migrate_seconds"] = round(time.perf_counter() - t0, 2)
        if spec.get("save_template"):  # a fresh SQLite database, migrated and still empty: keep a copy
            _sqlite_copy(dep.home / "airflow.db", Path(spec["save_template"]))
        bag = DagBag(dag_folder=str(dep.dags / DAG_FILE_NAME), safe_mode=False)
        if DAG_ID not in bag.dags:
            result["error"] = f"the grading DAG did not load: {dict(bag.import_errors) or 'no DAG in the file'}"
            return 0
        dag = bag.dags[DAG_ID]
        if dep.executor == "celery":
            log = Path(spec["run_dir"]) / "api-server.log"
            api = start_api_server(dep, log)
            wait_for_api_server(dep, api, log)
        celery = dep.executor == "celery"
        watcher = _Watcher(progress, float(spec.get("queued_timeout", 600)) if celery else None, dep.queue)
        watcher.start()
        t1 = time.perf_counter()
        try:
            dr = dag.test(run_conf=spec["conf"], use_executor=celery)
        except KeyboardInterrupt:
            if not watcher.stalled:
                raise
            result["error"] = watcher.stalled
            return 0
        finally:
            watcher.stop()
        result["seconds"] = round(time.perf_counter() - t1, 2)
        result.update(_collect(dr, dep))
    except UsageError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line; the log has the traceback
        import traceback

        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if api is not None:
            stop_process(api)
        result_path.write_text(json.dumps(result, indent=2, default=str))
    return 0


class _Watcher(threading.Thread):
    """Counts finished grade tasks of the running DAG run every second: `total N` once, then `done K`. With an
    executor, a task that waits `queued_timeout` seconds with no worker taking it stops the run (SIGINT to this
    process, which dag.test() sees as Ctrl-C) with `stalled` saying why."""

    def __init__(self, out: Any, queued_timeout: float | None = None, queue: str = "") -> None:
        super().__init__(daemon=True)
        self.out = out
        self.halt = threading.Event()
        self.queued_timeout = queued_timeout
        self.queue = queue
        self.stalled = ""
        self.queued_since: float | None = None

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        self.poll()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            try:
                self.poll()
            except Exception:  # noqa: BLE001, S112 - progress is best effort; the run itself reports errors
                continue

    def poll(self) -> None:
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import State
        from sqlalchemy import select

        with create_session() as session:
            run = session.scalars(select(DagRun).where(DagRun.dag_id == DAG_ID)
                                  .order_by(DagRun.id.desc()).limit(1)).first()
            if run is None:
                return
            all_states = session.scalars(select(TaskInstance.state).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)).all()
            states = session.scalars(select(TaskInstance.state).where(
                TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == "grade", TaskInstance.map_index >= 0)).all()
        self.check_stall(all_states)
        if not states:
            return
        if not getattr(self, "total", None):
            self.total = len(states)
            self.out.write(f"total {self.total}\n")
        done = sum(1 for s in states if s in State.finished)
        if done != getattr(self, "done", -1):
            self.done = done
            self.out.write(f"done {done}\n")


    def check_stall(self, states: Sequence[Any]) -> None:
        """Queued tasks and none running: no worker is taking them (none started, wrong queue, broker down)."""
        if self.queued_timeout is None or self.stalled:
            return
        names = {str(getattr(s, "value", s)) for s in states}
        if "queued" in names and "running" not in names:
            self.queued_since = self.queued_since or time.monotonic()
            if time.monotonic() - self.queued_since > self.queued_timeout:
                self.stalled = (f"no Celery worker took a task from queue {self.queue!r} in "
                                f"{self.queued_timeout:.0f} s: start workers for that queue (--celery-workers N, or "
                                f"`python -m autograder.grading.airflow_engine worker NAME` where they run) and "
                                f"check the broker")
                os.kill(os.getpid(), signal.SIGINT)
        else:
            self.queued_since = None


def _collect(dr: Any, dep: Deployment) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks = []
    with create_session() as session:
        for ti in dr.get_task_instances(session=session):
            tasks.append({
                "task_id": ti.task_id, "map_index": ti.map_index, "student": ti.rendered_map_index,
                "state": str(getattr(ti.state, "value", ti.state)), "try_number": ti.try_number,
                "hostname": ti.hostname, "duration": ti.duration,
                "log": str(dep.logs / f"dag_id={DAG_ID}" / f"run_id={dr.run_id}" / f"task_id={ti.task_id}"
                           / (f"map_index={ti.map_index}" if ti.map_index >= 0 else "")),
            })
        row = session.scalars(XComModel.get_many(run_id=dr.run_id, key="return_value", dag_ids=DAG_ID,
                                                 task_ids="merge")).first()
        merge = XComModel.deserialize_value(row) if row is not None else None
        errors = {r.task_id: XComModel.deserialize_value(r) for r in session.scalars(
            XComModel.get_many(run_id=dr.run_id, key="error", dag_ids=DAG_ID, task_ids=["prepare", "merge"]))}
    for t in tasks:
        if t["task_id"] in errors:
            t["error"] = errors[t["task_id"]]
    return {"run_id": dr.run_id, "state": str(getattr(dr.state, "value", dr.state)),
            "tasks": sorted(tasks, key=lambda t: (t["task_id"], t["map_index"])), "merge": merge}


# ---------------------------------------------------------------------------------------------- grade's options


def add_airflow_options(parser: argparse.ArgumentParser) -> None:
    """The options `autograder grade` offers for --engine airflow (they live here, beside the engine)."""
    group = parser.add_argument_group("with --engine airflow (docs/grading-at-scale.md)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local (default): Airflow's dag.test() in the course's Airflow home, one student after "
                       "another; celery: tasks go to Celery workers (needs --airflow-db and a Redis broker); "
                       "standalone: trigger the run on the Airflow `make airflow` runs, and watch it in its UI")
    group.add_argument("--airflow-home", type=Path, metavar="DIR",
                       help="AIRFLOW_HOME (default: $AIRFLOW_HOME, else .state/airflow, what `make airflow` uses)")
    group.add_argument("--airflow-db", metavar="URL",
                       help="metadata database, e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/grading "
                       "(default SQLite in the Airflow home; or set AUTOGRADER_AIRFLOW_DB)")
    group.add_argument("--broker", metavar="URL", help=f"Celery broker (default {DEFAULT_BROKER})")
    group.add_argument("--queue", metavar="NAME", default=DEFAULT_QUEUE,
                       help=f"Celery queue the workers listen on (default {DEFAULT_QUEUE})")
    group.add_argument("--celery-workers", type=int, default=0, metavar="N",
                       help="start N Celery workers on this machine for the run (default 0: use workers already "
                       "running, started with `python -m autograder.grading.airflow_engine worker`)")


def airflow_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for grade_on_airflow from the options above."""
    if getattr(args, "celery_workers", 0) < 0:
        raise UsageError(f"--celery-workers {args.celery_workers}: give 0 or more")
    return {"executor": getattr(args, "executor", "local"), "airflow_home": getattr(args, "airflow_home", None),
            "airflow_db": getattr(args, "airflow_db", None), "broker": getattr(args, "broker", None),
            "queue": getattr(args, "queue", None), "celery_workers": getattr(args, "celery_workers", 0),
            "progress": sys.stderr.isatty()}


# ---------------------------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_run"]:
        return _child(Path(argv[1]), Path(argv[2]))
    parser = argparse.ArgumentParser(
        prog="python -m autograder.grading.airflow_engine",
        description="Start one Celery worker for `autograder grade --engine airflow --executor celery`, in the "
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
        stop_process(proc)
        return 130


if __name__ == "__main__":
    sys.exit(main())
