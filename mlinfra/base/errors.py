"""Errors that end a command with exit code 2 and a one-line reason (docs/architecture.md, "Exit codes")."""

from __future__ import annotations


class UsageError(Exception):
    """The command could not do its job: bad arguments, a missing file or tool, no engine.

    The message is shown as one line, so it must name the file, field or tool at fault and say what to do next.
    """


class BadConfig(UsageError):
    """A YAML or JSON file the command reads is malformed. The message names the file and the key or line."""

    def __init__(self, path: object, where: str, problem: str) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        location = f"{self.path}: {where}" if where else self.path
        super().__init__(f"{location}: {problem}")


def unwritable(path: object, exc: OSError) -> UsageError:
    """The one message for an output path that cannot be written (a folder that is a file, /proc, no permission)."""
    reason = exc.strerror or type(exc).__name__
    where = exc.filename or path
    return UsageError(f"cannot write {where}: {reason}; choose another output path (a folder you can write to)")
