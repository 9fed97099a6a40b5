"""The phase1-lab1 deploy check (`autograder.deploy:airflow_run`): the learner's dag.py run by a real Airflow that
the grader starts for this student alone, inside the grading sandbox, and watched from outside.

Per student: a private AIRFLOW_HOME (SQLite, copied from mlinfra/airflow_home.py's migrated template), its own
temporary folders, and its own network namespace, so its API server's port 8080 is not the machine's 8080 (an
Airflow running there is neither touched nor used); the grader reaches it through a unix-socket relay and a free
port of the host's 127.0.0.1 (autograder/relay.py). Inside: the scheduler (LocalExecutor), the API server
and `airflow dags reserialize`, started at once (airflow_inner.py). Outside: a readiness probe (health, then the DAG listed),
then, as the UI's buttons do, the DAG unpaused and a run triggered through the REST API with a run id and a logical
date only the grader knows, until it finishes (bounded), then every process stopped by pid and the sandbox torn
down. The verdict comes from Airflow's own metadata and the date partition the run wrote, read on the trusted side
as hostile files (airflow_verdict.py). docs/deploy-checks.md says what this proves and what a forger could still do.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from autograder.deploy.airflow_inner import DONE
from autograder.deploy.common import HIDE_ENV, POINTS_EACH, hidden
from mlinfra import airflow_home
from mlinfra.base.results import FAILED, PASSED, SKIPPED, Check

NAME = "Airflow: a real run of the DAG"
DAG_ID = "course_pipeline"
INNER_PORT = 8080  # inside the sandbox's own network namespace; without a sandbox a free port instead
START_S = 180.0  # health, then the DAG listed
RUN_S = 420.0  # the run itself: the reference takes 30-60 s idle, about 150 s beside a full test run
FAILED_STATES = ("failed", "upstream_failed", "up_for_retry")
API_CAP = 1 << 20


def airflow_run(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Phase1-lab1: the learner's DAG triggered in a real, private, sandboxed Airflow; scored from its metadata."""
    import importlib.util

    if hidden("airflow"):
        return [Check(NAME, SKIPPED, 0.0, POINTS_EACH, f"Airflow not run: hidden by ${HIDE_ENV}; unset it to run "
                      "the DAG in a real Airflow", "dag.py")]
    if importlib.util.find_spec("airflow") is None:
        return [Check(NAME, SKIPPED, 0.0, POINTS_EACH, "Airflow not run: it is not installed in the grader's "
                      "Python; run `make setup`, then grade again", "dag.py")]
    dag_file = files_dir / "dag.py"
    if dag_file.is_symlink() or not dag_file.is_file():
        return [Check(NAME, FAILED, 0.0, POINTS_EACH, "no dag.py in the submission: hand in the lab folder with "
                      "dag.py", "dag.py")]
    started = time.monotonic()
    run = SandboxedAirflow(work_dir, lab)
    try:
        problems, note = run.grade(dag_file)
    finally:
        run.stop()
    took = f"Airflow ready in {run.ready_s:.0f} s, the run {run.run_s:.0f} s, " if run.run_s else ""
    note += f" ({took}{time.monotonic() - started:.0f} s in all)"
    if problems:
        return [Check(NAME, FAILED, 0.0, POINTS_EACH, problems[0] + note, "dag.py")]
    return [Check(NAME, PASSED, POINTS_EACH, POINTS_EACH,
                  f"the grader's run {run.run_id} of {DAG_ID} for {run.ds} succeeded in a real Airflow, every task in "
                  f"order, and wrote the date partition{note}", "dag.py")]


class SandboxedAirflow:
    """One student's Airflow: its home, sandbox, relay and nonce; `grade` runs it, `stop` ends it and reads it."""

    def __init__(self, work_dir: Path, lab: Any) -> None:
        import tempfile

        from autograder.grading.sandbox import bwrap_works

        self.home = (work_dir / "airflow").resolve()
        self.why_no_sandbox = bwrap_works()
        base = "/tmp" if Path("/tmp").is_dir() else None
        # Short folders of its own: a unix socket path must fit in 107 bytes.
        self.conn = Path(tempfile.mkdtemp(prefix="ag-af-", dir=base))
        self.relay_dir = Path(tempfile.mkdtemp(prefix="ag-af-relay-", dir=base))
        self.private = Path(tempfile.mkdtemp(prefix="ag-af-read-", dir=base))
        self.memory_mb = int(getattr(lab, "memory_mb", 6144) or 6144)
        self.run_id = f"grader__{secrets.token_hex(8)}"
        self.ds = _nonce_date()
        self.proc: subprocess.Popen[bytes] | None = None
        self.relay: Any = None
        self.spec: Any = None
        self.read: tuple[list[str], str] | None = None  # the verdict, read before the sandbox is torn down
        self.seen: Any = None
        self.ready_s = self.run_s = 0.0  # seconds: start to ready, trigger to the run's end

    def grade(self, dag_file: Path) -> tuple[list[str], str]:
        note = "" if not self.why_no_sandbox else f" (Airflow ran without a sandbox: {self.why_no_sandbox})"
        try:
            began = time.monotonic()
            self._start(dag_file)
            self._wait_ready()
            self.ready_s = time.monotonic() - began
            self._trigger_and_watch()
            self.run_s = time.monotonic() - began - self.ready_s
        except _Stop as exc:
            return [str(exc)], note
        self.stop()
        assert self.read is not None
        return self.read[0], note + self.read[1]

    # -- starting ---------------------------------------------------------------------------------------------
    def _start(self, dag_file: Path) -> None:
        from autograder.grading import sandbox
        from autograder.relay import launch_relayed
        from mlinfra.base.procs import free_port

        shutil.rmtree(self.home, ignore_errors=True)
        dags = self.home / "dags"
        dags.mkdir(parents=True)
        shutil.copyfile(dag_file, dags / "dag.py")  # the file only: a link in the hand-in is not followed
        # Made on the trusted side the first time (no learner code runs while migrating), then copied.
        airflow_home.new_database(self.home)
        port = INNER_PORT if not self.why_no_sandbox else free_port()
        # Only the sandbox's own variables: sandbox.wrap adds what a process there needs.
        env = airflow_home.environment(self.home, dags, {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            # Only the grader's API client reaches this server (through its relay): no login to script.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Unpausing must not start a run a day since the DAG's start date (a catchup=True DAG): only the
            # grader's run runs.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            # Without a sandbox the log servers' fixed ports (8793/8794) could be another Airflow's.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port() if self.why_no_sandbox else 8793),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port() if self.why_no_sandbox else 8794),
        }, database=airflow_home.sqlite_url(self.home), base={})
        env.update({"PIPELINE_DATA_DIR": str(dags / "data"), "PYTHONPATH": sandbox.course_pythonpath()})
        sock_path = self.relay_dir / "af.sock"

        def inner(fd: int) -> list[str]:
            return [sys.executable, "-m", "autograder.deploy", "_inner", f"fd:{fd}", str(port), "--",
                    sys.executable, "-m", "autograder.deploy.airflow_inner"]

        kind = "bwrap" if not self.why_no_sandbox else "none"
        # The scheduler, the API server, two LocalExecutor workers and a task's supervisor and process: a few
        # hundred threads; memory: the lab's (Airflow and torch in the task processes).
        self.spec = sandbox.Spec(work=self.home, conn=self.conn, kind=kind,
                                 limits=sandbox.Limits(memory_mb=self.memory_mb, cpu_seconds=int(START_S + RUN_S) * 2,
                                                       processes=2048),
                                 env=env, tmpfs_home=True)
        # kind "none": the grader's own environment under the sandbox's, minus any Airflow setting of its own
        base = airflow_home.without_airflow(os.environ) if kind == "none" else None
        self.proc, self.relay = launch_relayed(sock_path, inner, lambda cmd: sandbox.wrap(cmd, self.spec),
                                                self.conn / "launcher.out", base)
        self.url = f"http://127.0.0.1:{self.relay.port}"

    def _wait_ready(self) -> None:
        import contextlib

        import httpx

        from mlinfra.base.wait import NotReady, wait_until

        deadline = time.monotonic() + START_S  # the health wait and the DAG's listing share it
        with httpx.Client(base_url=self.url, timeout=10) as client:

            def report() -> dict[str, Any] | None:
                try:
                    code, health = _call(client, "GET", "/api/v2/monitor/health")
                    return health if code == 200 else None
                except (httpx.HTTPError, ValueError):
                    return None

            try:  # readiness probe: the health endpoint, read within bounds (_call)
                airflow_home.wait_healthy(report, process=self.proc, timeout=START_S, interval=0.5, what="Airflow")
            except NotReady as exc:
                if exc.exit_code is not None:
                    raise _Stop(f"Airflow stopped during start-up (exit {exc.exit_code}) before the grader "
                                "could trigger a run") from None
                raise _Stop(f"Airflow was not healthy within {START_S:.0f} s of starting with your dag.py") from None
            # The DAG is listed once reserialize has parsed it; a DAG still missing after that did not load.
            def listed() -> bool:
                return _call(client, "GET", f"/api/v2/dags/{DAG_ID}")[0] == 200

            with contextlib.suppress(NotReady):  # readiness probe: the DAG listed, or reserialize done without it
                wait_until(lambda: listed() or os.path.lexists(self.home / DONE),
                           timeout=max(0.0, deadline - time.monotonic()), interval=0.5, what=f"{DAG_ID} listed")
            if not listed():
                raise _Stop(f"Airflow did not load {DAG_ID} from your dag.py: {_import_error(client)}; run "
                            "`.venv/bin/autograder dag workspace/phase1-lab1-airflow-dag/dag.py` to see why")

    # -- the run ----------------------------------------------------------------------------------------------
    def _trigger_and_watch(self) -> None:
        import httpx

        from autograder.deploy.airflow_verdict import Observed

        api = f"/api/v2/dags/{DAG_ID}"
        with httpx.Client(base_url=self.url, timeout=30) as client:
            if _call(client, "PATCH", api, json={"is_paused": False})[0] != 200:
                raise _Stop(f"Airflow refused to unpause {DAG_ID}")
            triggered = datetime.now(timezone.utc)
            code, reply = _call(client, "POST", f"{api}/dagRuns", json={
                "dag_run_id": self.run_id, "logical_date": f"{self.ds}T00:00:00Z", "conf": {}})
            if code != 200:
                raise _Stop(f"Airflow refused the grader's trigger (HTTP {code}: {str(reply)[:150]})")
            deadline, state, tasks = time.monotonic() + RUN_S, "queued", {}
            while state not in ("success", "failed"):
                if time.monotonic() > deadline:
                    break
                if self.proc is not None and self.proc.poll() is not None:
                    break
                time.sleep(1.0)  # the REST API has no push: poll the run as the UI does
                try:
                    state = str(_call(client, "GET", f"{api}/dagRuns/{self.run_id}")[1].get("state") or state)
                    tis = _call(client, "GET", f"{api}/dagRuns/{self.run_id}/taskInstances?limit=100")[1]
                    tasks = {str(t["task_id"]): str(t.get("state")) for t in tis.get("task_instances", [])[:100]}
                except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
                    continue
                if any(s in FAILED_STATES for s in tasks.values()):
                    break  # a task failed (or will be retried): the run cannot succeed as graded
            self.seen = Observed(self.run_id, self.ds, triggered, datetime.now(timezone.utc), str(state), tasks)
        if state not in ("success", "failed") and not any(s in FAILED_STATES for s in tasks.values()):
            raise _Stop(f"the grader's run of {DAG_ID} had not finished after {RUN_S:.0f} s (tasks: "
                        f"{_states(tasks)})")

    # -- stopping and reading ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every process of the sandbox by pid, then (nothing inside can write any more) the verdict read from its
        folder, then the sandbox torn down (a root grader's tmpfs home goes with it) and the relay closed."""
        from autograder.grading.sandbox import kill_tree, release_connection, teardown

        if self.proc is not None:
            if self.proc.poll() is None:
                kill_tree(self.proc.pid, timeout=30)
            self.proc.wait(timeout=30)
            self.proc = None
            if self.spec is not None and self.spec.kind != "container":
                from autograder.grading import cgroups

                cgroups.release(self.spec.name)  # anything still in its cgroup, before its files are read
            if self.seen is not None and self.read is None:
                self.read = self._verdict()
        if self.spec is not None:
            teardown(self.spec)
            self.spec = None
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        release_connection(self.conn)
        for folder in (self.relay_dir, self.private):
            shutil.rmtree(folder, ignore_errors=True)
        if not os.environ.get("AUTOGRADER_KEEP_WORK"):
            shutil.rmtree(self.home, ignore_errors=True)

    def _verdict(self) -> tuple[list[str], str]:
        from autograder.deploy.airflow_verdict import output_problems, read_metadata, run_problems

        run, tis, why = read_metadata(self.home, self.private, DAG_ID, self.run_id)
        problems = run_problems(self.seen, run, tis, why)
        if not problems:
            problems = output_problems(self.home, self.ds)
        return problems, ""


class _Stop(Exception):
    """The run cannot be graded further; the message is the learner's reason."""


def _nonce_date() -> str:
    """A logical date the grader draws at trigger time: a past day after the lab's start date (Airflow refuses a
    future one), unknown to the DAG until the run exists."""
    first, last = date(2024, 1, 2), datetime.now(timezone.utc).date() - timedelta(days=1)
    return (first + timedelta(days=secrets.randbelow(max((last - first).days, 1)))).isoformat()


def _call(client: Any, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """(status, parsed JSON or {}) of one API request, read within bounds: the server answering is inside the
    sandbox, where the learner's code could replace it, so at most 1 MB and 30 s a reply."""
    import json

    from mlinfra.base.bounded_http import IDENTITY, read_capped

    with client.stream(method, url, headers=IDENTITY, **kwargs) as reply:
        try:  # raw, then decoded within the cap: a gzip bomb is never inflated whole
            body = read_capped(reply.iter_raw(), reply.headers.get("content-encoding"), API_CAP,
                               time.monotonic() + 30)
        except ValueError as exc:
            raise ValueError(f"{method} {url}: {exc}") from None
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    return reply.status_code, parsed if isinstance(parsed, dict) else {}


def _states(tasks: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(tasks.items())) or "none started"


def _import_error(client: Any) -> str:
    try:
        errors = _call(client, "GET", "/api/v2/importErrors?limit=5")[1].get("import_errors", [])
    except Exception:  # noqa: BLE001 - only a better message is lost
        errors = []
    if not errors:
        return "no DAG with that id in the file"
    lines = [ln for ln in str(errors[0].get("stack_trace", "")).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "an import error")[:200]
