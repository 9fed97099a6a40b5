"""make test's two processes end together: the files known to be long are handed out first (tests/conftest.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

# By its path: the name `conftest` is whichever conftest.py pytest imported last (tests/graded has one too).
_spec = importlib.util.spec_from_file_location("tests_root_conftest", Path(__file__).with_name("conftest.py"))
assert _spec is not None and _spec.loader is not None
conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(conftest)


def test_every_long_file_exists() -> None:
    missing = [name for name in conftest.LONG_FILES if not (conftest.ROOT / name).is_file()]
    assert not missing, f"tests/conftest.py LONG_FILES names files that are gone (rename or drop them): {missing}"


def test_long_files_first_longest_first_then_by_test_count() -> None:
    counts = {"a.py": 3, "b.py": 40, "slow.py": 2, "c.py": 40, "slower.py": 1}
    order = conftest.file_order(counts, {"slow.py": 60, "slower.py": 90})
    assert order == ["slower.py", "slow.py", "b.py", "c.py", "a.py"]


def test_the_hook_moves_whole_files_and_keeps_each_files_own_order() -> None:
    long_file = "tests/serving_labs/test_deploy_isolation.py"
    ids = ["tests/a.py::t1", "tests/a.py::t2", "tests/b.py::t1", f"{long_file}::first", f"{long_file}::second",
           "modules/x.ipynb::Cell 0", "modules/x.ipynb::Cell 1", "modules/x.ipynb::Cell 2"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        f"{long_file}::first", f"{long_file}::second",
        "modules/x.ipynb::Cell 0", "modules/x.ipynb::Cell 1", "modules/x.ipynb::Cell 2",
        "tests/a.py::t1", "tests/a.py::t2", "tests/b.py::t1"]


def test_xdist_keeps_the_order() -> None:
    """Left on, xdist's reorder would sort the files by test count again, whatever the hook did."""
    config = SimpleNamespace(option=SimpleNamespace(loadscopereorder=True))
    conftest.pytest_configure(config)  # type: ignore[arg-type]
    assert config.option.loadscopereorder is False
    without_xdist = SimpleNamespace(option=SimpleNamespace())
    conftest.pytest_configure(without_xdist)  # type: ignore[arg-type]
    assert not hasattr(without_xdist.option, "loadscopereorder")
