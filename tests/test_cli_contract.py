"""The process contract, table-driven over every verb and the course library's tools (docs/architecture.md).

For each command: a bad argument and a missing input exit 2 with one line on stderr and no traceback; an
unwritable output path (under /proc, or under a path that is a file) exits 2 naming it; `--json -` leaves only
JSON on stdout; an unexpected exception inside the command exits 2 with one line pointing at a log.
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autograder import cli

ROOT = Path(__file__).resolve().parent.parent
PROC = "/proc/forbidden"  # a folder nobody can create
A_FILE = str(ROOT / "pyproject.toml")  # a path that is a file: nothing can be written under it

# The course library's tools: module -> a main(argv) that runs under the same contract.
TOOLS = ["mlinfra.train", "mlinfra.compare", "mlinfra.make_model", "mlinfra.airflow_local", "mlinfra.torchserve_local"]


def _run(capfd: pytest.CaptureFixture[str], argv: list[str], tool: str | None = None) -> tuple[int, str, str]:
    if tool:
        try:
            code = importlib.import_module(tool).main(argv)
        except SystemExit as exc:  # argparse's own exit on a bad argument
            code = exc.code if isinstance(exc.code, int) else 2
    else:
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    out, err = capfd.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, f"exit {code}, stderr: {err}"
    assert "Traceback (most recent call last)" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) >= 1, "no reason given on stderr"
    last = lines[-1]
    for needle in needles:
        assert needle in last, f"{needle!r} not named in the error line: {last}"


# -------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("verb", sorted(cli.COMMANDS))
def test_a_bad_argument_is_exit_2_in_one_line(verb: str, capfd: pytest.CaptureFixture[str]) -> None:
    argv = [verb, "take", "--no-such-flag"] if verb == "quiz" else [verb, "--no-such-flag"]
    code, _out, err = _run(capfd, argv)
    _assert_one_line_error(code, err, "error", "--help")
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tool_with_a_bad_argument_is_exit_2(tool: str, capfd: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capfd, ["--no-such-flag"], tool=tool)
    _assert_one_line_error(code, err, "error", "--help")
    assert len(err.strip().splitlines()) == 1, err


# -------------------------------------------------------------------------------- missing inputs

MISSING = {
    "check": ["check", "lab01-environment", "/nonexistent/lab01.ipynb"],
    "submit": ["submit", "lab01-environment", "--student", "ada", "--folder", "/nonexistent/lab01"],
    "grade": ["grade", "lab01-environment", "/nonexistent/submissions"],
    "release": ["release", "lab99-no-such-lab"],
    "quiz take": ["quiz", "take", "/nonexistent/bank.yaml"],
    "quiz grade": ["quiz", "grade", "module01", "/nonexistent/answers"],
    "assess": ["assess", "--app", "/nonexistent/app.py:app"],
    "dag": ["dag", "/nonexistent/dag.py"],
    "dockerfile": ["dockerfile", "/nonexistent/Dockerfile"],
    "class report": ["class", "report", "/nonexistent/grades"],
}


@pytest.mark.parametrize("case", sorted(MISSING))
def test_a_missing_input_is_named(case: str, capfd: pytest.CaptureFixture[str]) -> None:
    argv = MISSING[case]
    code, _out, err = _run(capfd, argv)
    missing = next((a for a in argv if a.startswith(("/nonexistent", "lab99"))), "")
    _assert_one_line_error(code, err, missing.split(":")[0])


TOOL_MISSING = {
    "mlinfra.train": ["--config", "/nonexistent/config.yaml"],
    "mlinfra.compare": ["/nonexistent/runs"],
}


@pytest.mark.parametrize("tool", sorted(TOOL_MISSING))
def test_a_tool_names_a_missing_input(tool: str, capfd: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capfd, TOOL_MISSING[tool], tool=tool)
    _assert_one_line_error(code, err, "/nonexistent")


# -------------------------------------------------------------------------------- unwritable outputs

# Cheap invocations that get as far as writing their output.
UNWRITABLE: dict[str, Callable[[str], list[str]]] = {
    "doctor --json": lambda dest: ["doctor", "--json", f"{dest}/doctor.json"],
    "quiz validate --json": lambda dest: ["quiz", "validate", "--json", f"{dest}/banks.json"],
    "quiz export -o": lambda dest: ["quiz", "export", "lesson01", "--format", "gift", "-o", f"{dest}/x.gift"],
    "dockerfile --json": lambda dest: ["dockerfile", str(ROOT / "solutions/lab06-docker/Dockerfile"), "--json",
                                       f"{dest}/lint.json"],
    "submit --out": lambda dest: ["submit", "lab01-environment", "--student", "ada", "--folder",
                                  str(ROOT / "labs/lab01-environment"), "--out", dest],
    "release --student-dist": lambda dest: ["release", "--student-dist", f"{dest}/class"],
    "grade --out": lambda dest: ["grade", "lab01-environment", str(ROOT / "tests"), "--out", f"{dest}/grades"],
    "class report --out": lambda dest: ["class", "report", str(ROOT / "tests" / "quiz"), "--out", f"{dest}/class"],
}


@pytest.mark.parametrize("base", [PROC, A_FILE], ids=["proc", "under-a-file"])
@pytest.mark.parametrize("case", sorted(UNWRITABLE))
def test_an_unwritable_output_is_exit_2_naming_it(case: str, base: str, capfd: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capfd, UNWRITABLE[case](base))
    _assert_one_line_error(code, err, base)


# -------------------------------------------------------------------------------- --json -

JSON_STDOUT: dict[str, list[str]] = {
    "doctor": ["doctor", "--json", "-"],
    "quiz validate": ["quiz", "validate", "--json", "-"],
    "dockerfile": ["dockerfile", str(ROOT / "solutions/lab06-docker/Dockerfile"), "--json", "-"],
}
SLOW_JSON_STDOUT: dict[str, list[str]] = {
    "check": ["check", "lab01-environment", str(ROOT / "solutions/lab01-environment/lab01-environment.ipynb"),
              "--json", "-"],
    "dag": ["dag", str(ROOT / "solutions/phase1-lab1-airflow-dag/dag.py"), "--json", "-"],
    "assess": ["assess", "--url", "http://127.0.0.1:9", "--startup-timeout", "1", "--json", "-"],
}


def _assert_json_only(code: int, out: str, err: str) -> Any:
    assert code in (0, 1), f"exit {code}: {err}"
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        pytest.fail(f"stdout is not only JSON ({exc}); it starts: {out[:300]!r}")


@pytest.mark.parametrize("case", sorted(JSON_STDOUT))
def test_json_dash_leaves_only_json_on_stdout(case: str, capfd: pytest.CaptureFixture[str]) -> None:
    _assert_json_only(*_run(capfd, JSON_STDOUT[case]))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_JSON_STDOUT))
def test_json_dash_leaves_only_json_on_stdout_slow(case: str, capfd: pytest.CaptureFixture[str]) -> None:
    _assert_json_only(*_run(capfd, SLOW_JSON_STDOUT[case]))


# -------------------------------------------------------------------------------- unexpected exceptions


def _boom(args: argparse.Namespace) -> Any:
    raise RuntimeError("injected failure\nwith a second line")


@pytest.mark.parametrize("verb", sorted(cli.COMMANDS))
def test_an_unexpected_exception_is_exit_2_with_a_log(verb: str, capfd: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_build = cli.build_parser

    def build_with_a_bug() -> argparse.ArgumentParser:
        parser = real_build()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        target = sub.choices[verb]
        if verb == "quiz":  # a verb with verbs of its own: break every one of them
            inner = next(a for a in target._actions if isinstance(a, argparse._SubParsersAction))
            for p in inner.choices.values():
                p.set_defaults(func=_boom)
        target.set_defaults(func=_boom)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_with_a_bug)
    argv = {"check": ["check", "lab01-environment"], "submit": ["submit", "lab01-environment"],
            "grade": ["grade", "lab01-environment", "x"], "quiz": ["quiz", "validate"],
            "assess": ["assess", "--url", "http://127.0.0.1:9"], "dag": ["dag", "x.py"],
            "dockerfile": ["dockerfile", "Dockerfile"], "review": ["review", "x"],
            "class": ["class"]}.get(verb, [verb])
    code, _out, err = _run(capfd, argv)
    _assert_one_line_error(code, err, "RuntimeError", "injected failure")
    assert len(err.strip().splitlines()) == 1, err
    log = Path(err.strip().rsplit("traceback in ", 1)[-1])
    assert log.is_file() and "RuntimeError" in log.read_text()


def test_ctrl_c_is_130(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.base import runner

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert runner.run("autograder x", interrupted) == 130
    assert "interrupted" in capfd.readouterr().err
