"""Shared fixtures: one migrated Airflow database for the session, and DAG files written into tmp folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

HEADER = """
from __future__ import annotations
from pathlib import Path
import pendulum
from airflow.sdk import dag, task

DATA = Path(__file__).resolve().parent / "data"
"""


@pytest.fixture(scope="session", autouse=True)
def airflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point `autograder dag` at a session-wide template folder: the first --run migrates a database into it
    (~5 s) and every later run copies it instead of migrating again. Never the workbook's own .state/."""
    folder = tmp_path_factory.mktemp("airflow-template")
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOGRADER_AIRFLOW_TEMPLATE", str(folder))
    yield folder
    mp.undo()


@pytest.fixture
def write_dag(tmp_path: Path):
    """write_dag("name", body) -> path of tmp/<name>/dag.py holding HEADER + the dedented body."""

    def write(name: str, body: str, *, header: bool = True) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "dag.py"
        path.write_text((HEADER if header else "") + textwrap.dedent(body))
        return path

    return write
