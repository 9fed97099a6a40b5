"""Every command a message prints runs as printed from the repository root: the CLI is `.venv/bin/autograder`
(the README's form; a bare `autograder` is not on PATH unless the venv is activated) or a `make` target.

Scans every string the code can print (string literals, f-strings included, that are not docstrings) in
autograder/ and mlinfra/ for `autograder <verb>` not preceded by `.venv/bin/`. A heading such as
"autograder dag: FILE" (the verb then a colon) names the tool, not a step, and is allowed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from autograder import cli

ROOT = Path(__file__).resolve().parent.parent
BARE = re.compile(rf"(?<![\w./-])autograder ({'|'.join(map(re.escape, cli.COMMANDS))})\b(?!:)")


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def bare_commands(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for m in BARE.finditer(node.value):
                context = node.value[max(0, m.start() - 20):m.end() + 20].replace("\n", " ")
                found.append(f"{path}:{node.lineno}: ...{context}...")
    return found


def test_the_scan_finds_a_bare_command(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('def f():\n    """Docstrings may say autograder check."""\n    print("run `autograder check x`")\n'
                     '    print(f"or .venv/bin/autograder check {1}; autograder dag: heading")\n')
    hits = bare_commands(probe)
    assert len(hits) == 1 and "run `autograder check x`" in hits[0], hits


def test_no_printed_command_says_bare_autograder() -> None:
    files = sorted([*(ROOT / "autograder").rglob("*.py"), *(ROOT / "mlinfra").rglob("*.py")])
    assert len(files) > 50
    found = [hit for path in files for hit in bare_commands(path)]
    assert not found, "say `.venv/bin/autograder ...` (or a make target):\n" + "\n".join(found)
