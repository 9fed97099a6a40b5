"""Start a learner's ASGI app under uvicorn on a free 127.0.0.1 port, wait until it is ready, and stop it.

The server runs as a subprocess in its own process group (so stopping it also stops anything it forked), with its
output in a log file whose last lines explain a service that never comes up.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.assess.targets import Reply
from autograder.errors import UsageError

HOST = "127.0.0.1"
POLL_S = 0.2


@dataclass(frozen=True)
class AppSpec:
    """`module:attr` or `path/to/file.py:attr` (attr defaults to `app`), as uvicorn will import it."""

    module: str
    attr: str
    app_dir: Path | None

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"

    @classmethod
    def parse(cls, spec: str, cwd: Path | None = None) -> AppSpec:
        where, _, attr = spec.rpartition(":") if ":" in spec else (spec, "", "app")
        attr = attr or "app"
        if not where or not attr.isidentifier():
            raise UsageError(f"--app {spec!r}: expected MODULE:ATTR or FILE.py:ATTR, e.g. app.py:app")
        cwd = cwd or Path.cwd()
        if where.endswith(".py") or "/" in where or os.sep in where:
            path = (cwd / where).resolve()
            if not path.is_file():
                raise UsageError(f"--app {spec!r}: no file {path}; give the path to your app's .py file")
            if not path.stem.isidentifier():
                raise UsageError(f"--app {spec!r}: {path.name} cannot be imported as a module: rename it")
            return cls(path.stem, attr, path.parent)
        if not all(part.isidentifier() for part in where.split(".")):
            raise UsageError(
                f"--app {spec!r}: {where!r} is not a module name; give MODULE:ATTR or FILE.py:ATTR"
            )
        sys.path.insert(0, str(cwd))
        try:
            found = importlib.util.find_spec(where)
        except ModuleNotFoundError:
            found = None
        except Exception:  # noqa: BLE001  a parent package that fails to import is the service's problem: let uvicorn show it
            found = True  # type: ignore[assignment]
        finally:
            sys.path.remove(str(cwd))
        if found is None:
            raise UsageError(
                f"--app {spec!r}: no module named {where!r} from {cwd}; run from the folder that holds "
                "it, or give FILE.py:ATTR"
            )
        return cls(where, attr, None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class UvicornServer:
    """One uvicorn process serving `spec` on 127.0.0.1; use as a context manager so it is always stopped."""

    def __init__(self, spec: AppSpec, log_dir: Path | None = None) -> None:
        self.spec = spec
        self._tmp = None if log_dir else tempfile.TemporaryDirectory(prefix="assess-")
        self.log_path = Path(log_dir or self._tmp.name) / "server.log"  # type: ignore[union-attr]
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            self.spec.target,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--no-access-log",
        ]
        if self.spec.app_dir is not None:
            cmd += ["--app-dir", str(self.spec.app_dir)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # start_new_session: its pgid is its pid
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=grace_s)
        # Anything the app forked into the group and left behind goes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> UvicornServer:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Readiness:
    ready: bool
    reply: Reply
    seconds: float
    reason: str = ""


def wait_until_ready(
    probe: Callable[[], Reply], timeout_s: float, exited: Callable[[], int | None] = lambda: None
) -> Readiness:
    """Poll `probe` until it answers 200, the process exits, or `timeout_s` passes."""
    start = time.monotonic()
    reply = Reply(None, error="not tried yet")
    while True:
        reply = probe()
        waited = time.monotonic() - start
        if reply.status == 200:
            return Readiness(True, reply, waited)
        code = exited()
        if code is not None:
            return Readiness(
                False, reply, waited, f"the server process exited with code {code} before it was ready"
            )
        if waited >= timeout_s:
            last = reply.describe()
            return Readiness(
                False,
                reply,
                waited,
                f"not ready within {timeout_s:g} s (last answer: {last}); if it is only slow to load, "
                "raise --startup-timeout",
            )
        time.sleep(POLL_S)
