"""`make airflow`'s helper: where its home and DAGs come from, the settings it runs with, and start/stop."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from mlinfra import airflow_local as al


def _lab(root: Path, where: str) -> Path:
    folder = root / where / al.LAB
    folder.mkdir(parents=True)
    (folder / "dag.py").write_text("# a DAG\n")
    return folder


def test_dags_come_from_the_workspace_copy_when_there(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_HOME", raising=False)
    solutions = _lab(tmp_path, "solutions")
    assert al.resolve(root=tmp_path).dags == solutions.resolve()
    workspace = _lab(tmp_path, "workspace")
    local = al.resolve(root=tmp_path)
    assert local.dags == workspace.resolve()
    assert local.home == (tmp_path / ".state" / "airflow").resolve()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "h"))
    assert al.resolve(root=tmp_path).home == (tmp_path / "h").resolve()


def test_environment_is_local_and_laptop_sized(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "32")
    monkeypatch.setenv("AIRFLOW__API__HOST", "0.0.0.0")
    local = al.resolve(root=tmp_path, home=tmp_path / "h", dags=tmp_path, port=8123)
    env = al.airflow_env(local)
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1" and env["AIRFLOW__API__PORT"] == "8123"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_HOME"] == str((tmp_path / "h").resolve())
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_stop_without_start_is_harmless(tmp_path: Path, capsys):
    local = al.resolve(root=tmp_path, home=tmp_path / "h", dags=tmp_path)
    local.home.mkdir()
    local.pid_file.write_text("999999999\n")  # stale: no such process group
    assert al.stop(local) == 0
    assert "not running" in capsys.readouterr().out
    assert not local.pid_file.exists()


def test_a_reused_pid_is_never_stopped(tmp_path: Path, capsys):
    """A pid file whose pid now belongs to another process (here: this test's) names a stale start."""
    local = al.resolve(root=tmp_path, home=tmp_path / "h", dags=tmp_path)
    local.home.mkdir()
    local.pid_file.write_text(f"{os.getpid()} 12345.0\n")  # our pid, but not our start time
    assert al.running_pid(local) is None and not local.pid_file.exists()
    assert al.stop(local) == 0 and "not running" in capsys.readouterr().out


def test_stop_ends_the_whole_process_group(tmp_path: Path):
    import subprocess

    import psutil

    local = al.resolve(root=tmp_path, home=tmp_path / "h", dags=tmp_path)
    local.home.mkdir()
    # a leader with a child and a grandchild that ignores SIGTERM: all three must end
    script = "sleep 300 & (trap '' TERM; sleep 300) & wait"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    al.record_pid(local, proc.pid)
    deadline = time.monotonic() + 10
    while len(al.group_processes(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the shell forks its children asynchronously
    members = al.group_processes(proc.pid)
    assert len(members) >= 3 and al.running_pid(local) == proc.pid
    assert al.stop(local, wait=2) == 0
    proc.wait(timeout=5)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in members)
    assert not local.pid_file.exists()


def test_missing_dags_folder_is_one_line_exit_2(tmp_path: Path, capsys):
    code = al.main(["start", "--home", str(tmp_path / "h"), "--dags", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err and "make lab" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AIRFLOW_STANDALONE_TEST") != "1",
    reason="starts a whole Airflow (30 s idle, minutes on a busy machine): AIRFLOW_STANDALONE_TEST=1",
)
def test_start_is_healthy_and_stop_leaves_nothing(tmp_path: Path, write_dag):
    if any(al.port_busy("127.0.0.1", p) for p in al.LOG_SERVER_PORTS):
        pytest.skip("Airflow's log-server ports 8793/8794 are taken (another Airflow is running)")
    local = al.resolve(root=tmp_path, home=tmp_path / "home", dags=tmp_path, port=_free_port())
    try:
        assert al.start(local, wait=400) == 0
        assert al.healthy(al.health(local))
        group = int(local.pid_file.read_text().split()[0])
    finally:
        al.stop(local)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"process group {group} still has members after stop")
    assert al.health(local) is None
