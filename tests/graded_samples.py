"""Build graded samples (known-good and known-bad submissions) from tests/samples/<lab>/*.yaml and grade them.

The format is documented in CONTRIBUTING.md ("Graded samples"). Each sample starts from the lab's solution (or its
released student version), replaces whole cells by grade_id and whole files, and states the points each graded
test must score.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from autograder.labs import NOT_LAB_FILES, Lab, load_lab

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
REFERENCE = "reference"
_KEYS = {"description", "base", "cells", "files", "expect", "reason", "notebook_text", "delete_cells",
         "duplicate_cells"}


@dataclass
class Sample:
    lab: str
    name: str
    description: str
    base: str = "solution"
    cells: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    expect: dict[str, float] = field(default_factory=dict)
    reason: str | None = None
    notebook_text: str | None = None
    delete_cells: list[str] = field(default_factory=list)  # grade_ids of cells the student deleted
    duplicate_cells: list[str] = field(default_factory=list)  # grade_ids of cells the student copied

    def expected_points(self, tests: dict[str, float]) -> dict[str, float]:
        default_full = self.base == "solution" and self.notebook_text is None
        return {gid: float(self.expect.get(gid, full if default_full else 0.0)) for gid, full in tests.items()}


def load_samples(lab: str) -> list[Sample]:
    out = []
    for path in sorted((SAMPLES / lab).glob("*.yaml")):
        data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - _KEYS
        assert not unknown, f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}"
        assert data.get("base", "solution") in {"solution", "release"}, f"{path}: base is solution or release"
        out.append(Sample(lab=lab, name=path.stem, **data))
    return out


def labs_with_samples() -> list[str]:
    return sorted(p.name for p in SAMPLES.iterdir() if p.is_dir() and (ROOT / "solutions" / p.name).is_dir())


def lab_source(lab: str) -> Lab:
    return load_lab(ROOT / "solutions" / lab)


def build_submission(sample: Sample | None, lab: Lab, dest: Path) -> None:
    """Write one student's folder: the reference (sample None) or a sample applied to its base."""
    base = ROOT / ("labs" if sample and sample.base == "release" else "solutions") / lab.name
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns(*NOT_LAB_FILES))
    if sample is None:
        return
    nb_path = dest / lab.notebook
    if sample.cells or sample.delete_cells or sample.duplicate_cells:
        nb = nbformat.read(nb_path, as_version=4)
        by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        where = f"tests/samples/{lab.name}/{sample.name}.yaml"
        for gid in [*sample.cells, *sample.delete_cells, *sample.duplicate_cells]:
            assert gid in by_id, f"{where}: no cell with grade_id {gid!r}"
        for gid, source in sample.cells.items():
            by_id[gid].source = source.rstrip("\n")
        for gid in sample.duplicate_cells:  # a copy right after the original, as "copy cell, paste below" does
            duplicate = copy.deepcopy(by_id[gid])
            duplicate.id = f"{duplicate.get('id', 'cell')}-copy"  # JupyterLab gives a pasted cell a new id
            nb.cells.insert(nb.cells.index(by_id[gid]) + 1, duplicate)
        nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in sample.delete_cells]
        nbformat.write(nb, nb_path)
    for rel, text in sample.files.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    if sample.notebook_text is not None:
        nb_path.write_text(sample.notebook_text)
