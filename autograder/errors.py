"""The grading package's errors are the shared base's (so the course library never imports the grader)."""

from __future__ import annotations

from mlinfra.base.errors import BadConfig, UsageError, unwritable

__all__ = ["BadConfig", "UsageError", "unwritable"]
