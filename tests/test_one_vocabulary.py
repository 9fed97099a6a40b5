"""One vocabulary (#25 item 4): one `Finding` and one `Check`, both in mlinfra.base.results; a verb whose published
JSON names their fields otherwise converts at its edge. Pins the shapes those edges write."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from mlinfra.base.results import (
    FAILED,
    FAILING_SEVERITIES,
    PASSED,
    SEVERITIES,
    Check,
    Finding,
    at,
    split_where,
)

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def _class_homes() -> dict[str, list[str]]:
    """Every class our code defines -> the files that define one of that name."""
    homes: dict[str, list[str]] = {}
    for package in ("autograder", "mlinfra"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ClassDef):
                    homes.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return homes


@pytest.mark.parametrize("name", ["Finding", "Check"])
def test_one_class_of_each_name(name: str) -> None:
    """A second `Finding` or `Check` with other fields is what this replaced: a verb converts at its edge instead."""
    assert _class_homes()[name] == ["mlinfra/base/results.py"]


def test_the_failing_severities_are_defined_once() -> None:
    assert set(FAILING_SEVERITIES) < set(SEVERITIES)
    assert [Finding("r", "m", severity=s).failing for s in SEVERITIES] == [s in ("error", "warning")
                                                                          for s in SEVERITIES]
    assert Finding("r", "m").failing, "a finding fails unless it says it is advice"
    with pytest.raises(ValueError, match="finding 'odd-rule': unknown severity 'fatal'"):
        Finding("odd-rule", "m", severity="fatal")


@pytest.mark.parametrize(("file", "line", "where"), [
    ("app.py", 12, "app.py:12"), ("Dockerfile", None, "Dockerfile"), ("/x/lab/dag.py", 0, "/x/lab/dag.py:0"),
    ("C:/course/Dockerfile", 3, "C:/course/Dockerfile:3"),
])
def test_where_is_written_and_read_back(file: str, line: int | None, where: str) -> None:
    assert at(file, line) == where
    assert split_where(where) == (file, line)
    f = Finding("r", "m", where)
    assert (f.file, f.line, str(f)) == (file, line, f"{where}: m")


def test_a_cell_or_nowhere_has_no_line() -> None:
    assert split_where("cell 4 line 2") == ("cell 4 line 2", None)
    assert split_where("") == ("", None) and str(Finding("r", "the message")) == "the message"


def test_assess_json_keeps_a_requirements_checks_as_name_passed_detail() -> None:
    """`assess --json` wrote each probe as {name, passed, detail}; the probes are base Checks now."""
    from autograder.assess.probes import POINTS_EACH, TITLES, Criterion, never_came_up, probe_check
    from autograder.assess.report import Assessment, terminal, to_json

    crit = Criterion(1, TITLES[1], POINTS_EACH, [probe_check("health", True, "200 with JSON"),
                                                 probe_check("schema", False, "no 'label' key")], "half")
    assert [(c.status, c.message) for c in crit.checks] == [(PASSED, "200 with JSON"), (FAILED, "no 'label' key")]
    assert crit.points == POINTS_EACH / 2
    result = Assessment(target={"description": "svc", "url": "http://127.0.0.1:9"},
                        criteria=[crit, *never_came_up("down")[1:]])
    data = to_json(result)
    assert data["criteria"][0]["checks"] == [{"name": "health", "passed": True, "detail": "200 with JSON"},
                                             {"name": "schema", "passed": False, "detail": "no 'label' key"}]
    assert [list(c) for c in data["criteria"][0]["checks"]] == [["name", "passed", "detail"]] * 2
    assert "  1. schema: no 'label' key" in terminal(result).splitlines()


def test_doctor_keeps_its_prerequisite_records() -> None:
    """lab01 and module 01's notebook read name/status/detail/fix with pass/warn/fail; the Outcome speaks Check."""
    from mlinfra import envcheck

    facts = envcheck.MachineFacts((3, 8, 0), "/usr", "/usr", 1, 4.0, 100.0, {"git": "git 2"}, False,
                                  {"torch": None}, None)
    report = envcheck.evaluate(facts)
    python = next(c for c in report.checks if c.name == "python")
    assert (python.status, python.detail) == ("fail", "Python 3.8.0 is older than 3.10") and python.fix
    assert {c.status for c in report.checks} == {"pass", "warn", "fail"}
    outcome = envcheck.to_outcome(report)
    assert all(isinstance(c, Check) for c in outcome.checks)
    assert outcome.check("python") == Check("python", FAILED, message=f"{python.detail}; {python.fix}")
    assert [list(c) for c in outcome.to_dict()["data"]["checks"]] == [["name", "status", "detail", "fix"]] * len(
        report.checks)
