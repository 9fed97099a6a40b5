"""Run the course model on a local TorchServe: `python -m mlinfra.torchserve_local start|stop|status`.

`start` archives a model folder (default models/digits-resnet18) with the reference handler
(mlinfra/torchserve_handler.py), writes a config.properties (the settings of the course's reference, which is
lab05's answer and lives with the lab's instructor source, or of the file `--config` names, with this
deployment's ports and model store), starts TorchServe, and returns once a real prediction succeeds: TorchServe's /ping says Healthy even while the model's worker crash-loops, so only an
answered prediction proves the deployment works. `stop` runs `torchserve --stop` (the only clean stop: killing
the wrapper leaves Java running) and waits until the Java process and its workers are gone.

Everything lives under .state/torchserve/ (archive, config, logs, pid file), so a second TorchServe started
elsewhere with its own state folder does not collide with this one.
Exit codes: 0 done, 1 TorchServe started but never answered a prediction, 2 it could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlinfra.base import runner
from mlinfra.base.errors import UsageError
from mlinfra.base.paths import repo_root
from mlinfra.base.runner import EXIT_FELL_SHORT, EXIT_PASSED
from mlinfra.base.wait import NotReady, wait_until
from mlinfra.modelstore import CARD_FILE, LABELS_FILE, MODEL_FILE, model_dir_from_env

HANDLER = Path(__file__).with_name("torchserve_handler.py")
PID_FILE = ".model_server.pid"  # TorchServe writes it in $TMPDIR: a private TMPDIR gives a private instance
JAVA_HINT = (
    "TorchServe runs on Java 11 or newer (17 recommended) and none was found on PATH or in $JAVA_HOME: "
    "install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17), "
    "then retry"
)


class StartError(UsageError):
    """TorchServe could not be started (exit 2); the message says what to do."""


@dataclass(frozen=True)
class Ports:
    inference: int = 8085
    management: int = 8086
    metrics: int = 8087
    grpc_inference: int = 7070
    grpc_management: int = 7071

    def all(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass(frozen=True)
class Deployment:
    state: Path
    name: str
    ports: Ports

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.inference}"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.management}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}"

    @property
    def predict_url(self) -> str:
        return f"{self.inference_url}/predictions/{self.name}"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(TMPDIR=str(self.tmp), LOG_LOCATION=str(self.logs), METRICS_LOCATION=str(self.logs))
        return env


# The course's own config.properties is lab05's answer, so the library does not spell it out: it reads the
# reference from the lab's instructor source (in the full course only; a class copy has no solutions/) or takes
# the learner's file, and sets only what belongs to a deployment: its ports and its model store.
REFERENCE_CONFIG = Path(__file__).resolve().parent.parent / "solutions" / "lab05-torchserve" / "config.properties"
# config.properties key -> the Ports field it sets; TorchServe's own default where a file is silent.
PORT_KEYS = (
    ("inference_address", "inference", 8080),
    ("management_address", "management", 8081),
    ("metrics_address", "metrics", 8082),
    ("grpc_inference_port", "grpc_inference", 7070),
    ("grpc_management_port", "grpc_management", 7071),
)


def reference_config() -> str:
    """The course's reference config.properties (lab05's instructor source); StartError in a class copy."""
    try:
        return REFERENCE_CONFIG.read_text(encoding="utf-8")
    except OSError:
        raise StartError(
            f"no reference config at {REFERENCE_CONFIG}: a class copy does not ship it (exercise 05 asks you to "
            "write one); pass yours: --config workspace/lab05-torchserve/config.properties"
        ) from None


def config_properties(dep: Deployment, base: str | None = None) -> str:
    """A config.properties for `dep`: the settings of `base` (a config.properties text; default the course's
    reference, `reference_config()`), with each listener's port set to dep's and the model store added."""
    text = reference_config() if base is None else base
    ports = dep.ports.all()
    fields = {key: field for key, field, _ in PORT_KEYS}
    out = ["# Written by `python -m mlinfra.torchserve_local start`: the settings of the config it was given,",
           "# with this deployment's ports and model store."]
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or line.lstrip().startswith("#") or key == "model_store":
            out.append(line)
            continue
        if key in fields:
            port = ports[fields[key]]
            value = value.strip()
            # an address keeps its scheme and host and takes the port; a *_port key is the port itself
            value = f"{value.rsplit(':', 1)[0]}:{port}" if key.endswith("_address") else str(port)
            line = f"{key}={value}"
        out.append(line)
    out += [f"model_store={dep.state / 'model-store'}", ""]
    return "\n".join(out)


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise StartError(JAVA_HINT)
    return candidate


def venv_tool(name: str) -> str:
    tool = Path(sys.executable).parent / name
    found = str(tool) if tool.exists() else shutil.which(name)
    if not found:
        raise StartError(
            f"{name} is not installed in this environment: run `make setup` (it is in pyproject.toml)"
        )
    return found


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def running_pid(dep: Deployment) -> int | None:
    """The Java front end's pid when this deployment's TorchServe is alive, else None."""
    import psutil

    pid_file = dep.tmp / PID_FILE
    try:
        pid = int(pid_file.read_text().split()[0])
        return pid if "org.pytorch.serve.ModelServer" in psutil.Process(pid).cmdline() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def probe_image() -> bytes:
    """A small grey PNG: enough to prove the whole path (decode, model, reply) works."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), color=128).save(buffer, format="PNG")
    return buffer.getvalue()


def archive(model_dir: Path, dep: Deployment, handler: Path = HANDLER) -> Path:
    if not handler.is_file():  # the class copy leaves the reference handler out (docs/class-copy.md)
        raise StartError(f"no TorchServe handler at {handler}: a class copy does not ship the course's reference "
                         "handler (exercise 05 asks you to write one); archive yours as lab05-torchserve shows")
    missing = [n for n in (MODEL_FILE, LABELS_FILE, CARD_FILE) if not (model_dir / n).is_file()]
    if missing:
        raise StartError(
            f"model folder {model_dir} lacks {', '.join(missing)}: run `make model`, or pass --model-dir"
        )
    store = dep.state / "model-store"
    store.mkdir(parents=True, exist_ok=True)
    cmd = [
        venv_tool("torch-model-archiver"), "--model-name", dep.name, "--version", "1.0",
        "--serialized-file", str(model_dir / MODEL_FILE), "--handler", str(handler),
        "--extra-files", f"{model_dir / LABELS_FILE},{model_dir / CARD_FILE}",
        "--export-path", str(store), "--force",
    ]  # fmt: skip
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise StartError(
            f"torch-model-archiver failed: {''.join((done.stderr or done.stdout).strip().splitlines()[-1:])}"
        )
    return store / f"{dep.name}.mar"


def wait_until_predicting(dep: Deployment, timeout: float) -> dict:
    """Poll with a real prediction until it answers 200 with JSON; fail fast if Java dies."""
    import httpx

    image, last, noted = probe_image(), ["no answer yet"], [0.0]

    def progress(waited: float) -> None:
        if waited - noted[0] >= 10:
            noted[0] = waited
            print(f"  waiting for the first prediction ... {waited:.0f} s (last: {last[0]})", flush=True)

    with httpx.Client(timeout=10) as client:

        def predicts() -> dict | None:
            # TorchServe runs detached (its pid file, not our child): a dead Java ends the wait here
            if running_pid(dep) is None:
                raise TimeoutError(f"TorchServe exited during start-up; see {dep.logs / 'ts_log.log'}")
            try:
                reply = client.post(dep.predict_url, content=image)
                if reply.status_code == 200:
                    return {"answer": reply.json()}  # boxed: an empty JSON answer is still an answer
                last[0] = f"HTTP {reply.status_code}: {reply.text[:200]}"
            except httpx.TransportError as exc:
                last[0] = type(exc).__name__
            return None

        try:
            # a retry interval, not a readiness guess: each round is a real prediction
            return wait_until(predicts, timeout=timeout, interval=0.5, what="TorchServe", on_tick=progress)["answer"]
        except NotReady:
            raise TimeoutError(f"no successful prediction within {timeout:.0f} s (last: {last[0]}); "
                               f"see {dep.logs}") from None


def ports_from_config(text: str) -> Ports:
    """The ports a config.properties asks for (TorchServe's defaults where it is silent)."""
    props = dict(
        line.split("=", 1)
        for line in map(str.strip, text.splitlines())
        if line and not line.startswith("#") and "=" in line
    )
    props = {k.strip(): v.strip() for k, v in props.items()}

    def port(key: str, default: int) -> int:
        value = props.get(key, "")
        tail = value.rsplit(":", 1)[-1] if key.endswith("address") else value
        return int(tail) if tail.isdigit() else default

    return Ports(**{field: port(key, default) for key, field, default in PORT_KEYS})


def start(
    dep: Deployment,
    model_dir: Path,
    timeout: float = 120.0,
    handler: Path = HANDLER,
    config_text: str | None = None,
) -> dict:
    """Archive, start, and return the first successful prediction. A lab passes its own handler and config."""
    java_executable()
    text = config_properties(dep) if config_text is None else config_text  # before anything is started
    if running_pid(dep) is not None:
        raise StartError(f"TorchServe is already running from {dep.state}: `make torchserve-stop` first")
    busy = [f"{name} {port}" for name, port in dep.ports.all().items() if _port_in_use(port)]
    if busy:
        raise StartError(
            f"port(s) in use on 127.0.0.1: {', '.join(busy)}; stop what holds them, or pick others"
        )
    for folder in (dep.state, dep.logs, dep.tmp):
        folder.mkdir(parents=True, exist_ok=True)
    archive(model_dir, dep, handler)
    config = dep.state / "config.properties"
    config.write_text(text)
    cmd = [
        venv_tool("torchserve"), "--start", "--ncs", "--model-store", str(dep.state / "model-store"),
        "--models", f"{dep.name}={dep.name}.mar", "--ts-config", str(config),
    ]  # fmt: skip
    # Java inherits the wrapper's stdout: give it a file, or a captured pipe would never reach EOF. Its own
    # session keeps a Ctrl-C in this terminal from killing it half-way; `stop` is how it ends.
    with (dep.logs / "torchserve.out").open("ab") as out:
        code = subprocess.run(
            cmd,
            check=False,
            cwd=dep.state,
            env=dep.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ).returncode
    if code != 0 or not (dep.tmp / PID_FILE).exists():
        raise StartError(f"torchserve --start failed (exit {code}); see {dep.logs / 'torchserve.out'}")
    try:
        return wait_until_predicting(dep, timeout)
    except TimeoutError:
        stop(dep)
        raise


def stop(dep: Deployment, timeout: float = 60.0) -> bool:
    """Stop this deployment's TorchServe; wait for Java and its workers to exit. False if none was running."""
    import psutil

    from mlinfra.base.procs import end_processes

    pid = running_pid(dep)
    if pid is None:
        return False
    procs = [psutil.Process(pid)]
    with contextlib.suppress(psutil.Error):
        procs += procs[0].children(recursive=True)
    subprocess.run(
        [venv_tool("torchserve"), "--stop"], check=False, cwd=dep.state, env=dep.env(), capture_output=True
    )
    end_processes(procs, grace=timeout, terminate=False)  # only the processes this deployment started
    return True


def _deployment(args: argparse.Namespace) -> Deployment:
    root = repo_root()  # the workbook root whatever the current folder, as assess resolves it
    state = Path(args.state) if args.state else root / ".state" / "torchserve"
    ports = Ports(
        args.inference_port, args.management_port, args.metrics_port, args.grpc_port, args.grpc_port + 1
    )
    return Deployment(state=state.resolve(), name=args.name, ports=ports)


def _print_urls(dep: Deployment) -> None:
    print(f"  predict:    curl -X POST {dep.predict_url} -T some-digit.png")
    print(f"  management: {dep.management_url}/models/{dep.name}")
    print(f"  metrics:    {dep.metrics_url}/metrics")
    print(f"  logs:       {dep.logs}")
    print(f"  assess:     .venv/bin/autograder assess --torchserve {dep.inference_url} --model {dep.name}")
    print("  stop:       make torchserve-stop")


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="python -m mlinfra.torchserve_local",
        description="Archive the course model and serve it on a local TorchServe bound to 127.0.0.1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "actions:\n"
            "  start   archive the model with mlinfra/torchserve_handler.py, start TorchServe, wait for\n"
            "          a real prediction (not /ping), print the URLs      (make torchserve)\n"
            "  stop    torchserve --stop, then wait until Java and its workers are gone\n"
            "                                                             (make torchserve-stop)\n"
            "  status  running or not (exit 0 or 1), and the URLs\n"
            "needs Java 11+ (17 recommended) on PATH or in $JAVA_HOME\n"
            "exit codes: 0 done, 1 started but never predicted (or status: not running), 2 could not start"
        ),
    )
    parser.add_argument("action", choices=["start", "stop", "status"], help="see below")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="model folder (default $MLINFRA_MODEL_DIR, else models/digits-resnet18)",
    )
    parser.add_argument(
        "--name", default="digits", help="model name in the URL /predictions/NAME (default digits)"
    )
    parser.add_argument("--state", help="archive, config, logs and pid file (default .state/torchserve)")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a config.properties whose settings to use, ports set from the options below (default: the "
        "course's reference, solutions/lab05-torchserve/config.properties; a class copy has none: pass yours)",
    )
    parser.add_argument("--inference-port", type=int, default=8085, metavar="PORT", help="default 8085")
    parser.add_argument("--management-port", type=int, default=8086, metavar="PORT", help="default 8086")
    parser.add_argument("--metrics-port", type=int, default=8087, metavar="PORT", help="default 8087")
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=7070,
        metavar="PORT",
        help="gRPC inference port, default 7070; gRPC management is this + 1",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the first prediction (default 120)",
    )
    return parser


def _config_text(dep: Deployment, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return config_properties(dep, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StartError(f"--config {path}: cannot read it ({exc.__class__.__name__}); name a config.properties file") from None


def run(args: argparse.Namespace) -> int:
    dep = _deployment(args)

    if args.action == "status":
        pid = running_pid(dep)
        print(f"TorchServe is {f'running (pid {pid})' if pid else 'not running'} [{dep.state}]")
        if pid:
            _print_urls(dep)
        return EXIT_PASSED if pid else EXIT_FELL_SHORT
    if args.action == "stop":
        print("TorchServe stopped." if stop(dep) else "TorchServe was not running.")
        return EXIT_PASSED
    model_dir = (args.model_dir or model_dir_from_env()).resolve()
    print(f"archiving {model_dir} and starting TorchServe (state in {dep.state}) ...", flush=True)
    began = time.monotonic()
    try:
        answer = start(dep, model_dir, args.timeout, config_text=_config_text(dep, args.config))
    except TimeoutError as exc:  # started but never predicted: the service fell short (StartError: exit 2)
        print(f"torchserve_local: {exc}", file=sys.stderr)
        return EXIT_FELL_SHORT
    print(f"ready in {time.monotonic() - began:.1f} s; a grey test image got: {json.dumps(answer)}")
    _print_urls(dep)
    return EXIT_PASSED


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.torchserve_local", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
