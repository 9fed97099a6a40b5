"""Deploy checks: after a learner's notebook is graded, the trusted side deploys what they built and scores it.

A lab lists them in lab.yaml (`deploy_checks: ["autograder.deploy:torchserve"]`); the grading engine calls each
as `check(lab, files_dir, work_dir) -> list[Check]`, where files_dir holds the learner's submitted lab files and
work_dir is a scratch folder of theirs. Each check always returns the same named checks with the same maximum
points, so a class's grades.csv has the same columns whether or not an engine was there:

- `torchserve` (lab05): archives the course model with the learner's handler.py, starts TorchServe on free ports of
  127.0.0.1 (the grader's own config.properties: the learner's is graded by the notebook's tests), and scores it with
  `autograder assess`'s five requirements, one point each.
- `container` (lab06): builds the learner's Dockerfile (their folder plus the course's service code and model),
  runs the image with its port published on 127.0.0.1, and scores it the same way; one more point for the build.
- `airflow_ui_run` (phase1-lab1): reads the run record the learner saved from their own Airflow with
  `autograder dag --verify-ui-run --save ui_run.json` and checks it against their dag.py (docs/deploy-checks.md
  says what that proves and what it cannot).

Where an engine is missing (no Java; no container engine) every check of that deployment is "skipped" with
0 points and a message naming what was not run and how to get it: never a silent skip, never full marks.
$AUTOGRADER_HIDE_ENGINES (a comma list of `java`, `container`) makes the checks behave as if that engine were
missing: the graded samples use it to grade both ways on one machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlinfra.base.results import FAILED, PASSED, SKIPPED, Check

HIDE_ENV = "AUTOGRADER_HIDE_ENGINES"
TITLES = (  # the practical assessment's five requirements, one deploy check each (1 point)
    "reachable over HTTP",
    "processes PNG/JPEG, grey/colour, 28-224 px",
    "predictions with confidences",
    "latency under 500 ms",
    "bad input gets a 4xx, keeps serving",
)
POINTS_EACH = 1.0
# Fewer timed requests than `assess`'s 50 (the rule needs at least 20): a class is graded on a shared machine.
ASSESS_REQUESTS = 20
TORCHSERVE_START_S = 120.0
HEALTH_TIMEOUT_S = 180.0
UI_RUN_FILE = "ui_run.json"


def hidden(engine: str) -> bool:
    """True when $AUTOGRADER_HIDE_ENGINES names `engine` (the checks then act as if it were missing)."""
    return engine in {p.strip().lower() for p in os.environ.get(HIDE_ENV, "").split(",")}


# ---------------------------------------------------------------------------------------------- shared


def _named(prefix: str) -> list[str]:
    return [f"{prefix}: {title}" for title in TITLES]


def _all(names: list[str], status: str, message: str, where: str = "") -> list[Check]:
    return [Check(n, status, 0.0, POINTS_EACH, message, where) for n in names]


def _from_criteria(names: list[str], criteria: list[dict[str, Any]], where: str) -> list[Check]:
    """The assessment's five requirements (20 points each) as five 1-point checks, partial credit kept."""
    checks = []
    for name, crit in zip(names, criteria):
        share = float(crit["points"]) / float(crit["max_points"]) if crit["max_points"] else 0.0
        checks.append(Check(name, PASSED if crit["passed"] else FAILED, round(POINTS_EACH * share, 2),
                            POINTS_EACH, str(crit.get("verdict") or ""), where))
    return checks


def course_model(work_dir: Path) -> tuple[Path, str]:
    """The course's trained model (`make model`) when there is one, else a stand-in made in work_dir: the
    deployment, not the model, is graded. Returns the folder and a note for the message."""
    from mlinfra.modelstore import MODEL_FILE, model_dir_from_env

    trained = model_dir_from_env()
    if (trained / MODEL_FILE).is_file():
        return trained, ""
    standin = work_dir / "standin-model"
    if not (standin / MODEL_FILE).is_file():
        _standin_model(standin)
    return standin, " (a stand-in model: `make model` has not been run on the grading machine)"


def _standin_model(folder: Path) -> None:
    import warnings

    import torch
    from torch import nn

    from mlinfra.modelstore import ModelCard, save_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 10)).eval()
    card = ModelCard(name="stand-in", architecture="tiny-cnn", input_size=28, channels=1, mean=[0.5], std=[0.5],
                     dataset={"name": "none: random weights"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in 2.14; TorchScript is the course's format
        save_model(folder, torch.jit.script(net), [str(i) for i in range(10)], card)


def _assess(url: str, model: str) -> list[dict[str, Any]]:
    """Score a running TorchServe with `autograder assess`'s own engine and probes; its five requirements."""
    from autograder.assess.engine import Request, assess

    result = assess(Request(torchserve=url, model=model, requests=ASSESS_REQUESTS, startup_timeout=30.0,
                            breakdown=False))
    return [{"points": c.points, "max_points": c.max_points, "passed": c.passed, "verdict": c.verdict}
            for c in result.criteria]


# ---------------------------------------------------------------------------------------------- lab05


def torchserve(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Lab05: the learner's handler in a real TorchServe, scored with the practical assessment's probes."""
    from mlinfra.torchserve_local import StartError, java_executable

    names = _named("TorchServe")
    reason = None
    if hidden("java"):
        reason = f"TorchServe not run: Java hidden by ${HIDE_ENV}; unset it to deploy the handler"
    else:
        try:
            java_executable()
        except StartError:
            reason = "TorchServe not run: no Java on this machine; install Java 17 (apt-get install " \
                     "openjdk-17-jre-headless), then grade again"
    if reason:
        return _all(names, SKIPPED, reason)
    handler = files_dir / "handler.py"
    if not handler.is_file():
        return _all(names, FAILED, "no handler.py in the submission: hand in the lab folder with handler.py",
                    "handler.py")
    from autograder.grading.sandbox import bwrap_works

    model, note = course_model(work_dir)
    why_not = bwrap_works()
    server: Any = _SandboxedTorchServe(work_dir, lab) if not why_not else _HostTorchServe(work_dir)
    if why_not:
        note += f" (TorchServe ran without a sandbox: {why_not}; `make sandbox` installs it)"
    watcher = _CrashWatcher(server.dep, lambda _dep: server.stop())
    try:
        try:
            watcher.start()
            server.start(model, handler.resolve())
        except StartError as exc:
            return _all(names, FAILED, f"TorchServe could not start with your handler: {exc}", "handler.py")
        except TimeoutError as exc:
            why = watcher.reason or str(exc)
            return _all(names, FAILED, f"TorchServe started but your handler never answered a prediction: {why}. "
                        "Run the lab's `serve` cell (or `make torchserve`) and read logs/model_log.log",
                        "handler.py")
        finally:
            watcher.done = True
            watcher.thread.join(timeout=90)  # a stop it began waits for Java and the workers to exit
        checks = _from_criteria(names, _assess(server.url, server.dep.name), "handler.py")
    finally:
        server.stop()
    if note:
        checks = [Check(c.name, c.status, c.points, c.max_points, c.message + note, c.where) for c in checks]
    return checks


class _HostTorchServe:
    """TorchServe as `make torchserve` runs it (free ports on 127.0.0.1): where no sandbox can be made."""

    def __init__(self, work_dir: Path) -> None:
        from autograder.dockerfile.engine import free_port
        from mlinfra.torchserve_local import Deployment, Ports

        ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
        self.dep = Deployment(state=(work_dir / "torchserve").resolve(), name="digits", ports=ports)
        self.url = self.dep.inference_url

    def start(self, model: Path, handler: Path) -> None:
        from mlinfra.torchserve_local import start

        start(self.dep, model, timeout=TORCHSERVE_START_S, handler=handler)

    def stop(self) -> None:
        from mlinfra.torchserve_local import stop

        stop(self.dep)


class _SandboxedTorchServe:
    """TorchServe, and so the learner's handler, inside the grading sandbox (autograder.grading.sandbox: own
    network, pid and mount namespaces; the course read-only; one writable folder). Its API on the sandbox's own
    127.0.0.1 is reached through two relays: a unix socket in a folder bound into the sandbox (a socket file
    crosses a network namespace, TCP does not), and a TCP port on the host's 127.0.0.1 for the probes. The relay
    inside can only change answers the handler gives anyway; scores come from what the probes outside observe."""

    def __init__(self, work_dir: Path, lab: Any) -> None:
        import tempfile

        from mlinfra.torchserve_local import Deployment, Ports

        self.dep = Deployment(state=(work_dir / "torchserve").resolve(), name="digits", ports=Ports(8085, 8086, 8087))
        # A short folder of its own: a unix socket path must fit in 107 bytes.
        self.conn = Path(tempfile.mkdtemp(prefix="ag-ts-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.memory_mb = int(getattr(lab, "memory_mb", 4096) or 4096)
        self.proc: Any = None
        self.relay: _Relay | None = None
        self.url = ""

    def start(self, model: Path, handler: Path) -> None:
        import subprocess
        import sys
        import time

        from autograder.grading import sandbox
        from mlinfra.torchserve_local import _venv_tool, archive, config_properties, probe_image

        dep = self.dep
        for folder in (dep.state, dep.logs):
            folder.mkdir(parents=True, exist_ok=True)
        archive(model, dep, handler)  # on the trusted side: zips the handler file, never runs it
        config = dep.state / "config.properties"
        # A bounded Java heap: the sandbox's memory limit applies to Java too.
        config.write_text(config_properties(dep) + "vmargs=-Xmx512m -XX:+UseSerialGC\n")
        sock = self.conn / "ts.sock"
        inner = [sys.executable, "-m", "autograder.deploy", "_inner", str(sock), str(dep.ports.inference), "--",
                 _venv_tool("torchserve"), "--start", "--foreground", "--ncs", "--model-store",
                 str(dep.state / "model-store"), "--models", f"{dep.name}={dep.name}.mar", "--ts-config", str(config)]
        spec = sandbox.Spec(work=dep.state, conn=self.conn, kind="bwrap",
                            limits=sandbox.Limits(memory_mb=self.memory_mb, cpu_seconds=int(TORCHSERVE_START_S) + 600),
                            env={"LOG_LOCATION": str(dep.logs), "METRICS_LOCATION": str(dep.logs)})
        cmd, env = sandbox.wrap(inner, spec)
        with (dep.logs / "torchserve.out").open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.relay = _Relay(sock)
        self.url = f"http://127.0.0.1:{self.relay.port}"
        import httpx

        image, deadline, last = probe_image(), time.monotonic() + TORCHSERVE_START_S, "no answer yet"
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise TimeoutError(f"TorchServe exited during start-up; see {dep.logs / 'ts_log.log'}")
                try:
                    reply = client.post(f"{self.url}/predictions/{dep.name}", content=image)
                    if reply.status_code == 200:
                        return
                    last = f"HTTP {reply.status_code}: {reply.text[:200]}"
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                time.sleep(0.5)  # a retry interval: each round is a real prediction
        raise TimeoutError(f"no successful prediction within {TORCHSERVE_START_S:.0f} s (last: {last})")

    def stop(self) -> None:
        """Every process of the sandbox, by pid (they are in sessions of their own inside it), then the relay."""
        import shutil

        import psutil

        if self.proc is not None and self.proc.poll() is None:
            try:
                procs = [psutil.Process(self.proc.pid)]
                procs += procs[0].children(recursive=True)
            except psutil.NoSuchProcess:
                procs = []
            for proc in reversed(procs):
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(procs, timeout=30)
            self.proc.wait(timeout=30)
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        shutil.rmtree(self.conn, ignore_errors=True)


class _Relay:
    """A TCP listener on a free port of the host's 127.0.0.1 that forwards each connection to a unix socket."""

    def __init__(self, sock: Path) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def handle(reader: Any, writer: Any) -> None:
            try:
                up_reader, up_writer = await asyncio.open_unix_connection(str(sock))
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def serve() -> None:
            box["server"] = await asyncio.start_server(handle, "127.0.0.1", 0)
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        self.server = box["server"]
        self.port = int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _pipe(reader: Any, writer: Any) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def _inner(argv: list[str]) -> int:
    """Inside the sandbox: run TorchServe in the foreground and relay the unix socket to its inference port."""
    import asyncio
    import subprocess

    sock, port, cmd = argv[0], int(argv[1]), argv[3:]
    proc = subprocess.Popen(cmd)

    async def handle(reader: Any, writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_unix_server(handle, path=sock)
        async with server:
            while proc.poll() is None:
                await asyncio.sleep(0.5)

    asyncio.run(main())
    return proc.returncode or 0


class _CrashWatcher:
    """Stops a TorchServe whose worker keeps dying while it loads the handler (TorchServe restarts it forever and
    /ping stays healthy), so a broken handler fails in seconds, not at the start-up timeout, with its error."""

    DEATHS = 3

    def __init__(self, dep: Any, stop: Callable[[Any], Any]) -> None:
        import threading

        self.dep, self.stop, self.reason, self.done = dep, stop, "", False
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def watch(self) -> None:
        import time

        log = self.dep.logs / "model_log.log"
        while not self.done:
            time.sleep(0.5)
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if sum("Backend worker process died" in ln for ln in lines) >= self.DEATHS:
                import re

                said = [ln.split("MODEL_LOG - ", 1)[1].rstrip() for ln in lines if "MODEL_LOG - " in ln]
                # The handler's own exception; TorchServe's wrapper then adds "RuntimeError: 500 - ...".
                errors = [m for m in said if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b", m)
                          and not m.startswith("RuntimeError: 500 - ")]
                last = errors[-1] if errors else "see model_log.log"
                self.reason = f"its worker died {self.DEATHS} times while loading it (last error: {last[:200]})"
                self.stop(self.dep)
                return


# ---------------------------------------------------------------------------------------------- lab06


def container(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Lab06: build the learner's image, run it on 127.0.0.1, score it with the practical assessment's probes."""
    from autograder.dockerfile import engine as eng
    from autograder.dockerfile.build import build_and_assess
    from autograder.dockerfile.rules import lint
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    names = ["container: image builds", *_named("container")]
    if hidden("container"):
        return _all(names, SKIPPED, f"image not built: the container engine is hidden by ${HIDE_ENV}; unset it to "
                    "build and run the image")
    try:
        eng.detect(repo_root())
    except UsageError as exc:
        return _all(names, SKIPPED, f"image not built: {exc}")
    dockerfile = files_dir / "Dockerfile"
    if not dockerfile.is_file():
        return _all(names, FAILED, "no Dockerfile in the submission: hand in the lab folder with its Dockerfile",
                    "Dockerfile")
    model, note = course_model(work_dir)
    # One tag per student's work folder, replaced on a regrade. The image is kept: removing it would also drop the
    # layer cache, and then every student's build would install the dependencies again (minutes each).
    tag = f"autograder-grade/{hashlib.sha256(str(work_dir.resolve()).encode()).hexdigest()[:12]}:latest"
    outcome = build_and_assess(dockerfile, lint(dockerfile), model_dir=model, tag=tag, health_timeout=HEALTH_TIMEOUT_S,
                               requests=ASSESS_REQUESTS, isolated=True, log=lambda m: None,
                               run_args=(f"--memory={int(getattr(lab, 'memory_mb', 0) or 4096)}m", "--pids-limit=512"))
    built = Check(names[0], PASSED if outcome.built else FAILED, POINTS_EACH if outcome.built else 0.0, POINTS_EACH,
                  f"built in {outcome.build_seconds:.0f} s" if outcome.built else (outcome.error or "not built"),
                  "Dockerfile")
    assessment = outcome.assessment or {}
    if assessment.get("criteria"):
        checks = [built, *_from_criteria(names[1:], assessment["criteria"], "Dockerfile")]
    else:
        why = outcome.error or assessment.get("error") or "the assessment did not run"
        checks = [built, *_all(names[1:], FAILED, f"not assessed: {why}", "Dockerfile")]
    if note:
        checks = [Check(c.name, c.status, c.points, c.max_points, c.message + note, c.where) for c in checks]
    return checks


# ---------------------------------------------------------------------------------------------- phase1-lab1


def airflow_ui_run(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Phase1-lab1: the run the learner started in Airflow's UI, from the record they saved (ui_run.json)."""
    name = "Airflow: a run started in the UI"
    record_path = files_dir / UI_RUN_FILE
    dag_file = files_dir / "dag.py"
    if not record_path.is_file():
        return [Check(name, FAILED, 0.0, POINTS_EACH, f"no {UI_RUN_FILE}: start `make airflow`, trigger "
                      "course_pipeline in the UI, then run `autograder dag --verify-ui-run --save ui_run.json` in "
                      "the lab folder and hand the file in", UI_RUN_FILE)]
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [Check(name, FAILED, 0.0, POINTS_EACH, f"{UI_RUN_FILE} is not the JSON the verify command writes "
                      f"({exc}): save it again with `autograder dag --verify-ui-run --save ui_run.json`",
                      UI_RUN_FILE)]
    source = dag_file.read_bytes() if dag_file.is_file() else None
    problems = ui_run_problems(record, source)
    if problems:
        return [Check(name, FAILED, 0.0, POINTS_EACH, problems[0], UI_RUN_FILE)]
    return [Check(name, PASSED, POINTS_EACH, POINTS_EACH,
                  f"run {record['dag_run_id']} of course_pipeline succeeded ({record.get('end_date')})", UI_RUN_FILE)]


def source_digest(source: bytes) -> str:
    """The digest a run record carries of the DAG source Airflow ran (line endings and trailing space ignored)."""
    text = source.decode("utf-8", errors="replace").replace("\r\n", "\n").strip()
    return hashlib.sha256(text.encode()).hexdigest()


def ui_run_problems(record: Any, dag_source: bytes | None, dag_id: str = "course_pipeline") -> list[str]:
    """Why a run record does not show a successful, hand-triggered run of this DAG file ([] when it does)."""
    from mlinfra.pipeline import MUST_FOLLOW

    again = "trigger it again in the UI and save a new record"
    if not isinstance(record, dict):
        return [f"{UI_RUN_FILE} holds no run record: save it with `autograder dag --verify-ui-run --save {UI_RUN_FILE}`"]
    get: Callable[[str], Any] = record.get
    problems = []
    if get("dag_id") != dag_id:
        problems.append(f"the recorded run is of DAG {get('dag_id')!r}, not {dag_id}: {again}")
    if get("run_type") != "manual":
        problems.append(f"the recorded run was {get('run_type') or 'not'} triggered, not by hand in the UI: {again}")
    if get("state") != "success":
        problems.append(f"the recorded run ended {get('state')!r}, not success: fix what failed, then {again}")
    tasks = get("tasks") if isinstance(get("tasks"), dict) else {}
    not_ok = [t for t in MUST_FOLLOW if tasks.get(t) != "success"]
    if not_ok:
        problems.append(f"in the recorded run, {', '.join(not_ok)} did not succeed: {again}")
    if dag_source is None:
        problems.append("no dag.py in the submission to compare the recorded run with: hand in the lab folder")
    elif get("dag_source_sha256") != source_digest(dag_source):
        problems.append("the recorded run is of a different dag.py than the one handed in: after your last edit, "
                        f"{again}")
    return problems


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1 and sys.argv[1] == "_inner":
        sys.exit(_inner(sys.argv[2:]))
    sys.exit("usage: python -m autograder.deploy _inner SOCK PORT -- COMMAND... (used by the TorchServe check)")
