"""The linters run in make test: ruff with the rule set in pyproject.toml over the code, tests and benchmarks, and
mypy over the shared base and the grading engine ([tool.mypy] in pyproject.toml). Their findings are the
failure message, file and line first."""

from __future__ import annotations

import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# a noqa comment: the rule codes it names (group 1) and what follows them (group 2, the reason)
NOQA = re.compile(r"#\s*noqa(?::\s*((?:[A-Z]+[0-9]+)(?:\s*,\s*[A-Z]+[0-9]+)*))?(.*)$")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / tool
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: `make setup` installs the dev tools (pyproject.toml, [project.optional-dependencies])")
    return subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--output-format", "concise", "autograder", "mlinfra", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def _noqa_without_reason(comment: str) -> bool:
    """A `noqa` comment that names no rule, or gives no reason after the rules it names."""
    found = NOQA.search(comment)
    return found is not None and (not found.group(1) or not re.search(r"[a-z]{2}", found.group(2)))


def test_every_noqa_names_a_rule_and_says_why() -> None:
    """A bare noqa hides every rule; one without a reason leaves the next reader guessing. Read from the comments
    themselves (tokenize), so a string that mentions noqa is not one."""
    bad = []
    for folder in ("autograder", "mlinfra", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            with path.open("rb") as source:
                for token in tokenize.tokenize(source.readline):
                    if token.type == tokenize.COMMENT and _noqa_without_reason(token.string):
                        bad.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string[:100]}")
    assert not bad, "write `# noqa: CODE - why`:\n" + "\n".join(bad)


def test_the_noqa_check_can_fail() -> None:
    assert not _noqa_without_reason("# noqa: F401 - re-exported")
    assert not _noqa_without_reason("# noqa: BLE001, S112 - any failure means no")
    assert _noqa_without_reason("# noqa: F401")
    assert _noqa_without_reason("# noqa: SIM115, ASYNC230")
    assert _noqa_without_reason("# noqa")
