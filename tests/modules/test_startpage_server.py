"""The learner's Jupyter recomputes the start page's progress each time the page is opened (no kernel, no
`make lab`): a lab checked, an exam taken or an assess run after `make lab` shows on the next open."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from autograder import progress
from autograder.startpage_server import START_PAGE, StartPageContentsManager
from autograder.workspace import write_jupyter_config

ROOT = Path(__file__).resolve().parents[2]


def _open(manager: StartPageContentsManager, path: str) -> dict:
    return asyncio.run(manager.get(path))["content"]


def _outputs(nb: dict, code: str) -> list[dict]:
    return next(c["outputs"] for c in nb["cells"] if c["cell_type"] == "code" and code in "".join(c["source"]))


def test_each_open_shows_the_records_as_they_are_now(tmp_path: Path) -> None:
    (tmp_path / "workspace").mkdir()
    (tmp_path / "modules").mkdir()
    shutil.copy(ROOT / "modules" / "START-HERE.ipynb", tmp_path / START_PAGE)  # as stored: no outputs
    shutil.copy(ROOT / "modules" / "START-HERE.ipynb", tmp_path / "modules" / "START-HERE.ipynb")
    manager = StartPageContentsManager(root_dir=str(tmp_path))
    first = _open(manager, START_PAGE)
    text = _outputs(first, "startpage.progress_text(root)")[0]["text"]
    assert "labs passed 0/10" in text and "exams taken 0/2" in text
    table = _outputs(first, "startpage.show_progress(root)")
    assert "lab01-environment" in table[0]["data"]["text/html"]
    assert table[-1]["data"].get("image/png"), "the progress bar is drawn too"

    progress.record(tmp_path, "lab", "lab01-environment", passed=True, score=10, max_score=10)
    progress.record_exam(tmp_path, "module01")
    progress.record_practical(tmp_path, passed=False, score=60, max_score=100)
    again = _outputs(_open(manager, START_PAGE), "startpage.progress_text(root)")[0]["text"]
    assert "labs passed 1/10" in again and "exams taken 1/2" in again and "practical 60/100 (not yet" in again
    stored = json.loads((tmp_path / START_PAGE).read_text())
    assert not _outputs(stored, "startpage.progress_text(root)"), "the file itself is not rewritten"
    source = _open(manager, "modules/START-HERE.ipynb")
    assert not _outputs(source, "startpage.progress_text(root)"), "the course's source page is never touched"


def test_the_learners_jupyter_uses_it(tmp_path: Path) -> None:
    write_jupyter_config(tmp_path)
    config = json.loads((tmp_path / "jupyter_server_config.json").read_text())
    name = config["ServerApp"]["contents_manager_class"]
    module, _, cls = name.rpartition(".")
    assert getattr(__import__(module, fromlist=[cls]), cls) is StartPageContentsManager
