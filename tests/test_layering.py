"""The layers of docs/architecture.md: the course library never imports the grading package, and the shared base
imports neither. Read from the source (every import statement, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            if module.split(".")[0] in forbidden or any(module.startswith(f + ".") for f in forbidden if "." in f):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_the_course_library_never_imports_the_grader() -> None:
    assert _violations("mlinfra", ("autograder",)) == []


def test_the_base_imports_neither_package() -> None:
    bad = [v for v in _violations("mlinfra/base", ("autograder", "mlinfra")) if "imports mlinfra.base" not in v]
    assert bad == []


@pytest.mark.parametrize("package", ["mlinfra", "autograder"])
def test_the_check_itself_can_fail(package: str, tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from autograder.errors import UsageError\n")
    assert _imports(sample) == [(2, "autograder.errors")]
