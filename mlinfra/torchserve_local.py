"""Run the course model on a local TorchServe: `python -m mlinfra.torchserve_local start|stop|status`.

`start` archives a model folder (default models/digits-resnet18) with the reference handler
(mlinfra/torchserve_handler.py), writes a config.properties that binds every listener, gRPC included, to
127.0.0.1 and turns token authorisation off (local work only), starts TorchServe, and returns once a real
prediction succeeds: TorchServe's /ping says Healthy even while the model's worker crash-loops, so only an
answered prediction proves the deployment works. `stop` runs `torchserve --stop` (the only clean stop: killing
the wrapper leaves Java running) and waits until the Java process and its workers are gone.

Everything lives under .state/torchserve/ (archive, config, logs, pid file), so a second TorchServe started
elsewhere with its own state folder does not collide with this one.
Exit codes: 0 done, 1 TorchServe started but never answered a prediction, 2 it could not be started.
"""

from __future__ import annotations

import argparse
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


def config_properties(dep: Deployment) -> str:
    p = dep.ports
    return "\n".join(
        [
            "# Written by `python -m mlinfra.torchserve_local start`. Every listener on 127.0.0.1:",
            "# nothing here is meant to be reachable from another machine.",
            f"inference_address=http://127.0.0.1:{p.inference}",
            f"management_address=http://127.0.0.1:{p.management}",
            f"metrics_address=http://127.0.0.1:{p.metrics}",
            "grpc_inference_address=127.0.0.1",
            f"grpc_inference_port={p.grpc_inference}",
            "grpc_management_address=127.0.0.1",
            f"grpc_management_port={p.grpc_management}",
            "# Token authorisation is on by default (requests without a key get 400). Off for LOCAL work",
            "# only; any deployment others can reach keeps it on and sends `Authorization: Bearer <key>`.",
            "disable_token_authorization=true",
            "# One worker: two would fight over the two cores and double the memory.",
            "default_workers_per_model=1",
            "# The course refuses uploads over 10 MB with a 413 saying why. The front end's own 413 has an",
            "# empty body, so the handler enforces 10 MB; this larger limit is a backstop for huge uploads.",
            "max_request_size=33554432",
            f"model_store={dep.state / 'model-store'}",
            "",
        ]
    )


def java_executable() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise StartError(JAVA_HINT)
    return candidate


def _venv_tool(name: str) -> str:
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
        _venv_tool("torch-model-archiver"), "--model-name", dep.name, "--version", "1.0",
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

    image, deadline, last = probe_image(), time.monotonic() + timeout, "no answer yet"
    began = noted = time.monotonic()
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            if time.monotonic() - noted >= 10:
                noted = time.monotonic()
                print(f"  waiting for the first prediction ... {noted - began:.0f} s (last: {last})", flush=True)
            if running_pid(dep) is None:
                raise TimeoutError(f"TorchServe exited during start-up; see {dep.logs / 'ts_log.log'}")
            try:
                reply = client.post(dep.predict_url, content=image)
                if reply.status_code == 200:
                    return reply.json()
                last = f"HTTP {reply.status_code}: {reply.text[:200]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.5)  # a retry interval, not a readiness guess: each round is a real prediction
    raise TimeoutError(f"no successful prediction within {timeout:.0f} s (last: {last}); see {dep.logs}")


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

    return Ports(
        port("inference_address", 8080),
        port("management_address", 8081),
        port("metrics_address", 8082),
        port("grpc_inference_port", 7070),
        port("grpc_management_port", 7071),
    )


def start(
    dep: Deployment,
    model_dir: Path,
    timeout: float = 120.0,
    handler: Path = HANDLER,
    config_text: str | None = None,
) -> dict:
    """Archive, start, and return the first successful prediction. A lab passes its own handler and config."""
    java_executable()
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
    config.write_text(config_text if config_text is not None else config_properties(dep))
    cmd = [
        _venv_tool("torchserve"), "--start", "--ncs", "--model-store", str(dep.state / "model-store"),
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

    pid = running_pid(dep)
    if pid is None:
        return False
    procs = [psutil.Process(pid)]
    try:
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        pass
    subprocess.run(
        [_venv_tool("torchserve"), "--stop"], check=False, cwd=dep.state, env=dep.env(), capture_output=True
    )
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:  # only the processes this deployment started, by pid
        proc.kill()
    psutil.wait_procs(alive, timeout=10)
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
    print(f"  assess:     autograder assess --torchserve {dep.inference_url} --model {dep.name}")
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


def run(args: argparse.Namespace) -> int:
    dep = _deployment(args)

    if args.action == "status":
        pid = running_pid(dep)
        print(f"TorchServe is {f'running (pid {pid})' if pid else 'not running'} [{dep.state}]")
        if pid:
            _print_urls(dep)
        return 0 if pid else 1
    if args.action == "stop":
        print("TorchServe stopped." if stop(dep) else "TorchServe was not running.")
        return 0
    model_dir = (args.model_dir or model_dir_from_env()).resolve()
    print(f"archiving {model_dir} and starting TorchServe (state in {dep.state}) ...", flush=True)
    began = time.monotonic()
    try:
        answer = start(dep, model_dir, args.timeout)
    except TimeoutError as exc:  # started but never predicted: the service fell short (StartError: exit 2)
        print(f"torchserve_local: {exc}", file=sys.stderr)
        return 1
    print(f"ready in {time.monotonic() - began:.1f} s; a grey test image got: {json.dumps(answer)}")
    _print_urls(dep)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.torchserve_local", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
