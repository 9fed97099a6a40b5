"""Submissions: what `autograder submit` packs, and how `autograder grade` finds and cleans what students handed in.

A submissions folder holds, per student, either a folder (named by the student) with the lab's files, optionally
inside a `<lab>/` subfolder, or an archive made by `submit` (`<student>-<lab>.zip` with a manifest).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.labs import NOT_LAB_FILES, Lab

MANIFEST_NAME = "submission.json"
_STUDENT_ID = re.compile(r"[^A-Za-z0-9_.@-]+")


@dataclass
class Submission:
    student: str
    files: Path | None  # folder holding the lab's files, None when nothing usable was handed in
    notes: list[str] = field(default_factory=list)  # problems found while unpacking, recorded in the grades


def student_id(raw: str) -> str:
    cleaned = _STUDENT_ID.sub("_", raw).strip("._") or "unnamed"
    return cleaned[:64]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lab_root_in(folder: Path, lab: Lab) -> Path:
    """Students zip a folder or its content; accept both shapes."""
    if (folder / lab.notebook).is_file():
        return folder
    for candidate in (folder / lab.name, *[p for p in folder.iterdir() if p.is_dir()]):
        if (candidate / lab.notebook).is_file():
            return candidate
    return folder


def _unpack_archive(archive: Path, into: Path) -> tuple[str | None, list[str]]:
    notes: list[str] = []
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (into / member.filename).resolve()
            if into.resolve() not in target.parents and target != into.resolve():
                notes.append(f"{archive.name}: skipped {member.filename!r} (path outside the archive)")
                continue
            zf.extract(member, into)
    manifest_path = into / MANIFEST_NAME
    if not manifest_path.is_file():
        return None, notes
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        return None, notes + [f"{archive.name}: {MANIFEST_NAME} is not valid JSON; graded without it"]
    for rel, digest in (manifest.get("files") or {}).items():
        path = into / rel
        if not path.is_file():
            notes.append(f"{archive.name}: {rel} listed in the manifest but missing")
        elif sha256(path) != digest:
            notes.append(f"{archive.name}: {rel} changed after it was packed (checksum differs)")
    return manifest.get("student"), notes


def collect(submissions_dir: Path, lab: Lab, staging: Path) -> list[Submission]:
    """Every student's submission, unpacked into `staging/<student>/`. Never raises for one bad entry."""
    found: dict[str, Submission] = {}
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in NOT_LAB_FILES:
            continue
        notes: list[str] = []
        if entry.is_dir():
            sid = student_id(entry.name)
            dest = staging / sid
            shutil.copytree(entry, dest, ignore=shutil.ignore_patterns(*NOT_LAB_FILES), dirs_exist_ok=True)
        elif entry.suffix == ".zip":
            stem = entry.name[: -len(".zip")]
            stem = stem[: -len(lab.name) - 1] if stem.endswith(f"-{lab.name}") else stem
            dest = staging / f".unpack-{student_id(stem)}"
            try:
                named, notes = _unpack_archive(entry, dest)
            except (zipfile.BadZipFile, OSError) as exc:
                sid = student_id(stem)
                found[sid] = Submission(sid, None, [f"{entry.name}: not a readable zip archive ({exc})"])
                continue
            sid = student_id(named or stem)
            final = staging / sid
            if final.exists():
                shutil.rmtree(final)
            dest.rename(final)
            dest = final
        else:
            continue
        if sid in found:
            notes.append(f"{entry.name}: a second submission for {sid}; this one was graded")
        root = _lab_root_in(dest, lab)
        found[sid] = Submission(sid, root, notes)
    return list(found.values())


def sanitize_notebook(nb: Any) -> list[str]:
    """Make a student's notebook gradable in place; return what was changed, for the grade's reason.

    Students copy and split cells (nbgrader issues #1083, #1331): a second cell with an existing grade_id would
    stop nbgrader, so later duplicates lose their grading metadata and the first one counts.
    """
    notes: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells, start=1):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta or "grade_id" not in meta:
            continue
        gid = meta["grade_id"]
        if gid in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {index} duplicated the graded cell {gid!r}; the first copy was graded")
        seen.add(gid)
    return notes
