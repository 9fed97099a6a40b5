"""TensorFlow in a Python process of its own that stays up between notebook cells, so it loads once.

Lab03's kernel keeps Keras on the torch backend and TensorFlow out of its process (docs/frameworks.md says why);
its TensorFlow checks run as scripts in a child process. Starting a fresh Python for each script costs
TensorFlow's import every time (about 5 CPU-seconds); ``TFWorker`` starts one child on first use and sends it
each script to run, so the second check costs only the check.

Each script runs as ``__main__`` in a fresh namespace, with the child's working folder first on ``sys.path``, and
every module imported from that folder is forgotten before the next script: a learner who edits ``tf_port.py``
and runs the check again gets the new code, as with a fresh process. What stays loaded is TensorFlow, torch and
NumPy. The child's stdout carries only the worker's own replies (a script's prints are captured and returned),
so a script cannot garble them by printing.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from pathlib import Path
from typing import Self

from mlinfra.frameworks import TF_QUIET_ENV

# The child's loop. It keeps a private copy of fd 1 for its replies and points fd 1 at /dev/null, so nothing a
# script (or C++ below it) writes there can be mistaken for a reply.
_CHILD = r"""
import contextlib, io, json, os, runpy, sys, traceback
replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
here = os.path.realpath(os.getcwd())
sys.path.insert(0, here)
for line in sys.stdin:
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if origin and os.path.realpath(origin).startswith(here + os.sep):
            del sys.modules[name]
    printed, error = io.StringIO(), ""
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(line.rstrip("\n"), run_name="__main__")
    except SystemExit as exc:
        error = "" if exc.code in (None, 0) else f"SystemExit: {exc.code}"
    except BaseException:
        error = (traceback.format_exc().strip().splitlines() or ["an error with no message"])[-1]
    replies.write(json.dumps({"stdout": printed.getvalue(), "error": error}) + "\n")
"""


class TFWorker:
    """Runs Python scripts that use TensorFlow in one long-lived child process, started on first use.

    ``run(code, name)`` writes ``code`` to ``folder/name``, runs it in the child and returns what it printed. A
    script that raises (a failed ``assert`` included) raises ``AssertionError`` here with its last line; one that
    runs past ``timeout`` seconds stops the child (the next run starts a new one). ``close()`` ends the child.
    """

    def __init__(self, folder: str | Path, env: dict[str, str] | None = None, timeout: float = 55.0) -> None:
        self.folder = Path(folder)
        self.env = {**(os.environ if env is None else env), **TF_QUIET_ENV, "KERAS_BACKEND": "tensorflow"}
        self.timeout = timeout
        self._child: subprocess.Popen[str] | None = None

    def run(self, code: str, name: str) -> str:
        script = self.folder / name
        script.write_text(code)
        child = self._started()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(f"{script}\n")
        child.stdin.flush()
        reply = self._reply(child, name)
        if reply["error"]:
            raise AssertionError(f"{name}, run in the TensorFlow process, failed: {reply['error'][:700]}")
        return str(reply["stdout"])

    def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            child.stdin.close()  # the child's loop ends at end of input
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _started(self) -> subprocess.Popen[str]:
        if self._child is None or self._child.poll() is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._child = subprocess.Popen(
                [sys.executable, "-u", "-c", _CHILD],
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # TensorFlow's C++ notices; a script's errors come back in the reply
                text=True,
            )
        return self._child

    def _reply(self, child: subprocess.Popen[str], name: str) -> dict[str, object]:
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            ready = selector.select(self.timeout)
        if not ready:
            self.close_hard()
            raise AssertionError(
                f"{name} still ran after {self.timeout:.0f} s in the TensorFlow process and was stopped: look for a "
                "loop that never ends"
            )
        line = child.stdout.readline()
        if not line:
            code = child.wait()
            self._child = None
            raise AssertionError(f"{name}: the TensorFlow process ended (exit code {code}) before it answered")
        try:
            reply = json.loads(line)
        except ValueError:
            self.close_hard()
            raise AssertionError(f"{name}: the TensorFlow process answered something unreadable") from None
        return reply if isinstance(reply, dict) else {"stdout": "", "error": "an unreadable reply"}

    def close_hard(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.kill()
            child.wait()
