"""The lab05 deploy check (`autograder.deploy:torchserve`): archive the course model with the learner's handler.py,
start TorchServe with the grader's own config.properties (inside the grading sandbox, torchserve_sandbox.py, or
on free ports of the host's 127.0.0.1 where no sandbox can be made, saying so), stop it early when its worker keeps
dying while loading the handler, and score it with `autograder assess`'s five requirements, one point each. With
no Java (or Java hidden by $AUTOGRADER_HIDE_ENGINES) the five checks are skipped with 0 points and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from autograder.deploy.common import (
    ASSESS_REQUESTS,
    HIDE_ENV,
    TORCHSERVE_START_S,
    all_checks,
    course_model,
    from_criteria,
    hidden,
    named,
    with_note,
)
from autograder.deploy.torchserve_sandbox import SandboxedTorchServe
from mlinfra.base.results import FAILED, SKIPPED, Check


def torchserve(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Lab05: the learner's handler in a real TorchServe, scored with the practical assessment's probes."""
    from mlinfra.torchserve_local import StartError, java_executable

    names = named("TorchServe")
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
        return all_checks(names, SKIPPED, reason)
    handler = files_dir / "handler.py"
    if not handler.is_file():
        return all_checks(names, FAILED, "no handler.py in the submission: hand in the lab folder with handler.py",
                    "handler.py")
    from autograder.grading.sandbox import bwrap_works

    model, note = course_model(work_dir)
    why_not = bwrap_works()
    server: Any = SandboxedTorchServe(work_dir, lab) if not why_not else _HostTorchServe(work_dir)
    if why_not:
        note += f" (TorchServe ran without a sandbox: {why_not}; `make sandbox` installs it)"
    watcher = _CrashWatcher(server.dep, lambda _dep: server.stop())
    try:
        try:
            watcher.start()
            server.start(model, handler.resolve())
        except StartError as exc:
            return all_checks(names, FAILED, f"TorchServe could not start with your handler: {exc}", "handler.py")
        except TimeoutError as exc:
            why = watcher.reason or str(exc)
            return all_checks(names, FAILED, f"TorchServe started but your handler never answered a prediction: {why}. "
                        "Run the lab's `serve` cell (or `make torchserve`) and read logs/model_log.log",
                        "handler.py")
        finally:
            watcher.done = True
            watcher.thread.join(timeout=90)  # a stop it began waits for Java and the workers to exit
        checks = from_criteria(names, _assess(server.url, server.dep.name, model), "handler.py")
    finally:
        server.stop()
    return with_note(checks, note)


def _assess(url: str, model: str, model_dir: Path) -> list[dict[str, Any]]:
    """Score a running TorchServe with `autograder assess`'s own engine and probes; its five requirements. It
    serves the course model in `model_dir`, so its answers are compared with that model's own: a handler that
    returns made-up scores fast loses requirements 3 and 4."""
    from autograder.assess.assessment import Request, assess

    result = assess(Request(torchserve=url, model=model, requests=ASSESS_REQUESTS, startup_timeout=30.0,
                            breakdown=False, model_dir=model_dir, served_model=True))
    return [{"points": c.points, "max_points": c.max_points, "passed": c.passed, "verdict": c.verdict}
            for c in result.criteria]



class _HostTorchServe:
    """TorchServe as `make torchserve` runs it (free ports on 127.0.0.1): where no sandbox can be made."""

    def __init__(self, work_dir: Path) -> None:
        from mlinfra.base.procs import free_port
        from mlinfra.torchserve_local import Deployment, Ports

        ports = Ports(free_port(), free_port(), free_port(), free_port(), free_port())
        self.dep = Deployment(state=(work_dir / "torchserve").resolve(), name="digits", ports=ports)
        self.url = self.dep.inference_url

    def start(self, model: Path, handler: Path) -> None:
        """As `mlinfra.torchserve_local.start`, but the archive is built with a temporary folder of its own
        (torchserve_sandbox.archive_privately) and TorchServe gets this check's TMPDIR (Deployment.env)."""
        import subprocess

        from autograder.deploy.torchserve_sandbox import archive_privately
        from mlinfra.torchserve_local import (
            PID_FILE,
            StartError,
            config_properties,
            venv_tool,
            wait_until_predicting,
        )

        dep = self.dep
        for folder in (dep.state, dep.logs, dep.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        archive_privately(model, dep, handler)
        config = dep.state / "config.properties"
        config.write_text(config_properties(dep))
        cmd = [venv_tool("torchserve"), "--start", "--ncs", "--model-store", str(dep.state / "model-store"),
               "--models", f"{dep.name}={dep.name}.mar", "--ts-config", str(config)]
        with (dep.logs / "torchserve.out").open("ab") as out:
            code = subprocess.run(cmd, check=False, cwd=dep.state, env=dep.env(), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True).returncode
        if code != 0 or not (dep.tmp / PID_FILE).exists():
            raise StartError(f"torchserve --start failed (exit {code}); see {dep.logs / 'torchserve.out'}")
        wait_until_predicting(dep, TORCHSERVE_START_S)

    def stop(self) -> None:
        from mlinfra.torchserve_local import stop

        stop(self.dep)


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
            text = _read_tail(log)
            if text is None:
                continue
            lines = text.splitlines()
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



LOG_TAIL_BYTES = 256 * 1024


def _read_tail(path: Path) -> str | None:
    """The end of a log the sandbox writes, read without following a link it put there (to a host file, a FIFO,
    /dev/zero) and never more than LOG_TAIL_BYTES: None when it is not a plain file (yet)."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        size = os.fstat(fd).st_size
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        return handle.read(LOG_TAIL_BYTES).decode("utf-8", errors="replace")
