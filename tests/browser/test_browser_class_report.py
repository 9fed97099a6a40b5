"""The class report as a person sees it: headless Chromium opens report.html from disk (no server, no network)
and every plot decodes and draws (the page marks each decoded plot; the DOM is dumped after load)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "classbook"))
from term import write_term

from autograder.cli import main

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_browser() is None, reason="no Chromium on PATH: `make browser` installs it")]


def rendered_plots(page: Path, profile: Path) -> tuple[int, list[str], str]:
    """(plots the page counted as drawn, each plot's data-rendered mark, the DOM) as Chromium shows the page."""
    shown = subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    dom = shown.stdout
    counted = re.search(r'<body[^>]*data-plots="(\d+)"', dom)
    marks = re.findall(r'<img class="plot"[^>]*data-rendered="(\w+)"', dom)
    return int(counted.group(1)) if counted else -1, marks, dom


def test_every_plot_of_the_report_draws_in_chromium(tmp_path: Path, capsys) -> None:
    inputs = write_term(tmp_path / "term")
    assert main(["class", "report", *map(str, inputs), "--out", str(tmp_path / "class")]) == 0
    page = tmp_path / "class" / "report.html"
    expected = page.read_text().count('<img class="plot"')
    counted, marks, dom = rendered_plots(page, tmp_path / "profile")
    assert expected >= 9, "4 distributions, 4 per-item plots (labs, quiz, practical), 1 distractor plot"
    assert marks == ["yes"] * expected and counted == expected, f"plots drawn: {marks}"
    assert "Class table" in dom and "Distractors: quiz lesson03" in dom
