"""Start a learner's ASGI app under uvicorn on a free 127.0.0.1 port, wait until it is ready, and stop it.

The server runs as a subprocess in its own process group (so stopping it also stops anything it forked), with its
output in a log file whose last lines explain a service that never comes up. The port is never "found free, then
handed on": this process binds a socket to port 0 and passes the bound socket itself to uvicorn (through
`autograder.assess.uvicorn_on_fd`), so no other process can take the port in between. The model folder is given to the
app as an absolute path ($MLINFRA_MODEL_DIR, default the workbook's models/digits-resnet18), so an app started from
a lab folder finds it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.assess.targets import Reply
from autograder.errors import UsageError
from mlinfra.base.procs import stop_group

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


def bound_socket() -> socket.socket:
    """A listening TCP socket on 127.0.0.1 with a port the kernel picked; uvicorn serves on it (launch.py)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def model_env() -> dict[str, str]:
    """$MLINFRA_MODEL_DIR for the app: the caller's if set, else the workbook's default folder, made absolute."""
    from mlinfra.modelstore import MODEL_DIR_ENV, model_dir_from_env

    return {MODEL_DIR_ENV: str(model_dir_from_env().resolve())}


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

    @property
    def target(self) -> str:
        return self.spec.target

    def start(self) -> None:
        sock = bound_socket()
        self.port = int(sock.getsockname()[1])
        # Our launcher, not `uvicorn --fd`: uvicorn would treat the TCP socket as a Unix one (see launch.py).
        cmd = [sys.executable, "-m", "autograder.assess.uvicorn_on_fd", self.spec.target, "--fd", str(sock.fileno())]
        if self.spec.app_dir is not None:
            cmd += ["--app-dir", str(self.spec.app_dir)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **model_env()}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    pass_fds=(sock.fileno(),),
                )
        finally:
            sock.close()  # uvicorn holds its own copy of the socket now

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        from mlinfra.base.output import printable

        # The app wrote these: its control characters (escape sequences) are shown, never sent to a terminal.
        return [printable(line)[:400] for line in text.splitlines() if line.strip()][-lines:]

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, grace_s)  # the app and anything it forked into its group

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> UvicornServer:  # noqa: PYI034 - never subclassed: the concrete type reads plainer than Self
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Readiness:
    ready: bool
    reply: Reply
    seconds: float
    reason: str = ""


# A service that answers /health with the same 503 for this long has finished starting (uvicorn serves only once
# the app's start-up is done) and is telling us why it is not ready: waiting longer will not change the answer.
STUCK_503_S = 3.0


class Waiting:
    """Show the elapsed time while waiting: one line rewritten in place on a terminal, a line every 10 s in a log."""

    def __init__(self, what: str, stream: Any = None) -> None:
        self.what, self.stream = what, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last = 0.0

    def update(self, waited: float, reply: Reply) -> None:
        every = 1.0 if self.tty else 10.0
        if waited - self.last < every:
            return
        self.last = waited
        line = f"waiting for {self.what}: {waited:.0f} s (last answer: {shorten(reply.describe(), 70)})"
        if self.tty:
            self.stream.write("\r" + line.ljust(110)[:110])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def wait_until_ready(
    probe: Callable[[], Reply],
    timeout_s: float,
    exited: Callable[[], int | None] = lambda: None,
    what: str = "the service",
    stuck_503_s: float = STUCK_503_S,
) -> Readiness:
    """Poll `probe` until it answers 200, the process exits, it keeps giving the same 503, or `timeout_s` passes.

    Hand-written rather than a retry library's loop: each poll also asks whether the process died and whether the
    503 has stopped changing, and either ends the wait with its own reason.
    """
    start = time.monotonic()
    waiting = Waiting(what)
    same_503_since: float | None = None
    last_503 = None
    try:
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
            if reply.status == 503:
                if reply.text != last_503:
                    last_503, same_503_since = reply.text, waited
                elif waited - (same_503_since or waited) >= stuck_503_s and not still_starting(reply):
                    return Readiness(False, reply, waited, f"it answers 503 and says why: {reason_of(reply)}")
            else:
                last_503 = same_503_since = None
            if waited >= timeout_s:
                return Readiness(
                    False,
                    reply,
                    waited,
                    f"not ready within {timeout_s:g} s (last answer: {reply.describe()}); if it is only slow to "
                    "load, raise --startup-timeout",
                )
            waiting.update(waited, reply)
            time.sleep(POLL_S)
    finally:
        waiting.done()


def still_starting(reply: Reply) -> bool:
    """A 503 that says the service is still on its way (loading, starting, warming up): worth waiting for."""
    return any(word in reason_of(reply).lower() for word in ("loading", "starting", "warming", "not loaded yet"))


def reason_of(reply: Reply) -> str:
    """The service's own explanation in a 503 body ({"detail": ...} or {"status": ...}), else the raw answer."""
    body = reply.body
    if isinstance(body, dict):
        for key in ("detail", "reason", "message", "status"):
            if isinstance(body.get(key), str) and body[key].strip():
                return body[key].strip()
    return reply.describe()
