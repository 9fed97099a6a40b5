"""The static scan of submissions: each kind of tampering is found with its line; honest work is not flagged."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from autograder.grading.tamper import defined_names, scan_source, scan_submission
from autograder.labs import lab_names, load_lab

ROOT = Path(__file__).resolve().parents[2]

CASES = {  # source: (what the finding says, its rule id)
    "get_ipython().input_transformers_cleanup.append(f)": ("input transformer", "ipython-hook"),
    "ip.input_transformers_post.insert(0, f)": ("input transformer", "ipython-hook"),
    "get_ipython().ast_transformers.append(T())": ("AST transformer", "ipython-hook"),
    "get_ipython().events.register('pre_run_cell', f)": ("event hook", "ipython-hook"),
    "ip.set_custom_exc((AssertionError,), h)": ("exception handler", "ipython-hook"),
    "import sys\nsys.excepthook = h": ("exception hook", "interpreter-hook"),
    "import builtins\nbuiltins.AssertionError = Exception": ("writes to builtins", "builtins"),
    "setattr(__builtins__, 'len', f)": ("builtins", "builtins"),
    "import sys\nsys.modules['mlinfra'] = fake": ("sys.modules", "sys-modules"),
    "import os\nos.kill(os.getppid(), 9)": ("os.kill", "signals"),
    "import os\nos.killpg(0, 9)": ("killpg", "signals"),
    "import ctypes": ("ctypes", "native-code"),
    "open('/work/main/solutions/lab01/x.ipynb').read()": ("path outside", "outside-path"),
    "open('../../gradebook.db')": ("path outside", "outside-path"),
    "check_venv.__code__ = other.__code__": ("code object", "code-object"),
}


@pytest.mark.parametrize(("source", "expected"), CASES.items(), ids=[what for what, _ in CASES.values()])
def test_each_kind_is_found_with_its_line(source: str, expected: tuple[str, str]) -> None:
    what, rule = expected
    found = scan_source("x = 1\n" + source, "cell 5")
    assert found and any(what in f.message and f.rule == rule for f in found), found
    assert all(f.where.startswith("cell 5 line ") for f in found)
    assert any(f.where == f"cell 5 line {source.count(chr(10)) + 2}" for f in found), found
    # a warning for a person's review: the grade worker lists str(finding) as a flag and keeps the score
    assert all(f.severity == "warning" and str(f) == f"{f.where}: {f.message}" for f in found)


def test_python_files_are_scanned_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import os\n\nos.kill(1, 9)\n")
    nb = nbformat.v4.new_notebook()
    [finding] = scan_submission(nb, tmp_path, ("app.py",))
    assert finding.where == "app.py:3" and "os.kill" in finding.message
    assert (finding.file, finding.line) == ("app.py", 3)
    assert str(finding) == "app.py:3: sends signals to other processes (os.kill)"


@pytest.mark.parametrize("lab", lab_names(ROOT))
def test_honest_work_is_not_flagged(lab: str) -> None:
    for folder in (ROOT / "solutions" / lab, ROOT / "labs" / lab):
        source = load_lab(folder)
        nb = nbformat.read(source.notebook_path, as_version=4)
        assert scan_submission(nb, folder, source.editable) == [], folder


def test_locked_cells_are_not_scanned() -> None:
    """Locked cells are replaced from the source before they run: what a student wrote there never runs."""
    cell = nbformat.v4.new_code_cell("import ctypes", metadata={"nbgrader": {"locked": True, "solution": False}})
    assert scan_submission(nbformat.v4.new_notebook(cells=[cell]), None, ()) == []


def test_defined_names() -> None:
    source = "import json\nfrom pathlib import Path as P\ndef status_of(c, n):\n    x = 1\nclass K: pass\na, b = 1, 2\n"
    assert defined_names(source) == ["K", "status_of"]
