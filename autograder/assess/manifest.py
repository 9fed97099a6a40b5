"""A practical hand-in's submission.json (written by `autograder submit practical`) against what was scored.

The manifest names the student and a checksum of every file packed. `assess --pack` reads it once the hand-in is
unpacked: a manifest that is missing, names another learner than the hand-in's file or folder, or whose checksums
differ from the files that ran (or that lists fewer files than ran) is not a reason to refuse the score but for a
person to look: each becomes a note, and the outcome is "flagged" for review. Which copy of a file that appears
twice in the archive ran is decided at unpacking (handin.py: the copy the manifest lists).
"""

from __future__ import annotations

from pathlib import Path

from autograder.assess.handin import PRACTICAL, SERVICE_DIR, Unpacked


def expected_student(pack: Path) -> str:
    """Whose hand-in this is by its place: `<id>-practical.zip` (as submit names it), else the folder holding it
    (a learning platform's bulk download: a folder per student, each holding the upload under any name)."""
    from autograder.submissions import student_id

    stem = pack.name.removesuffix(".zip")
    if stem.endswith(f"-{PRACTICAL}") and stem != f"-{PRACTICAL}":
        return student_id(stem[: -len(PRACTICAL) - 1])
    return student_id(pack.resolve().parent.name)


def notes(pack: Path, unpacked: Unpacked, label: str) -> list[str]:
    """What is off between the manifest and the hand-in, one line each ([] when they agree)."""
    from autograder.submissions import MANIFEST_NAME, _check_manifest, _read_manifest, student_id
    from mlinfra.base.output import printable

    path = unpacked.folder / MANIFEST_NAME
    if path.is_symlink() or not path.is_file():
        return [(f"{label}: no {MANIFEST_NAME}: who packed it and what it held cannot be checked (hand-ins come "
                 "from `.venv/bin/autograder submit practical`)")]
    manifest, why = _read_manifest(path)
    if manifest is None:
        return [f"{label}: {MANIFEST_NAME} {why}: who packed it and what it held cannot be checked"]
    named, out = _check_manifest(manifest, unpacked.folder, label)
    expected = expected_student(pack)
    if named is None:
        out.append(f"{label}: {MANIFEST_NAME} names no student")
    elif student_id(named) != expected:
        out.append(f"{label}: {MANIFEST_NAME} names the student {printable(named)[:64]!r}, but the hand-in is "
                   f"{expected}'s by its file or folder name")
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if isinstance(files, dict):
        service = unpacked.folder / SERVICE_DIR
        ran = sorted(p.relative_to(unpacked.folder).as_posix() for p in service.rglob("*")
                     if p.is_file() and not p.is_symlink()) if service.is_dir() else []
        unlisted = [rel for rel in ran if rel not in files]
        if unlisted:
            out.append(f"{label}: {len(unlisted)} service file(s) not in {MANIFEST_NAME}, e.g. "
                       f"{printable(unlisted[0])!r}: added after it was packed")
    out += [f"{label}: entry {s}" for s in unpacked.skipped if "in the archive twice" in s]
    return [printable(note) for note in out[:10]]
