from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.nbgrader_course import ensure_venv_tools_on_path

ROOT = Path(__file__).resolve().parent.parent

# pytest may be started without `make` (and without activating the venv): give every test the same ground.
os.environ.setdefault("WORKBOOK_ROOT", str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".state" / "airflow"))
ensure_venv_tools_on_path()


# `make test` runs on two processes, a whole file to a process (xdist's --dist loadfile), handing out the next file
# to whichever process is free. By default xdist hands them out by how many tests a file holds, most first, so the
# files that take a minute or more with few tests (lab05's isolation: 2 tests, 87 s) came last and one process
# could run alone at the end while the other waited. These start first, longest first, so the two processes end
# together (the longest-first rule of scheduling on two machines); every other file follows in xdist's own order.
# Seconds of one process on a quiet machine (2026-12-06, make test's two processes); a file missing here is
# scheduled by its test count, as before. tests/test_schedule.py checks that each named file exists.
LONG_FILES: dict[str, float] = {
    "tests/graded/test_lab03_frameworks.py": 131,
    "tests/graded/test_phase1_lab1_airflow_dag.py": 125,
    "tests/serving_labs/test_deploy_isolation.py": 87,
    "tests/grading/test_hostile_batch.py": 70,  # both kinds: 45 s + 35 s, the container part since cut by ~30%
    "tests/grading_airflow/test_airflow_engine.py": 62,  # the Celery engine's test alone
    "tests/docker/test_deploy.py": 59,
}


def file_order(counts: dict[str, int], seconds: dict[str, float]) -> list[str]:
    """The order files are handed out in: those with known `seconds` first, longest first; then the rest by test
    count, most first (xdist's own rule), ties in collection order (`counts` is in collection order)."""
    position = {name: i for i, name in enumerate(counts)}
    return sorted(counts, key=lambda name: (0, -seconds[name], 0) if name in seconds
                  else (1, -counts[name], position[name]))


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def pytest_configure(config: pytest.Config) -> None:
    # xdist re-sorts files by test count unless told not to; the order below is then the one it hands out.
    if getattr(config.option, "loadscopereorder", False):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    counts: dict[str, int] = {}
    for item in items:
        counts[_file_of(item)] = counts.get(_file_of(item), 0) + 1
    rank = {name: i for i, name in enumerate(file_order(counts, LONG_FILES))}
    items.sort(key=lambda item: rank[_file_of(item)])  # stable: a file's own tests keep their order
