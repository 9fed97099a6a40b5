"""The start page's progress is recomputed when the page is opened, not frozen at `make lab`: a self-check
recorded after JupyterLab started shows when headless Chromium opens the URL `make lab` printed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_browser_start_page import _browser, _free_port, _outputs

from autograder import progress

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_browser() is None, reason="no Chromium on PATH: `make browser` installs Debian's package"),
]


def test_progress_recorded_after_make_lab_shows_on_open(tmp_path: Path) -> None:
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
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("JupyterLab is ready" in line for line in lines[:-1]) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines[-30:])
            time.sleep(0.2)  # waiting for make lab's own readiness line
        ready = next((i for i, line in enumerate(lines) if "JupyterLab is ready" in line), None)
        url = lines[ready + 1].strip() if ready is not None and ready + 1 < len(lines) else ""
        assert "/lab/tree/workspace/START-HERE.ipynb" in url, "".join(lines[-30:])
        # after the page was rendered: a self-check, an exam and an assessment
        progress.record(course, "lab", "lab01-environment", passed=True, score=10, max_score=10)
        progress.record_exam(course, "module01")
        progress.record_practical(course, passed=False, score=80, max_score=100)
        shown = subprocess.run(
            [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    outputs = _outputs(shown.stdout)
    seen = f"outputs rendered: {[text.split()[:12] for text in outputs]}"
    assert any("labs passed 1/10" in t and "exams taken 1/2" in t and "practical 80/100" in t for t in outputs), seen
