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
from typing import TYPE_CHECKING, Any

from autograder.labs import NBGRADER_CONFIG

if TYPE_CHECKING:
    from traitlets.config import Config

    from autograder.labs import Lab

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
# nbgrader's region markers (the release strips them; the class-copy leak check and the seals read them)
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def find_course(start: Path) -> Path | None:
    """The nbgrader course folder at or above `start` (the folder holding nbgrader_config.py and source/)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / NBGRADER_CONFIG).is_file() and (folder / "source").is_dir():
            return folder
    return None


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
        for lg, level in zip(loggers, levels, strict=False):
            lg.setLevel(level)


class _SchemaCheckedOnce:
    """Stands in for the `jsonschema` module inside nbgrader's cell-metadata validation: `jsonschema.validate`
    checks the schema itself before every instance (nbgrader validates every cell, twice per notebook), which was
    a tenth of a student's bookkeeping. Same validator class, same errors (`best_match`), the schema checked once."""

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}

    def validate(self, instance: Any, schema: dict[str, Any]) -> None:
        import json

        import jsonschema

        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            validator = self._validators[key] = cls(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error


_SCHEMA_CHECKER = _SchemaCheckedOnce()
_SQL: dict[str, Any] = {}
_ALEMBIC_HEAD: dict[str, Any] = {}


def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


def _engine_sharing_compiled_sql(real_create_engine: Any) -> Any:
    from sqlalchemy import event

    def create_engine(db_url: str, **kwargs: Any) -> Any:
        engine = real_create_engine(db_url, **kwargs)
        if engine.dialect.name != "sqlite":
            return engine
        # SQLAlchemy caches compiled statements per engine, keyed by the engine's dialect object; nbgrader makes a
        # new engine for every Gradebook it opens (about ten a student), so each compiled its SQL afresh. Every
        # gradebook here is sqlite with the same settings: one dialect (set up by the first engine's first
        # connection, before any statement compiles) and one cache for all. Connections, pools and database
        # files stay each engine's own; the cache holds SQL text and no parameter (SQLAlchemy keeps them out).
        # Each student's gradebook is a throwaway copy this process reads back at once (the class gradebook is
        # written by the parent, from the results): no fsync. nbgrader commits once per graded cell, and a
        # synchronous sqlite commit cost about 6 ms here.
        event.listen(engine, "connect", _no_fsync)
        if not _SQL:
            _SQL["dialect"], _SQL["cache"] = engine.dialect, engine._compiled_cache
        else:
            engine.dialect, engine._compiled_cache = _SQL["dialect"], _SQL["cache"]
        return engine

    return create_engine


def _alembic_head(original: Any) -> Any:
    """nbgrader stamps a new gradebook with its schema's alembic head, found by running `alembic heads` in a new
    process (about 1.5 s, more under load: most of building a batch's template). Alembic's own API reads the same
    migration scripts in this process; a layout it does not expect falls back to nbgrader's way."""
    head: list[str] = []

    def get_alembic_version() -> str:
        if not head:
            try:
                from alembic.script import ScriptDirectory
                from nbgrader.dbutil import ALEMBIC_DIR

                heads = ScriptDirectory(ALEMBIC_DIR).get_heads()
            except Exception:  # noqa: BLE001 - nbgrader's own way still works
                heads = []
            head.append(heads[0] if len(heads) == 1 else original())
        return head[0]

    return get_alembic_version


def _create_missing_tables(metadata: Any, original: Any) -> Any:
    """nbgrader's Gradebook runs `create_all` on every open (about ten a student): a PRAGMA per table, 13 tables.
    One look at the table names tells whether there is anything to create; only then does it run."""

    def create_all(bind: Any = None, **kwargs: Any) -> None:
        from sqlalchemy import inspect

        if bind is not None and set(metadata.tables) <= set(inspect(bind).get_table_names()):
            return
        original(bind=bind, **kwargs)

    return create_all


@contextlib.contextmanager
def fast_bookkeeping() -> Iterator[None]:
    """nbgrader with its fixed costs paid once per process instead of once per student or gradebook: its
    gradebook's compiled SQL, its metadata schema check, its alembic head (above), its table creation (only when a
    table is missing), and no fsync on gradebooks that are thrown away. What it reads and writes, and the grades,
    are unchanged. Only for a trusted grading process and throwaway gradebooks (a student's, the batch's
    template); undone on exit."""
    import nbgrader.api
    from nbgrader.nbgraderformat import common

    saved = nbgrader.api.create_engine, common.jsonschema, nbgrader.api.get_alembic_version
    metadata = nbgrader.api.Base.metadata
    nbgrader.api.create_engine = _engine_sharing_compiled_sql(saved[0])
    common.jsonschema = _SCHEMA_CHECKER  # type: ignore[assignment]
    nbgrader.api.get_alembic_version = _ALEMBIC_HEAD.setdefault("get", _alembic_head(saved[2]))
    metadata.create_all = _create_missing_tables(metadata, metadata.create_all)  # type: ignore[method-assign]
    try:
        yield
    finally:
        nbgrader.api.create_engine, common.jsonschema, nbgrader.api.get_alembic_version = saved
        del metadata.create_all  # the instance attribute: the class's method again
