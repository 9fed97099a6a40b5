"""One home for an Airflow, whoever starts it: the environment its processes run with, the migrated empty SQLite
database a new home starts from, and starting an Airflow process and waiting until it is healthy.

Four places run Airflow, each in homes of their own: the course's `make airflow` (mlinfra/airflow_local.py), the
DAG checker (autograder/dag/isolate.py), the grading engine's Airflow (autograder/grading/airflow/) and Lab 1.1's
graded real run in the sandbox (autograder/deploy/airflow_check.py). Airflow reads its settings once, at import, so
each runs it in a child process started with `environment(...)`: the caller's environment minus every Airflow
setting, plus the home's. Nothing here imports Airflow.

Migrating a new database costs 5-10 s (more on a busy machine), so it is done once per Airflow version, on the
trusted side (a scratch home, no DAG loaded), kept as a template, and copied into each new home with
`copy_database`, the one SQLite copy. The course library may not import the grader; the grader imports this.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlinfra.base.errors import UsageError
from mlinfra.base.wait import wait_until

DB_FILE = "airflow.db"
TEMPLATE_ENV = "AUTOGRADER_AIRFLOW_TEMPLATE"  # a folder for the template (tests point it at a tmp folder)
WORKBOOK = Path(__file__).resolve().parents[1]  # the folder holding mlinfra/ and autograder/
MIGRATED_BYTES = 64 * 1024  # a migrated Airflow 3 database is ~1 MB: anything smaller is not one
MIGRATE_S = 300.0
# Settings environment() writes itself from its arguments: given again in `settings`, one would silently win.
OWNED = ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES",
         "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
SETTING = re.compile(r"AIRFLOW__[A-Z0-9]+(?:_[A-Z0-9]+)*__[A-Z0-9]+(?:_[A-Z0-9]+)*")


def sqlite_url(home: Path) -> str:
    """The SQLAlchemy URL of the home's own SQLite database."""
    return f"sqlite:///{home / DB_FILE}"


def environment(home: Path, dags: Path, settings: Mapping[str, str] | None = None, *, database: str | None = None,
                base: Mapping[str, str] | None = None, keep_variables: bool = False, venv_first: bool = False,
                workbook_on_path: bool = False) -> dict[str, str]:
    """The environment an Airflow process of this home starts with: `base` (default this process's environment)
    minus every AIRFLOW* variable, plus AIRFLOW_HOME, the DAGs folder, no example DAGs, the metadata database
    (`database`, a SQLAlchemy URL; None leaves Airflow's own default, SQLite in the home) and `settings`
    (AIRFLOW__SECTION__KEY: value). Nothing of another Airflow leaks in.

    keep_variables keeps the caller's AIRFLOW_VAR_* / AIRFLOW_CONN_* and other non-setting AIRFLOW_ variables (the
    course's own Airflow, where a learner may define connections that way); only AIRFLOW__ settings go.
    venv_first puts this Python's bin folder first on PATH (`airflow standalone` starts its parts as `airflow ...`
    from PATH); workbook_on_path puts the workbook first on PYTHONPATH (child processes run `-m autograder...`)."""
    for key, value in (settings or {}).items():
        if key in OWNED:
            raise UsageError(f"Airflow setting {key}: set by the home itself; pass it as an argument of "
                             "environment() (home, dags, database), not in settings")
        if not SETTING.fullmatch(key):
            raise UsageError(f"Airflow setting {key}: not of the form AIRFLOW__SECTION__KEY (two underscores each "
                             "side of the section), so Airflow would ignore it; fix its spelling")
        if not isinstance(value, str):
            raise UsageError(f"Airflow setting {key}: its value {value!r} is a {type(value).__name__}, and the "
                             "environment holds text only; give it as a string")
    source = os.environ if base is None else base
    env = without_airflow(source, keep_variables=keep_variables)
    if venv_first:
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if workbook_on_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(WORKBOOK), source.get("PYTHONPATH", "")) if p)
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    if database is not None:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database
    env.update(settings or {})
    return env


def without_airflow(environ: Mapping[str, str], *, keep_variables: bool = False) -> dict[str, str]:
    """`environ` minus every AIRFLOW* variable (with keep_variables, minus the AIRFLOW__ settings only)."""
    drop = "AIRFLOW__" if keep_variables else "AIRFLOW"
    return {k: v for k, v in environ.items() if not k.startswith(drop)}


# -- the migrated template database --------------------------------------------------------------------------------

def template_path() -> Path:
    """Where the migrated empty database is kept, per Airflow version: $AUTOGRADER_AIRFLOW_TEMPLATE, else
    .state/airflow-template/ in the workbook, else a temporary folder (outside a workbook)."""
    tag = _airflow_version()
    folder = os.environ.get(TEMPLATE_ENV)
    if not folder:
        from mlinfra.base.paths import repo_root, state_dir

        try:
            folder = str(state_dir(repo_root()) / "airflow-template")
        except UsageError:
            import tempfile

            folder = str(Path(tempfile.gettempdir()) / "mlinfra-airflow-template")
    return Path(folder) / f"empty-{tag}.db"


@functools.cache
def _airflow_version() -> str:
    """The installed Airflow's version, read once per process (a grading worker asks for each student's sandbox)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-core")
    except PackageNotFoundError:
        raise UsageError("Airflow is not installed in this Python: run `make setup` (or pip install "
                         "apache-airflow)") from None


def existing_template() -> Path | None:
    """The migrated template when it was made and Airflow is installed, else None; never makes one (a grading
    sandbox is given this file read-only, so a kernel's `autograder dag --run` copies it instead of migrating)."""
    try:
        path = template_path()
    except UsageError:
        return None
    return path if is_migrated(path) else None


def is_migrated(db_file: Path) -> bool:
    return db_file.is_file() and db_file.stat().st_size > MIGRATED_BYTES


def template(on_progress: Callable[[str], None] | None = None) -> Path:
    """The migrated, empty template database, made the first time: `airflow db migrate` in a scratch home with no
    DAGs (no learner code runs while it is made), under a lock, so two runs starting at once migrate once."""
    import fcntl

    path = template_path()
    if is_migrated(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_migrated(path):  # another run may have made it while this one waited
            if on_progress is not None:
                on_progress("creating the Airflow database (first time only, ~10 s)")
            _migrate_into(path)
    return path


def _migrate_into(target: Path) -> None:
    import shutil
    import tempfile

    migrating = Path(tempfile.mkdtemp(prefix="airflow-migrate-"))
    try:
        failed = migrate(environment(migrating, migrating, database=sqlite_url(migrating)), migrating)
        if failed:
            raise UsageError(f"`airflow db migrate` for the template {target} failed: {failed}; run it by hand "
                             "to see why")
        copy_database(migrating / DB_FILE, target)
    finally:
        shutil.rmtree(migrating, ignore_errors=True)


def migrate(env: Mapping[str, str], cwd: Path, timeout: float | None = MIGRATE_S) -> str | None:
    """`airflow db migrate` of the database `env` names: None when it worked, else the end of what it said."""
    try:
        done = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=dict(env), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"it took over {timeout:.0f} s (a busy machine? retry)"
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[-300:]


def copy_database(source: Path, dest: Path, *, immutable: bool = False) -> None:
    """A consistent copy of a SQLite database (a live one's write-ahead log included, through SQLite's backup API),
    written aside and renamed: a reader never sees half a file, and copies made at once do not collide.
    `immutable`: the source never changes (the template: written aside and renamed, never opened for writing), so
    SQLite need not lock it or look for its journal, which a read-only bind in a sandbox does not allow."""
    import sqlite3
    from contextlib import closing

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    name = f"{Path(source).resolve().as_uri()}?immutable=1" if immutable else str(source)
    try:
        with closing(sqlite3.connect(name, uri=immutable)) as src, closing(sqlite3.connect(tmp)) as out:
            src.backup(out)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def new_database(home: Path, on_progress: Callable[[str], None] | None = None) -> Path:
    """The home's own airflow.db, a copy of the template (made first if needed); returns its path."""
    db_file = home / DB_FILE
    copy_database(template(on_progress), db_file, immutable=True)
    return db_file


# -- Airflow processes and their health -----------------------------------------------------------------------------

def start(args: Sequence[str], *, env: Mapping[str, str] | None, cwd: Path | None, log: Path,
          own_group: bool = True) -> subprocess.Popen[bytes]:
    """`python -m airflow ARGS` with this Python (env and cwd None: this process's), its output appended to `log`,
    by default in a process group of its own (stop it with mlinfra.base.procs.stop_group)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "airflow", *args], env=None if env is None else dict(env),
                                cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=own_group)


def run_child(args: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path, timeout: float,
              on_line: Callable[[str], None], grace: float = 20.0) -> int | None:
    """`python ARGS` with this Python and `env` (Airflow's settings are read once, at import: the child that imports
    it gets them first), in a process group of its own: each non-empty line it writes on stdout (its progress
    channel) goes to `on_line` as it comes, its stderr to `log`. Returns its exit code, or None when it passed
    `timeout` s; its whole group (what its tasks started included) is stopped either way, also on Ctrl-C."""
    import threading

    from mlinfra.base.procs import stop_group

    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, *args], env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=err,
                                stdin=subprocess.DEVNULL, start_new_session=True, text=True)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                on_line(line.strip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    finally:
        stop_group(proc, grace)
        reader.join(timeout=5)


def health(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The API server's /api/v2/monitor/health report at `url`, or None when it does not answer 200 with JSON."""
    import httpx

    try:
        reply = httpx.get(f"{url}/api/v2/monitor/health", timeout=timeout)
        report = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def healthy(report: Mapping[str, Any] | None) -> bool:
    """A health report whose metadata database and scheduler both say healthy."""
    if not report:
        return False
    parts = [report.get(k, {}) for k in ("metadatabase", "scheduler")]
    return all(isinstance(p, dict) and p.get("status") == "healthy" for p in parts)


def wait_healthy(report: Callable[[], Mapping[str, Any] | None], *, process: subprocess.Popen[Any] | None,
                 timeout: float, what: str, interval: float = 1.0,
                 on_tick: Callable[[float], None] | None = None) -> None:
    """Until `report()` (a health report, e.g. `lambda: health(url)`) is healthy; raises
    mlinfra.base.wait.NotReady on timeout, or at once when `process` has exited (its exit code in the error)."""
    wait_until(lambda: healthy(report()), process=process, timeout=timeout, interval=interval, what=what,
               on_tick=on_tick)
