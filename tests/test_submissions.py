"""submit packs, grade unpacks: manifests, checksums, odd shapes, duplicate cells. No kernels here."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.labs import load_lab
from autograder.submissions import collect, sanitize_notebook
from autograder.submit import pack

ROOT = Path(__file__).resolve().parent.parent
LAB = load_lab(ROOT / "solutions" / "lab01-environment")


@pytest.fixture
def lab_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "work" / LAB.name
    folder.mkdir(parents=True)
    (folder / LAB.notebook).write_text((ROOT / "labs" / LAB.name / LAB.notebook).read_text())
    (folder / "notes.txt").write_text("mine")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return folder


def test_pack_then_collect_round_trip(lab_copy: Path, tmp_path: Path) -> None:
    archive, skipped = pack(lab_copy, LAB.name, "ada", tmp_path / "inbox")
    assert archive.name == "ada-lab01-environment.zip" and skipped == []
    names = zipfile.ZipFile(archive).namelist()
    assert "submission.json" in names and not any("__pycache__" in n for n in names)
    [sub] = collect(tmp_path / "inbox", LAB, tmp_path / "staging")
    assert sub.student == "ada" and sub.notes == []
    assert (sub.files / LAB.notebook).read_text() == (lab_copy / LAB.notebook).read_text()


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_tampered_archive_is_graded_with_a_note(lab_copy: Path, tmp_path: Path) -> None:
    archive, _ = pack(lab_copy, LAB.name, "bob", tmp_path / "inbox")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("notes.txt", "changed later")  # a second entry shadows the packed one on extract
    [sub] = collect(tmp_path / "inbox", LAB, tmp_path / "staging")
    assert sub.files is not None
    assert any("checksum differs" in note for note in sub.notes), sub.notes


def test_folders_nested_or_flat_and_broken_zips(tmp_path: Path, lab_copy: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "flat").mkdir(parents=True)
    (inbox / "flat" / LAB.notebook).write_text((lab_copy / LAB.notebook).read_text())
    (inbox / "nested" / LAB.name).mkdir(parents=True)
    (inbox / "nested" / LAB.name / LAB.notebook).write_text((lab_copy / LAB.notebook).read_text())
    (inbox / "broken.zip").write_bytes(b"not a zip")
    (inbox / "odd name!").mkdir()
    subs = {s.student: s for s in collect(inbox, LAB, tmp_path / "staging")}
    assert (subs["flat"].files / LAB.notebook).is_file()
    assert (subs["nested"].files / LAB.notebook).is_file()
    assert subs["broken"].files is None and "not a readable zip" in subs["broken"].notes[0]
    assert "odd_name" in subs, "student ids are made safe for paths"


def test_duplicate_grade_ids_keep_the_first() -> None:
    nb = nbformat.read(ROOT / "solutions" / LAB.name / LAB.notebook, as_version=4)
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test-venv")
    nb.cells.append(nbformat.from_dict(dict(test_cell)))
    notes = sanitize_notebook(nb)
    assert len(notes) == 1 and "test-venv" in notes[0]
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    assert ids.count("test-venv") == 1


def test_pack_keeps_the_labs_dotfiles(lab_copy: Path, tmp_path: Path) -> None:
    """lab06 grades the learner's .dockerignore: submit must not drop files because their names start with a dot."""
    (lab_copy / ".dockerignore").write_text(".env\n")
    archive, _ = pack(lab_copy, LAB.name, "cy", tmp_path / "inbox")
    assert ".dockerignore" in zipfile.ZipFile(archive).namelist()


def test_identity_is_the_entry_name_and_a_disagreeing_manifest_flags(lab_copy: Path, tmp_path: Path) -> None:
    archive, _ = pack(lab_copy, LAB.name, "ada", tmp_path / "made")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    archive.rename(inbox / f"mallory-{LAB.name}.zip")  # mallory hands in a copy of ada's archive
    [sub] = collect(inbox, LAB, tmp_path / "staging")
    assert sub.student == "mallory", "the manifest never overrides the archive's name"
    assert sub.flags and "names 'ada'" in sub.flags[0]


def test_two_entries_for_one_student_are_both_listed(lab_copy: Path, tmp_path: Path) -> None:
    import os

    inbox = tmp_path / "inbox"
    pack(lab_copy, LAB.name, "bo", inbox)
    os.utime(inbox / f"bo-{LAB.name}.zip", (1_000_000_000, 1_000_000_000))  # the older one
    shutil.copytree(lab_copy, inbox / "bo")
    [sub] = collect(inbox, LAB, tmp_path / "staging")
    assert sub.entry == "bo" and "2 submissions for bo" in sub.flags[0] and f"bo-{LAB.name}.zip" in sub.flags[0]


def test_links_are_never_followed_and_sizes_are_capped(lab_copy: Path, tmp_path: Path) -> None:
    import os

    inbox = tmp_path / "inbox"
    folder = inbox / "cy"
    shutil.copytree(lab_copy, folder)
    os.symlink(ROOT / "solutions", folder / "answers")
    os.symlink("/nonexistent", folder / "dangling.txt")
    with open(folder / "big.bin", "wb") as fh:
        fh.truncate(2 * 1024 * 1024)
    os.symlink(inbox / "loop", inbox / "loop")
    subs = {s.student: s for s in collect(inbox, LAB, tmp_path / "staging", max_file_bytes=1024 * 1024)}
    cy = subs["cy"]
    assert not (cy.files / "answers").exists() and not (cy.files / "big.bin").exists()
    assert sum("symbolic link" in n for n in cy.notes) == 2 and any("big.bin" in n for n in cy.notes)
    assert subs["loop"].files is None and "symbolic link" in subs["loop"].unreadable


@pytest.mark.parametrize("manifest", [42, [1, 2], {"student": 7}, {"student": "dee", "files": ["x"]}, "text"])
def test_malformed_manifests_are_noted_never_fatal(lab_copy: Path, tmp_path: Path, manifest: object) -> None:
    import json

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    with zipfile.ZipFile(inbox / f"dee-{LAB.name}.zip", "w") as zf:
        zf.write(lab_copy / LAB.notebook, LAB.notebook)
        zf.writestr("submission.json", json.dumps(manifest))
    [sub] = collect(inbox, LAB, tmp_path / "staging")
    assert sub.student == "dee" and (sub.files / LAB.notebook).is_file()
    assert sub.notes, f"the malformed manifest {manifest!r} is noted"


def test_shadowing_packages_are_removed(lab_copy: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(lab_copy, inbox / "eve")
    (inbox / "eve" / "mlinfra").mkdir()
    (inbox / "eve" / "mlinfra" / "__init__.py").write_text("raise SystemExit")
    (inbox / "eve" / "sitecustomize.py").write_text("raise SystemExit")
    [sub] = collect(inbox, LAB, tmp_path / "staging")
    assert not (sub.files / "mlinfra").exists() and not (sub.files / "sitecustomize.py").exists()
    assert sum("removed" in n for n in sub.notes) == 2


def test_names_counts_and_manifests_an_attacker_chooses_stay_bounded(lab_copy: Path, tmp_path: Path) -> None:
    """Found by an outside attack: a non-UTF-8 file name, a deeply nested manifest in a folder, and a zip of
    thousands of entries each stopped a whole batch or filled grades.csv; each is now a bounded note."""
    import os
    import stat as st

    inbox = tmp_path / "inbox"
    odd = inbox / "odd"
    shutil.copytree(lab_copy, odd)
    os.symlink(b"x", os.fsencode(odd) + b"/\xff\xfe-link")
    os.mkfifo(os.fsencode(odd) + b"/\xfd-fifo")
    (odd / "submission.json").write_text("[" * 3000 + "]" * 3000)
    with zipfile.ZipFile(inbox / f"many-{LAB.name}.zip", "w") as zf:
        zf.write(lab_copy / LAB.notebook, LAB.notebook)
        for i in range(3000):
            info = zipfile.ZipInfo(f"l/{i:x}")
            info.external_attr = (st.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    subs = {s.student: s for s in collect(inbox, LAB, tmp_path / "staging")}
    notes = "\n".join(subs["odd"].notes)
    notes.encode("utf-8")  # no lone surrogate: every output can hold it
    assert "-link (a symbolic link" in notes and "-fifo (not a regular file)" in notes and "not valid JSON" in notes
    assert (subs["odd"].files / LAB.notebook).is_file()
    many = subs["many"]
    assert (many.files / LAB.notebook).is_file()
    assert len(many.notes) <= 25 and any("more than 2000" in n for n in many.notes), many.notes[-3:]


def test_a_notebook_of_millions_of_tiny_objects_is_refused_before_parsing(tmp_path: Path) -> None:
    """Found by an outside attack: 5.7 MB of `[{}, {}, ...]` in a cell's metadata took the grader to 5 GB."""
    import json
    import resource

    from autograder.errors import UsageError
    from autograder.notebooks import read_notebook

    nb = json.loads((ROOT / "labs" / LAB.name / LAB.notebook).read_text())
    nb["cells"][0]["metadata"]["x"] = [{}] * 2_000_000
    path = tmp_path / LAB.notebook
    path.write_text(json.dumps(nb, separators=(",", ":")))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UsageError, match="JSON objects or arrays"):
        read_notebook(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # kB: well under 200 MB more
