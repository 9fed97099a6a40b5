"""The process contract, owned in one place for every command (`autograder <verb>`, `python -m mlinfra.<tool>`).

    0    passed / succeeded
    1    the work checked fell short (failing tests, a service that never came up)
    2    the command could not run: one line on stderr naming the file, field or tool and what to do
    2    an unexpected exception (a bug): one line, and the traceback in a log file whose path the line gives
    130  interrupted (Ctrl-C)

A command body returns an `Outcome` (exit 0 when it passed, else 1), a `Done(code, result)` when its exit code
follows another rule (`grade` exits 0 once every submission is graded, whatever the scores), or a plain int.
With `--json FILE` the runner writes the result there; with `--json -` stdout holds only that JSON and everything
the body prints goes to stderr (also for child processes, which share the file descriptors).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mlinfra.base import output
from mlinfra.base.errors import UsageError
from mlinfra.base.results import Outcome

EXIT_PASSED, EXIT_FELL_SHORT, EXIT_COULD_NOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line that says where the help is (exit 2, as argparse)."""

    def error(self, message: str) -> Any:
        # the help command as it runs from the repository root: the venv's tools are not on PATH
        command = f".venv/bin/{self.prog}" if self.prog.startswith(("autograder", "python -m ")) else self.prog
        self.exit(EXIT_COULD_NOT_RUN, f"{self.prog}: error: {message} (see `{command} --help`)\n")


@dataclass
class Done:
    """A result whose exit code is not simply 'passed or not'."""

    code: int
    result: Any = None


def exit_code(result: Any) -> int:
    if result is None:
        return EXIT_PASSED
    if isinstance(result, Done):
        return result.code
    if isinstance(result, Outcome):
        return EXIT_PASSED if result.passed else EXIT_FELL_SHORT
    if isinstance(result, bool):
        raise TypeError("a command body returned a bool; return an Outcome, Done or an int exit code")
    if isinstance(result, int):
        return result
    raise TypeError(f"a command body returned {type(result).__name__}; return an Outcome, Done or an int")


def _json_payload(result: Any) -> Any:
    if isinstance(result, Done):
        return result.result
    if isinstance(result, int) or result is None:
        return None
    return result


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point stdout (Python's and file descriptor 1) at stderr; `output.write_json('-')` still reaches stdout."""
    real = sys.stdout
    saved_fd = None
    try:
        if real.fileno() == 1:
            real.flush()
            saved_fd = os.dup(1)
            os.dup2(2, 1)
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        saved_fd = None  # a captured stdout (pytest's capsys) has no descriptor: swapping the object suffices
    json_stream = os.fdopen(os.dup(saved_fd), "w") if saved_fd is not None else real
    output.push_json_stdout(json_stream)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = real
        output.pop_json_stdout()
        json_stream.flush()
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
            json_stream.close()


def _log_traceback(prog: str) -> str:
    from mlinfra.base.paths import log_dir

    text = traceback.format_exc()
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{prog.replace(' ', '-').replace('.', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(text)
        return str(path)
    except OSError:
        sys.stderr.write(text)
        return "(printed above: the log folder could not be written)"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def run(prog: str, body: Callable[[], Any], *, json_out: str | None = None) -> int:
    """Run a command body under the process contract and return its exit code (never raises, but SystemExit)."""
    try:
        if json_out == "-":
            with stdout_to_stderr():
                result = body()
        else:
            result = body()
        code = exit_code(result)
        payload = _json_payload(result)
        if json_out and payload is not None:
            output.write_json(payload, json_out)
        return code
    except UsageError as exc:
        print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        if exc.filename:  # a path the user gave or the command derived: say which, and that it is not a bug
            print(f"{prog}: {exc.filename}: {exc.strerror or type(exc).__name__}; check that path and try again",
                  file=sys.stderr)
            return EXIT_COULD_NOT_RUN
        where = _log_traceback(prog)
        print(f"{prog}: unexpected {type(exc).__name__}: {_one_line(exc)[:200]}; traceback in {where}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    except Exception as exc:  # noqa: BLE001 - the contract: any other failure is exit 2 with one line and a log
        where = _log_traceback(prog)
        print(f"{prog}: unexpected {type(exc).__name__}: {_one_line(exc)[:200]} (a bug in the tool, not your work); "
              f"traceback in {where}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN


def main(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
         body: Callable[[argparse.Namespace], Any] | None = None) -> int:
    """Parse `argv` and run `body(args)` (default: the parser's `func`) under the contract. Parse errors exit 2."""
    args = parser.parse_args(argv)
    func = body or getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_COULD_NOT_RUN
    return run(prog, lambda: func(args), json_out=getattr(args, "json_out", None))
