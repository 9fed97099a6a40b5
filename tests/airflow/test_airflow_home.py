"""mlinfra/airflow_home.py, the one home for an Airflow: its environment, the migrated template database and its
copies, and starting an Airflow process and waiting for it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from mlinfra import airflow_home as ah
from mlinfra.base.errors import UsageError
from mlinfra.base.wait import NotReady


def test_environment_replaces_every_airflow_setting_of_the_caller(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "32")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW_VAR_SECRET", "x")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    home, dags = tmp_path / "h", tmp_path / "d"
    env = ah.environment(home, dags, {"AIRFLOW__CORE__PARALLELISM": "4"}, database=ah.sqlite_url(home),
                         workbook_on_path=True)
    assert env["AIRFLOW_HOME"] == str(home) and env["AIRFLOW__CORE__DAGS_FOLDER"] == str(dags)
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4" and env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{home / 'airflow.db'}"
    assert "AIRFLOW__CORE__EXECUTOR" not in env and "AIRFLOW_VAR_SECRET" not in env
    assert env["PYTHONPATH"].split(os.pathsep) == [str(ah.WORKBOOK), "/elsewhere"]
    # the course's own Airflow keeps a learner's variables and connections; settings still go
    kept = ah.environment(home, dags, keep_variables=True, venv_first=True)
    assert kept["AIRFLOW_VAR_SECRET"] == "x" and "AIRFLOW__CORE__EXECUTOR" not in kept
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in kept  # Airflow's own default: SQLite in the home
    assert kept["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    # a sandbox's environment: nothing of the caller's
    assert set(ah.environment(home, dags, base={})) == {"AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER",
                                                         "AIRFLOW__CORE__LOAD_EXAMPLES"}


@pytest.mark.parametrize(("key", "value", "says"), [
    ("AIRFLOW__CORE_PARALLELISM", "4", "AIRFLOW__SECTION__KEY"),  # one underscore: Airflow would ignore it
    ("airflow__core__parallelism", "4", "AIRFLOW__SECTION__KEY"),
    ("AIRFLOW__CORE__PARALLELISM", 4, "as a string"),
    ("AIRFLOW__CORE__DAGS_FOLDER", "/x", "set by the home"),
])
def test_a_bad_setting_names_its_key(tmp_path: Path, key: str, value: object, says: str):
    with pytest.raises(UsageError) as caught:
        ah.environment(tmp_path, tmp_path, {key: value})  # type: ignore[dict-item]
    assert key in str(caught.value) and says in str(caught.value)


def _fake_db(path: Path, rows: int = 200) -> None:
    """A SQLite file bigger than MIGRATED_BYTES, standing in for a migrated database (replacing what was there)."""
    path.unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE filler (x BLOB)")
        db.executemany("INSERT INTO filler VALUES (?)", [(b"0" * 1024,)] * rows)
        db.commit()


def test_the_template_is_made_once_and_a_stub_is_remade(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(ah.TEMPLATE_ENV, str(tmp_path / "t"))
    made: list[Path] = []
    monkeypatch.setattr(ah, "_migrate_into", lambda target: (made.append(target), _fake_db(target)))
    path = ah.template_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")  # smaller than any migrated database: made again
    lines: list[str] = []
    assert ah.template(lines.append) == path and made == [path] and ah.is_migrated(path)
    assert "first time only" in lines[0]
    ah.template(lines.append)
    ah.new_database(tmp_path / "h")
    assert made == [path] and len(lines) == 1, "a migrated template is copied, never migrated again"


def test_copy_database_holds_what_is_still_in_the_write_ahead_log(tmp_path: Path):
    """A live database's last writes may sit in its -wal file: a byte copy of the main file would lose them."""
    source = tmp_path / "live.db"
    with closing(sqlite3.connect(source)) as live:
        live.execute("PRAGMA journal_mode=WAL")
        live.execute("PRAGMA wal_autocheckpoint=0")
        live.execute("CREATE TABLE t (x INTEGER)")
        live.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
        live.commit()
        assert (tmp_path / "live.db-wal").stat().st_size > 0
        ah.copy_database(source, tmp_path / "copy" / "airflow.db")
    with closing(sqlite3.connect(tmp_path / "copy" / "airflow.db")) as copy:
        assert copy.execute("SELECT count(*) FROM t").fetchone() == (100,)
    assert [p.name for p in (tmp_path / "copy").iterdir()] == ["airflow.db"], "no temporary file left behind"


def test_two_homes_from_the_template_are_independent_and_migrated(tmp_path: Path, airflow_template: Path):
    """The real template (the session's, tests/airflow/conftest.py): `airflow db migrate` run once."""
    first, second = ah.new_database(tmp_path / "a"), ah.new_database(tmp_path / "b")
    template = ah.template_path()
    assert template.parent == airflow_template and ah.is_migrated(template)
    for db_file in (first, second):
        with closing(sqlite3.connect(db_file)) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            assert db.execute("SELECT count(*) FROM dag_run").fetchone() == (0,)
    with closing(sqlite3.connect(first)) as db:
        db.execute("INSERT INTO variable (key, val, is_encrypted) VALUES ('only_in_a', '1', 0)")
        db.commit()
    for other in (second, template):
        with closing(sqlite3.connect(other)) as db:
            assert db.execute("SELECT count(*) FROM variable").fetchone() == (0,)


def test_healthy_needs_the_database_and_the_scheduler():
    ok = {"status": "healthy"}
    assert ah.healthy({"metadatabase": ok, "scheduler": ok})
    assert not ah.healthy({"metadatabase": ok, "scheduler": {"status": "unhealthy"}})
    assert not ah.healthy({"metadatabase": ok}) and not ah.healthy(None) and not ah.healthy({})


def test_the_health_wait_ends_when_the_process_exits(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    began = time.monotonic()
    with pytest.raises(NotReady) as caught:
        ah.wait_healthy(lambda: None, process=proc, timeout=60, what="a server that dies", interval=0.1)
    assert caught.value.exit_code == 3 and time.monotonic() - began < 30


def test_start_runs_this_pythons_airflow_in_its_own_group(tmp_path: Path):
    log = tmp_path / "airflow.log"
    env = ah.environment(tmp_path, tmp_path, database=ah.sqlite_url(tmp_path))
    proc = ah.start(["version"], env=env, cwd=tmp_path, log=log)
    try:
        assert os.getpgid(proc.pid) == proc.pid
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    from importlib.metadata import version

    assert version("apache-airflow-core") in log.read_text()


def test_run_child_streams_its_progress_and_returns_its_code(tmp_path: Path):
    lines: list[str] = []
    script = "import sys; print('one'); print(); print(' two '); sys.stderr.write('oops'); sys.exit(4)"
    code = ah.run_child(["-c", script], env=os.environ, cwd=tmp_path, log=tmp_path / "log", timeout=60,
                        on_line=lines.append)
    assert code == 4 and lines == ["one", "two"] and (tmp_path / "log").read_text() == "oops"


def test_run_child_past_its_timeout_stops_its_whole_group(tmp_path: Path):
    """A task process the child started (here a grandchild) goes with it: nothing is left running."""
    pid_file = tmp_path / "grandchild"
    script = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(300)']); open({str(pid_file)!r}, 'w').write(str(p.pid)); print('started', flush=True); "
              "time.sleep(300)")
    lines: list[str] = []
    began = time.monotonic()
    code = ah.run_child(["-c", script], env=os.environ, cwd=tmp_path, log=tmp_path / "log", timeout=3,
                        on_line=lines.append, grace=2)
    assert code is None and lines == ["started"] and time.monotonic() - began < 30
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)  # killed; the init process reaps it
    else:
        pytest.fail(f"the grandchild {grandchild} outlived its group")
