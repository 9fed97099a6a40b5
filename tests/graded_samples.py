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
from mlinfra.base.results import Outcome

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples"
REFERENCE = "reference"
_KEYS = {"description", "base", "cells", "files", "expect", "reason", "notebook_text", "delete_cells",
         "duplicate_cells", "status", "entry"}


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
    status: str | None = None  # the outcome status it must get (default: anything but "flagged")
    entry: dict[str, Any] | None = None  # hostile samples: how the entry is handed in (see tests/samples/_hostile)

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


# ---------------------------------------------------------------------------------------------- hostile samples

HOSTILE = SAMPLES / "_hostile"
HOSTILE_LAB = "lab01-environment"


def load_hostile() -> list[Sample]:
    out = []
    for path in sorted(HOSTILE.glob("*.yaml")):
        data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        unknown = set(data) - _KEYS
        assert not unknown, f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}"
        assert data.get("status"), f"{path}: a hostile sample states the status it must get"
        out.append(Sample(lab=HOSTILE_LAB, name=path.stem, **data))
    return out


def _zip_folder(folder: Path, archive: Path, manifest: Any, *, with_manifest: bool) -> None:
    import json
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(folder).as_posix())
        if with_manifest:
            zf.writestr("submission.json", json.dumps(manifest))


def _corrupt_member(archive: Path, member: str, how: str) -> None:
    """Mark one entry encrypted (flag bit 0) or deflate64 (method 9), in both its headers, as other zip tools do."""
    import struct

    data = bytearray(archive.read_bytes())
    name = member.encode()
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        name_len = struct.unpack_from("<H", data, pos + 28)[0]
        if bytes(data[pos + 46: pos + 46 + name_len]) == name:
            local = struct.unpack_from("<I", data, pos + 42)[0]
            for flags_at, method_at in ((pos + 8, pos + 10), (local + 6, local + 8)):
                if how == "encrypted":
                    struct.pack_into("<H", data, flags_at, struct.unpack_from("<H", data, flags_at)[0] | 1)
                else:
                    struct.pack_into("<H", data, method_at, 9)
        pos += 4
    archive.write_bytes(bytes(data))


def build_hostile(sample: Sample, lab: Lab, subs: Path) -> str:
    """Hand in one hostile sample the way its `entry` says; return the student id it should be graded as."""
    import os

    entry = dict(sample.entry or {})
    kind = entry.get("kind", "folder")
    name = entry.get("name", sample.name)
    subs.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        link = subs / name
        target = entry["target"]
        os.symlink(link if target == "self" else target, link)
        return name
    folder = subs / f".build-{name}" if kind == "zip" else subs / name
    build_submission(sample, lab, folder)
    for rel, text in (entry.get("extra_files") or {}).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    for rel, target in (entry.get("links") or {}).items():
        (folder / rel).unlink(missing_ok=True)
        if target == "SOLUTION_NOTEBOOK":
            target = str(lab.notebook_path.resolve())
        os.symlink(target, folder / rel)
    for rel, size_mb in (entry.get("sparse_mb") or {}).items():
        with open(folder / rel, "wb") as fh:
            fh.truncate(int(size_mb) * 1024 * 1024)
    if entry.get("second") == "zip":
        older = subs / f"{name}-{lab.name}.zip"
        _zip_folder(folder, older, {"student": name}, with_manifest=True)
        os.utime(older, (1_000_000_000, 1_000_000_000))
    if kind == "zip":
        archive = subs / f"{name}-{lab.name}.zip"
        _zip_folder(folder, archive, entry.get("manifest"), with_manifest="manifest" in entry)
        if entry.get("corrupt"):
            _corrupt_member(archive, entry["corrupt"]["member"], entry["corrupt"]["how"])
        shutil.rmtree(folder)
    return name


def sample_names(lab: str) -> list[str]:
    """The reference first, then every known-bad sample of the lab: one test each."""
    return [REFERENCE, *(s.name for s in load_samples(lab))]


def student_outcome(batch: Outcome, name: str) -> Outcome:
    matches = [s for s in batch.parts if s.subject == name]
    assert matches, f"{name} was not graded; graded: {[s.subject for s in batch.parts]}"
    return matches[0]


def points_by_test(student: Outcome) -> dict[str, float]:
    return {c.name: c.points for c in student.checks}


def _reason(student: Outcome) -> str:
    return "; ".join([*student.data.get("flags", []), *student.notes])


def assert_scores_exactly(batch: Outcome, lab: str, sample: str) -> None:
    """The reference scores every test's full points; a sample scores exactly what its YAML states, test by test,
    with the status and reason it names (and is never flagged unless it says so)."""
    got = student_outcome(batch, sample)
    tests = batch.data["tests"]
    spec: Sample | None = None
    if sample == REFERENCE:
        expected = dict(tests)
    else:
        spec = next(s for s in load_samples(lab) if s.name == sample)
        unknown = set(spec.expect) - set(tests)
        assert not unknown, f"{sample}.yaml expects points for unknown tests {sorted(unknown)}"
        expected = spec.expected_points(tests)
    points = {name: p for name, p in points_by_test(got).items() if name in tests}
    assert points == expected, (
        f"{lab}/{sample} scored {points}, expected {expected} (status {got.status}: {_reason(got)})"
    )
    if spec is not None and spec.reason:
        assert spec.reason.lower() in f"{got.status} {_reason(got)}".lower(), (got.status, _reason(got))
    if spec is None or spec.status is None:
        assert got.status != "flagged", f"{lab}/{sample} was flagged for review: {_reason(got)}"
    else:
        assert got.status == spec.status, (got.status, _reason(got))
