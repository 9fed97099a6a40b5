"""The processes a grading run starts besides its child, and how they stop: Airflow's execution API server (the only
part Celery workers talk to, bound to 127.0.0.1) and Celery workers for the grading queue, each in a process group
of its own, with readiness waits that turn an early exit into one line from its log. They are stopped by process
id with `mlinfra.base.procs.stop_group` (the process and its whole group: TERM, then KILL).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from autograder.grading.airflow.environment import Deployment, airflow_env, install_dag
from mlinfra import airflow_home
from mlinfra.base.errors import UsageError
from mlinfra.base.wait import NotReady, wait_until


def start_api_server(dep: Deployment, log: Path) -> subprocess.Popen[bytes]:
    """Airflow's execution API (the only part Celery workers talk to), on 127.0.0.1 only."""
    return airflow_home.start(["api-server", "--apps", "execution", "--host", "127.0.0.1", "--port",
                               str(dep.api_port), "--workers", "1"], env=airflow_env(dep), cwd=dep.home, log=log)


def wait_for_api_server(dep: Deployment, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    import urllib.error
    import urllib.request

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{dep.api_url}/execution/health", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    try:
        wait_until(answers, process=proc, timeout=timeout, interval=0.5, what="Airflow's API server")
    except NotReady as exc:
        if exc.exit_code is not None:
            raise UsageError(f"Airflow's API server exited ({exc.exit_code}) before it answered: {log_tail(log)}") \
                from None
        raise UsageError(f"Airflow's API server did not answer on {dep.api_url} within {timeout:.0f} s; see {log}") \
            from None


def start_celery_worker(dep: Deployment, name: str, log: Path) -> subprocess.Popen[bytes]:
    """One Celery worker process for the grading queue, in its own process group (stop it with stop_group)."""
    install_dag(dep)
    dep.logs.mkdir(parents=True, exist_ok=True)
    env = airflow_env(dep)
    env["AUTOGRADER_WORKER_NAME"] = name  # each grade task records which worker ran it
    return airflow_home.start(["celery", "worker", "--celery-hostname", f"{name}@%h", "--queues", dep.queue,
                               "--concurrency", "1", "--skip-serve-logs", "--without-gossip", "--without-mingle"],
                              env=env, cwd=dep.home, log=log)


def wait_for_worker(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until Celery logs that the worker is ready to take tasks."""
    try:
        wait_until(lambda: log.is_file() and " ready." in log.read_text(errors="replace"), process=proc,
                   timeout=timeout, interval=0.5, what="a Celery worker")
    except NotReady as exc:
        if exc.exit_code is not None:
            raise UsageError(f"a Celery worker exited ({exc.exit_code}) before it was ready: {log_tail(log)}") \
                from None
        raise UsageError(f"a Celery worker was not ready within {timeout:.0f} s; see {log}") from None


def log_tail(log: Path, lines: int = 1) -> str:
    if not log.is_file():
        return "no output"
    text = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(text[-lines:])[:300] if text else "no output"

