"""A laptop-sized local Airflow for the DAG lab: `python -m mlinfra.airflow_local start|stop|status`.

`start` runs `airflow standalone` (scheduler, DAG processor, triggerer and API server with the UI in one
command) in its own process group, with:

- AIRFLOW_HOME = $AIRFLOW_HOME if set (the Makefile sets .state/airflow), else .state/airflow in the workbook:
  never ~/airflow;
- the DAGs folder = your workspace copy of the lab (workspace/phase1-lab1-airflow-dag/) when it holds a
  dag.py, else the instructor's reference (solutions/phase1-lab1-airflow-dag/);
- the API server and UI on 127.0.0.1:8080 only; parallelism 4 (the default 32 forks 32 workers, ~6 GB);
  no example DAGs.

`start --grading` runs the instructor's grading Airflow instead (`autograder grade --engine airflow --executor
standalone` triggers class runs on it): its own home (.state/airflow-grading/home, or $AUTOGRADER_AIRFLOW_HOME),
its only DAGs the grading DAG in <home>/grading-dags, port 8081. The two never share an Airflow: a learner's
unfinished DAG never shows as an import error beside the class's grades, and grading never loads a learner's DAG.

It returns once /api/v2/monitor/health answers healthy, and prints the URL and where the admin password is.
Note: Airflow's task-log servers bind 0.0.0.0:8793 and 8794 (hard-coded by Airflow, not configurable here), so
keep those two ports free and do not run this on an untrusted network.

`stop` ends the whole process group recorded at start; `status` says whether it runs and is healthy.
Exit codes: 0 done, 1 started but never became healthy (status: not running, or running but not healthy), 2 could
not start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlinfra import airflow_home
from mlinfra.base import runner
from mlinfra.base.errors import UsageError
from mlinfra.base.paths import repo_root
from mlinfra.base.runner import EXIT_FELL_SHORT, EXIT_PASSED
from mlinfra.base.wait import NotReady

LAB = "phase1-lab1-airflow-dag"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
LOG_SERVER_PORTS = (8793, 8794)
GRADING_DAGS = "grading-dags"  # the grading DAG's bundle (autograder/grading/airflow/ writes it)
GRADING_PORT = 8081  # the grading Airflow's UI and API (the course's is 8080)


@dataclass(frozen=True)
class Local:
    root: Path
    home: Path
    dags: Path
    host: str = "127.0.0.1"
    port: int = 8080
    grading: bool = False  # the instructor's grading Airflow: the grading DAG only

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "standalone.pid"

    @property
    def log(self) -> Path:
        return self.home / "standalone.log"

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE




def grading_home(root: Path | None = None) -> Path:
    """The grading Airflow's home: $AUTOGRADER_AIRFLOW_HOME, else .state/airflow-grading/home (never the course's
    $AIRFLOW_HOME, which `make` sets to the learner's .state/airflow)."""
    env = os.environ.get("AUTOGRADER_AIRFLOW_HOME")
    return Path(env).resolve() if env else ((root or repo_root()) / ".state" / "airflow-grading" / "home").resolve()


def resolve(
    root: Path | None = None, home: Path | None = None, dags: Path | None = None, port: int | None = None,
    grading: bool = False,
) -> Local:
    root = root or repo_root()
    if grading:
        home = (home or grading_home(root)).resolve()
        return Local(root=root, home=home, dags=home / GRADING_DAGS, port=port or GRADING_PORT, grading=True)
    port = port or 8080
    home = home or Path(os.environ.get("AIRFLOW_HOME") or root / ".state" / "airflow")
    if dags is None:
        own = root / "workspace" / LAB
        dags = own if (own / "dag.py").is_file() else root / "solutions" / LAB
    return Local(root=root, home=home.resolve(), dags=dags.resolve(), port=port)


def airflow_env(local: Local) -> dict[str, str]:
    # The caller's AIRFLOW_VAR_*/AIRFLOW_CONN_* stay (a learner may define connections that way); settings go.
    # standalone starts its components as `airflow ...` from PATH: this venv's bin must come first.
    return airflow_home.environment(local.home, local.dags, {
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": local.host,
        "AIRFLOW__API__PORT": str(local.port),
        # Task workers report back through the execution API: it lives on the same server and port.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{local.url}/execution/",
        # One DAG bundle each: the course's Airflow reads the lab's DAGs; the grading Airflow only the grading
        # DAG `autograder grade --engine airflow --executor standalone` writes into <home>/grading-dags (looked
        # at every 10 s; docs/grading-at-scale.md). They never share one Airflow.
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "grading", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(local.dags), "refresh_interval": 10}},
        ] if local.grading else [
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {}},
        ]),
    }, keep_variables=True, venv_first=True)


def running_pid(local: Local) -> int | None:
    """The recorded process group leader if it is still the process we started, else None (a stale pid file,
    or one whose pid now belongs to another process, is removed). The file holds "pid create-time"."""
    import psutil

    try:
        pid, created = local.pid_file.read_text().split()[:2]
        leader = psutil.Process(int(pid))
        if abs(leader.create_time() - float(created)) < 1.0 and leader.is_running():
            return leader.pid
    except (OSError, ValueError, psutil.Error):
        pass
    local.pid_file.unlink(missing_ok=True)
    return None


def record_pid(local: Local, pid: int) -> None:
    import psutil

    local.pid_file.write_text(f"{pid} {psutil.Process(pid).create_time()}\n")


def group_processes(pgid: int) -> list:  # -> list[psutil.Process]
    """Every live process of the process group: standalone's scheduler, API server, workers and their children.
    Found by group, not by parentage, so daemons that re-parented themselves are included."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                found.append(proc)
        except (OSError, psutil.Error):
            continue  # exited meanwhile, or not ours to inspect
    return found


def health(local: Local, timeout: float = 2.0) -> dict | None:
    return airflow_home.health(local.url, timeout)


healthy = airflow_home.healthy


def port_busy(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start(local: Local, wait: float = 240.0) -> int:
    pid = running_pid(local)
    if pid:
        print(
            f"airflow: already running (process group {pid}) at {local.url}; stop it with `{stop_command(local)}`"
        )
        return EXIT_PASSED
    if local.grading:
        local.dags.mkdir(parents=True, exist_ok=True)  # the grading engine writes its DAG here
    if not local.dags.is_dir():
        raise UsageError(f"the DAGs folder {local.dags} does not exist; open the lab first (make lab)")
    busy = [p for p in (local.port, *LOG_SERVER_PORTS) if port_busy("127.0.0.1", p)]
    if busy:
        raise UsageError(
            f"port{'s' * (len(busy) > 1)} {', '.join(map(str, busy))} in use: stop what uses "
            f"{'them' if len(busy) > 1 else 'it'} (another Airflow? `make airflow-stop`) and retry"
        )
    local.home.mkdir(parents=True, exist_ok=True)
    proc = airflow_home.start(["standalone"], env=airflow_env(local), cwd=local.home, log=local.log)
    record_pid(local, proc.pid)
    print(f"airflow: starting standalone (process group {proc.pid}); DAGs from {local.dags}")
    print(f"airflow: log {local.log}; first start migrates the database (~30-60 s)", flush=True)
    began, noted = time.monotonic(), [0.0]

    def progress(waited: float) -> None:
        if waited - noted[0] >= 10:
            noted[0] = waited
            print(f"airflow: waiting for health ... {waited:.0f} s", flush=True)

    try:
        # The health endpoint is the readiness probe; the wait also watches the process.
        airflow_home.wait_healthy(lambda: health(local), process=proc, timeout=wait, interval=1.0,
                                  what="airflow standalone", on_tick=progress)
    except NotReady as exc:
        if exc.exit_code is not None:
            local.pid_file.unlink(missing_ok=True)
            print(f"last log lines:\n{tail(local.log)}", file=sys.stderr)
            raise UsageError(f"standalone exited with code {exc.exit_code} before it was healthy "
                             f"(log above and in {local.log}); fix what it names and retry") from None
        print(
            f"airflow: not healthy after {wait:.0f} s; see {local.log}; stop it with `{stop_command(local)}`",
            file=sys.stderr,
        )
        return EXIT_FELL_SHORT
    print(f"airflow: healthy after {time.monotonic() - began:.0f} s")
    print(f"  UI:       {local.url}   (user: admin)")
    print(f"  password: {password_hint(local)}")
    print("  note:     Airflow's log servers also listen on 0.0.0.0:8793 and 8794")
    print(f"  stop:     {stop_command(local)}")
    return EXIT_PASSED


def stop_command(local: Local) -> str:
    return ".venv/bin/python -m mlinfra.airflow_local stop --grading" if local.grading else "make airflow-stop"


def password_hint(local: Local) -> str:
    try:
        users = json.loads(local.password_file.read_text())
        return f"{users.get('admin', '?')}   (from {local.password_file})"
    except (OSError, ValueError, AttributeError):
        return f"in {local.password_file} once Airflow has written it"


def stop(local: Local, wait: float = 30.0) -> int:
    from mlinfra.base.procs import end_processes

    pid = running_pid(local)
    if not pid:
        print("airflow: not running (no live process group recorded)")
        return EXIT_PASSED
    procs = group_processes(pid)
    end_processes(procs, grace=wait)
    local.pid_file.unlink(missing_ok=True)
    print(f"airflow: stopped (process group {pid}, {len(procs)} processes)")
    return EXIT_PASSED


def status(local: Local) -> int:
    pid = running_pid(local)
    if not pid:
        print("airflow: not running")
        return EXIT_FELL_SHORT  # a check that found no Airflow, not a command that could not run
    report = health(local)
    print(
        f"airflow: running (process group {pid}) at {local.url}, "
        f"{'healthy' if healthy(report) else 'not healthy yet'}; DAGs from {local.dags}"
    )
    return EXIT_PASSED if healthy(report) else EXIT_FELL_SHORT


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="python -m mlinfra.airflow_local",
        description=__doc__.split("\n\n")[0],
        epilog="make airflow / make airflow-stop call this. Exit codes: 0 done (status: running and healthy); "
        "1 started but not healthy (status: not running, or running but not healthy yet: status is a check, so "
        "a scripted `status && ...` goes on only when Airflow is up); 2 could not run (start: a busy port, "
        "a missing DAGs folder, standalone exiting); 130 interrupted.",
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--port", type=int, default=None,
                        help=f"API server and UI port on 127.0.0.1 (8080; with --grading {GRADING_PORT})")
    parser.add_argument("--grading", action="store_true",
                        help="the instructor's grading Airflow (its own home, the grading DAG only), not the lab's")
    parser.add_argument("--dags", type=Path, default=None, help="DAGs folder (default: the lab's, see above)")
    parser.add_argument(
        "--home", type=Path, default=None, help="AIRFLOW_HOME (default $AIRFLOW_HOME or .state)"
    )
    parser.add_argument("--wait", type=float, default=240.0, help="seconds to wait for health on start (240)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.grading and args.dags:
        raise UsageError("--grading reads only the grading DAG (<home>/grading-dags): leave out --dags")
    local = resolve(home=args.home, dags=args.dags, port=args.port, grading=args.grading)
    if args.action == "start":
        return start(local, wait=args.wait)
    if args.action == "stop":
        return stop(local)
    return status(local)


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.airflow_local", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
