"""The CLI's contract: instant --help, one-line reasons and exit 2 when a command cannot run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autograder.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_help_lists_every_verb() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for verb in COMMANDS:
        assert verb in out.stdout
        assert "unavailable" not in out.stdout, out.stdout


@pytest.mark.parametrize("verb", list(COMMANDS))
def test_each_verb_has_help(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    assert "usage: autograder" in capsys.readouterr().out


def test_unknown_lab_is_exit_2_with_the_known_labs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "lab99-nope"]) == 2
    err = capsys.readouterr().err
    assert "no lab named 'lab99-nope'" in err and "lab01-environment" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_notebook_says_what_to_do(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check", "lab01-environment", str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_grade_needs_a_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["grade", "lab01-environment", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
