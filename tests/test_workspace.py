"""The learner's workspace and `make lab`: copies made once and never overwritten; JupyterLab really serves the
workbook with nbgrader's extensions."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autograder.workspace import _relink, ensure_workspace, jupyter_env, lab_url, write_jupyter_config

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


def test_learner_jupyter_config_hides_instructor_tools(tmp_path: Path) -> None:
    write_jupyter_config(tmp_path)
    page = json.loads((tmp_path / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert page["@jupyter/nbgrader:formgrader"] and page["@jupyter/nbgrader:create-assignment"]
    assert "@jupyter/nbgrader:validate-assignment" not in page, "learners keep Validate"
    server = json.loads((tmp_path / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert server["nbgrader.server_extensions.formgrader"] is False
    assert (tmp_path / "nbgrader_config.py").is_file()
    write_jupyter_config(tmp_path, instructor=True)
    page = json.loads((tmp_path / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert not page["@jupyter/nbgrader:formgrader"] and not page["@jupyter/nbgrader:menu"]


def test_jupyter_folders_stay_inside_the_state_folder(course: Path) -> None:
    env = jupyter_env(course)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        assert Path(env[name]).is_relative_to(course / ".state"), name


def test_start_page_links_point_back_at_modules() -> None:
    text = "[lesson](01-unit/01-intro.ipynb), [web](https://x.org/a), [anchor](#top), [up](../README.md)"
    assert _relink(text) == ("[lesson](../modules/01-unit/01-intro.ipynb), [web](https://x.org/a), "
                             "[anchor](#top), [up](../README.md)")


def test_lab_url_carries_the_token() -> None:
    info = {"url": "http://127.0.0.1:8889/", "token": "abc", "port": 8889}
    assert lab_url(info, Path("workspace/START-HERE.ipynb")) == \
        "http://127.0.0.1:8889/lab/tree/workspace/START-HERE.ipynb?token=abc"


def start_lab(course: Path, port: int, home: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """Run what `make lab` runs and return the process, the URL it printed and the lines printed so far (a
    thread keeps draining the output into that list: a full pipe would block Jupyter, and its shutdown)."""
    env = dict(os.environ, WORKBOOK_ROOT=str(course), HOME=str(home))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "JUPYTER_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "autograder.workspace", "open", "--port", str(port),
                             "--no-browser"], env=env, cwd=course, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip() for line in proc.stdout or ()), daemon=True).start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        ready = next((i for i, line in enumerate(lines) if "JupyterLab is ready" in line), None)
        if ready is not None and ready + 1 < len(lines):
            return proc, lines[ready + 1].strip(), lines
        time.sleep(0.2)  # waiting for make lab's own readiness line
    stop_lab(proc)
    raise AssertionError("make lab never printed its URL:\n" + "\n".join(lines[-30:]))


def stop_lab(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.mark.slow
def test_make_lab_prints_the_port_jupyter_really_serves(course: Path, tmp_path: Path) -> None:
    import httpx

    shutil.copy(ROOT / "modules" / "START-HERE.ipynb", course / "modules" / "START-HERE.ipynb")
    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, url, lines = start_lab(course, port, home)
        try:
            assert f":{port}/" not in url, f"port {port} is taken; the printed URL must name Jupyter's real port"
            assert "was taken" in "\n".join(lines)
            assert "/lab/tree/workspace/START-HERE.ipynb?token=" in url
            base, token = url.split("/lab/tree/")[0], url.split("token=")[1]
            assert httpx.get(f"{base}/api/status", params={"token": token}, timeout=10).status_code == 200
            assert httpx.get(f"{base}/api/status", timeout=10).status_code == 403, "the token is needed"
            extensions = httpx.get(f"{base}/lab/api/extensions", params={"token": token}, timeout=10).json()
            nbgrader = next(e for e in extensions if "nbgrader" in e["name"])
            assert nbgrader["enabled"], "the learner keeps nbgrader's Validate button"
            page = httpx.get(f"{base}/lab/tree/workspace/START-HERE.ipynb", params={"token": token}).text
            found = re.search(r'"disabledExtensions": (\[[^]]*\])', page)
            assert found, "JupyterLab's page config lists the disabled extensions"
            disabled = json.loads(found.group(1))
            assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                    "@jupyter/nbgrader:menu"} <= set(disabled)
            assert "@jupyter/nbgrader:validate-assignment" not in disabled
            copy = httpx.get(f"{base}/api/contents/workspace/lab01-environment", params={"token": token})
            assert copy.status_code == 200, "the learner's workspace copy is made on first open"
        finally:
            stop_lab(proc)
    text = "\n".join(lines)
    assert "No nbgrader_config.py" not in text
    assert not (home / ".local").exists() and not (home / ".jupyter").exists(), "nothing written under HOME"
    start = json.loads((course / "workspace" / "START-HERE.ipynb").read_text())
    outputs = [o for c in start["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert outputs and not any(o["output_type"] == "error" for o in outputs), "the start page ran cleanly"


def test_released_lab01_ships_no_environment_report(tmp_path: Path) -> None:
    """Running lab01 writes environment_report.json (with that machine's paths): never released, never committed."""
    from autograder.labs import lab_files

    assert not (ROOT / "labs" / "lab01-environment" / "environment_report.json").exists() or \
        subprocess.run(["git", "ls-files", "--error-unmatch", "labs/lab01-environment/environment_report.json"],
                       cwd=ROOT, capture_output=True, check=False).returncode != 0
    lab = tmp_path / "lab01-environment"
    shutil.copytree(ROOT / "solutions" / "lab01-environment", lab)
    (lab / "environment_report.json").write_text('{"prefix": "/home/author/.venv"}')
    assert "environment_report.json" not in {p.name for p in lab_files(lab)}


@pytest.mark.parametrize("path", ["out/assessment.md", "out/grades/grades.csv", "workspace/lab01-environment/x.py",
                                  "workspace/START-HERE.ipynb", ".state/jupyter/runtime/jpserver-1.json",
                                  ".state/setup/install.log", "runs/cnn-1/metrics.json", "models/digits/model.pt",
                                  "solutions/lab01-environment/environment_report.json"])
def test_tool_output_paths_are_ignored_by_git(path: str) -> None:
    """What the tools write (reports under out/, the learner's copies, Jupyter's and setup's state, runs, models)
    never shows up as untracked work in `git status`."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, check=False)
    assert done.returncode == 0, f"{path} is not ignored by .gitignore"
