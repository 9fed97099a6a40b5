"""The one place that knows how to configure nbgrader for a throwaway course folder.

nbgrader wants a course root with source/, release/, submitted/, autograded/, feedback/ and a gradebook. We never
point it at the repository itself: each release or grading run builds its own course folder, so nothing leaks
between runs and two students' grades never share a database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traitlets.config import Config

    from autograder.labs import Lab

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"


def ensure_venv_tools_on_path() -> None:
    """nbgrader shells out to `alembic` and kernels to `python`: make them the venv's own, even when the venv was
    not activated (`make` and `.venv/bin/python -m autograder` do not activate it)."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + path


def course_config(course_root: Path, lab: Lab, *, cell_timeout: int | None = None) -> Config:
    from traitlets.config import Config

    ensure_venv_tools_on_path()

    config = Config()
    config.CourseDirectory.root = str(course_root)
    config.CourseDirectory.course_id = "mlinfra-workbook"
    config.CourseDirectory.db_url = f"sqlite:///{course_root / 'gradebook.db'}"
    config.CourseDirectory.source_directory = "source"
    config.CourseDirectory.release_directory = "release"
    # We never use nbgrader's exchange; pointing it inside the course folder stops it complaining about
    # /usr/local/share/nbgrader/exchange on every call.
    config.Exchange.root = str(course_root / "exchange")
    config.ClearSolutions.code_stub = {"python": CODE_STUB}
    config.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    config.Execute.timeout = cell_timeout or lab.cell_timeout
    # A cell past its timeout is interrupted and graded as an error; the rest of the notebook still runs.
    config.Execute.interrupt_on_timeout = True
    # nbgrader waits only 4 s for a cell's output after it finishes and then fails the WHOLE notebook; on a busy
    # machine (a class graded two at a time) that is a coin toss, so wait as long as a cell may run.
    config.Execute.iopub_timeout = max(30, cell_timeout or lab.cell_timeout)
    config.Execute.kernel_name = "python3"
    # Keep the learner's own files: without this nbgrader copies the source (solution) versions over them and
    # every student would score the solution (docs/decisions.md, nbgrader).
    config.Autograde.exclude_overwriting = {lab.name: list(lab.editable)}
    # A student who deleted a graded cell gets it back (scored from the original source) instead of a crash.
    config.OverwriteCells.add_missing_cells = True
    config.NbGraderAPI.log_level = logging.WARNING
    return config


@contextlib.contextmanager
def quiet_nbgrader() -> Iterator[None]:
    """nbgrader logs every step at INFO to stderr; our commands print their own summary instead."""
    loggers = [logging.getLogger(name) for name in ("traitlets", "nbgrader", "NbGraderAPI", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
