"""The learner's workspace and `make lab`: copies made once and never overwritten; JupyterLab really serves the
workbook with nbgrader's extensions."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder.workspace import ensure_workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def course(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "labs" / "lab01-environment", tmp_path / "labs" / "lab01-environment")
    (tmp_path / "modules").mkdir()
    (tmp_path / "README.md").write_text("# course\n")
    return tmp_path


def test_workspace_is_made_once_and_never_overwritten(course: Path) -> None:
    assert ensure_workspace(course) == ["lab01-environment"]
    mine = course / "workspace" / "lab01-environment" / "lab01-environment.ipynb"
    mine.write_text("my work")
    assert ensure_workspace(course) == []
    assert mine.read_text() == "my work"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_with_nbgrader(course: Path) -> None:
    import httpx

    port = _free_port()
    env = dict(os.environ, WORKBOOK_ROOT=str(course), JUPYTER_TOKEN="course-test",
               JUPYTER_CONFIG_DIR=str(course / ".state" / "jupyter"))
    proc = subprocess.Popen([sys.executable, "-m", "autograder.workspace", "open", "--port", str(port),
                             "--no-browser"], env=env, cwd=course, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"{base}/api/status", params={"token": "course-test"}, timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)  # polling a port that is not open yet: there is no readiness signal to wait on
        assert status is not None and status.status_code == 200, proc.stdout.read1().decode() if proc.stdout else ""
        extensions = httpx.get(f"{base}/lab/api/extensions", params={"token": "course-test"}, timeout=10).text
        assert "nbgrader" in extensions, "the nbgrader lab extension (validate, assignment list) is installed"
        page = httpx.get(f"{base}/api/contents/workspace/lab01-environment", params={"token": "course-test"})
        assert page.status_code == 200, "the learner's workspace copy is made on first open"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
