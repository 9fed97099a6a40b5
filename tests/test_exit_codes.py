"""Exit codes come only from mlinfra.base.runner's constants (the process contract: 0 passed, 1 fell short,
2 could not run, 130 interrupted): no bare `return 0/1/2`, `sys.exit(N)` or `SystemExit(N)` outside the runner."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mlinfra.base.runner import EXIT_FELL_SHORT

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autograder", "mlinfra")
RUNNER = Path("mlinfra/base/runner.py")
CODES = {0, 1, 2, 130}

# Functions whose int is not an exit code (path, function): a count where 0 is "none", or SQLite's progress
# handler, where non-zero means "abort the query".
COUNTS = {
    ("autograder/assess/latency.py", "_tasks_wait_ns"),
    ("autograder/grading/cgroups.py", "oom_kills"),
    ("autograder/grading/cgroups.py", "pids_refused"),
    ("autograder/grading/cgroups.py", "tasks"),
    ("autograder/deploy/airflow_verdict.py", "budget"),
}


def _literal_codes(node: ast.expr | None) -> list[int]:
    """The exit-code-like int literals a returned or exited value is made of (`0`, `0 if ok else 1`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value in CODES:
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literal_codes(node.body) + _literal_codes(node.orelse)
    return []


def bare_exit_codes(path: Path, rel: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=rel)
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Return) and (rel, function) not in COUNTS and _literal_codes(child.value):
                found.append(f"{rel}:{child.lineno} in {function}(): {ast.unparse(child)}")
            if isinstance(child, ast.Call):
                callee = ast.unparse(child.func)
                if callee in ("sys.exit", "exit", "SystemExit") and child.args and _literal_codes(child.args[0]):
                    found.append(f"{rel}:{child.lineno} in {function}(): {ast.unparse(child)}")
            visit(child, name)

    visit(tree, "<module>")
    return found


def scan() -> list[str]:
    found: list[str] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if Path(rel) != RUNNER:
                found += bare_exit_codes(path, rel)
    return found


def test_no_bare_exit_codes_outside_the_runner() -> None:
    found = scan()
    assert not found, ("use mlinfra.base.runner's EXIT_* constants (or return an Outcome, CONTRIBUTING.md) "
                       "instead of:\n  " + "\n  ".join(found))


def test_the_scan_finds_each_kind(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\n"
                      "def main() -> int:\n    return 2\n"
                      "def status(ok: bool) -> int:\n    return 0 if ok else 1\n"
                      "def stop() -> None:\n    sys.exit(1)\n"
                      "def fail() -> None:\n    raise SystemExit(130)\n"
                      "def fine(code: int) -> int:\n    sys.exit(code)\n    return 3\n"
                      "def message() -> None:\n    raise SystemExit('one line')\n")
    found = bare_exit_codes(sample, "sample.py")
    assert [line.split(" in ")[1].split("(")[0] for line in found] == ["main", "status", "stop", "fail"]


def test_the_counts_allowed_still_exist() -> None:
    """An allowance for a function that was renamed or removed would hide nothing, and silently: keep it true."""
    for rel, function in COUNTS:
        tree = ast.parse((ROOT / rel).read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert function in names, f"{rel}: no function {function}; drop it from COUNTS"


def test_airflow_status_when_not_running_fell_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlinfra import airflow_local

    code = airflow_local.main(["status", "--home", str(tmp_path / "home"), "--dags", str(tmp_path)])
    assert code == EXIT_FELL_SHORT
    assert "not running" in capsys.readouterr().out
