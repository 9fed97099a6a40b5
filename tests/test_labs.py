"""lab.yaml: every lab's manifest loads, and a malformed one names the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.errors import BadConfig, UsageError
from autograder.labs import lab_names, load_lab

ROOT = Path(__file__).resolve().parent.parent


def test_every_lab_manifest_loads_with_its_notebook() -> None:
    names = lab_names(ROOT)
    assert len(names) == 10, names
    for name in names:
        lab = load_lab(ROOT / "solutions" / name)
        assert lab.notebook_path.is_file(), f"{name}: lab.yaml names {lab.notebook}, which is missing"


@pytest.mark.parametrize(
    ("text", "where"),
    [("title: x\nnotebook: n.ipynb\ncolour: red\n", "colour"),
     ("title: x\n", "notebook"),
     ("title: x\nnotebook: n.ipynb\ncell_timeout: -3\n", "cell_timeout"),
     ("title: x\nnotebook: n.ipynb\neditable: ['*.py']\n", "editable"),
     ("title: x\nnotebook: n.ipynb\neditable: [missing.py]\n", "editable"),
     ("title: [unclosed\n", "line 2")],
)
def test_bad_manifest_names_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "lab.yaml").write_text(text)
    with pytest.raises(BadConfig) as info:
        load_lab(tmp_path)
    assert str(tmp_path / "lab.yaml") in str(info.value) and where in str(info.value)


def test_missing_manifest_says_what_to_add(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a lab.yaml"):
        load_lab(tmp_path)
