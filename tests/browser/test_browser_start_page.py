"""A person's view of `make lab`: headless Chromium opens the URL it prints and finds the start page rendered,
course map, prerequisites and progress included (outputs, not blank cells), and progress recorded afterwards shown
when the page is opened again. `make browser` installs Chromium."""

from __future__ import annotations

import html
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

from autograder import progress

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_browser() is None, reason="no Chromium on PATH: `make browser` installs Debian's package"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _outputs(dom: str) -> list[str]:
    """The text of every rendered output area (cell outputs, not cell sources) in JupyterLab's DOM."""
    parts = re.split(r'class="[^"]*jp-OutputArea-output', dom)[1:]
    return [html.unescape(re.sub(r"<[^>]+>", " ", part.split("jp-OutputArea-child")[0])) for part in parts]


def _dump_dom(url: str, profile: Path) -> str:
    """The page as headless Chromium renders it. As root it needs these flags, a fresh profile, and virtual time
    for JupyterLab to render (a plain dump fires before the notebook is drawn)."""
    shown = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False)
    return shown.stdout


def test_make_lab_url_shows_the_rendered_start_page_and_recomputes_progress_on_open(tmp_path: Path) -> None:
    """One JupyterLab for both looks: the start page as `make lab` renders it, then, after a self-check, an exam
    and an assessment are recorded, the same URL opened again shows them (the page is not frozen at make lab)."""
    course = tmp_path / "course"
    shutil.copytree(ROOT / "labs" / "lab01-environment", course / "labs" / "lab01-environment")
    (course / "modules").mkdir()
    shutil.copy(ROOT / "modules" / "START-HERE.ipynb", course / "modules")
    (course / "README.md").write_text("# course\n")
    env = dict(os.environ, WORKBOOK_ROOT=str(course), HOME=str(tmp_path / "home"))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_TOKEN"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "autograder.workspace", "open", "--port", str(_free_port()),
                             "--no-browser"], cwd=course, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    # Drain Jupyter's output all along: a full pipe would block Jupyter (and its shutdown) on a write.
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("JupyterLab is ready" in line for line in lines[:-1]) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines[-30:])
            time.sleep(0.2)  # waiting for make lab's own readiness line
        ready = next((i for i, line in enumerate(lines) if "JupyterLab is ready" in line), None)
        url = lines[ready + 1].strip() if ready is not None and ready + 1 < len(lines) else ""
        assert url.startswith("http://127.0.0.1:") and "token=" in url, "make lab printed no URL"
        assert "/lab/tree/workspace/START-HERE.ipynb" in url, [line for line in lines if "start page" in line]
        dom = _dump_dom(url, tmp_path / "profile")
        progress.record(course, "lab", "lab01-environment", passed=True, score=10, max_score=10)
        progress.record_exam(course, "module01")
        progress.record_practical(course, passed=False, score=80, max_score=100)
        reopened = _dump_dom(url, tmp_path / "profile-again")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "START-HERE.ipynb" in dom and "The course map" in dom, "the start page opened in JupyterLab"
    assert "Intro to ML infrastructure and MLOps" in dom, "the course map's lessons are rendered"
    outputs = _outputs(dom)
    (tmp_path / "dom.html").write_text(dom)  # for a person reading a failure
    seen = f"outputs rendered: {[text.split()[:8] for text in outputs]}"
    assert any("virtualenv" in text and "python" in text for text in outputs), \
        f"the prerequisites check shows its table as an output (not a blank cell); {seen}"
    assert any("labs passed" in text for text in outputs), f"the progress section shows its summary; {seen}"
    assert any("lab01-environment" in text and "not started" in text for text in outputs), "the progress table"
    assert "Nbgrader" not in re.findall(r'class="lm-MenuBar-itemLabel[^"]*">([^<]*)<', dom), \
        "learners see no instructor's Nbgrader menu"
    again = _outputs(reopened)
    seen = f"outputs rendered on reopening: {[text.split()[:12] for text in again]}"
    assert any("labs passed 1/10" in t and "exams taken 1/2" in t and "practical 80/100" in t for t in again), seen
