"""Submissions: what `autograder submit` packs, and how `autograder grade` finds and cleans what students handed in.

A submissions folder holds, per student, either a folder (named by the student) with the lab's files, optionally
inside a `<lab>/` subfolder, or an archive made by `submit` (`<student>-<lab>.zip` with a manifest).

Every entry is hostile (docs/grading.md, "Threat model"):
- the student is the folder or archive name the instructor collected; a manifest naming someone else is noted and
  flags the submission, it never overrides the name;
- two entries for one student are both listed; the newest (by modification time, then by name) is graded;
- symbolic links are never followed (a link could point at solutions/ or at another student's work);
- per file and per student byte limits; an archive entry that is encrypted, uses an unsupported compression, lies
  about its size or escapes the archive is skipped with a note; nothing about one entry stops the others.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.grading.late import received_time
from autograder.labs import NOT_LAB_FILES, Lab

MANIFEST_NAME = "submission.json"
_STUDENT_ID = re.compile(r"[^A-Za-z0-9_.@-]+")
MAX_FILE_BYTES = 50 * 1024 * 1024  # one file of a submission
MAX_TOTAL_BYTES = 200 * 1024 * 1024  # everything one student hands in
MAX_ENTRIES = 2000  # files, folders and links one student hands in (a lab has a handful)
MAX_MANIFEST_BYTES = 64 * 1024
MAX_NOTES = 20  # skipped-entry notes kept per submission; the rest are counted in one more


def _shown(name: object) -> str:
    """A file name as text any output can hold (a non-UTF-8 name's bytes escaped, never a lone surrogate)."""
    return str(name).encode("utf-8", "backslashreplace").decode("utf-8")


def read_manifest(path: Path) -> tuple[Any, str]:
    """(the manifest's JSON, '') or (None, why it cannot be read): bounded in size and nesting."""
    try:
        with open(path, "rb", opener=_nofollow_opener) as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        return None, f"could not be read ({exc.strerror or exc})"
    if len(data) > MAX_MANIFEST_BYTES:
        return None, f"is over {MAX_MANIFEST_BYTES // 1024} kB"
    try:
        return json.loads(data.decode("utf-8", errors="replace")), ""
    except (ValueError, RecursionError, MemoryError):
        return None, "is not valid JSON (or nested too deep)"


def bounded_notes(notes: list[str]) -> list[str]:
    """At most MAX_NOTES notes about skipped entries (a hand-in of thousands of links would fill grades.csv)."""
    skipped = [n for n in notes if ": skipped " in n or ": could not read " in n]
    if len(skipped) <= MAX_NOTES:
        return notes
    drop = set(map(id, skipped[MAX_NOTES:]))
    return [n for n in notes if id(n) not in drop] + [f"... and {len(skipped) - MAX_NOTES} more entries skipped"]
# Top-level names a submission may not ship: they would shadow the course's packages inside the grading kernel
# (its working folder is first on sys.path) or configure the interpreter or IPython at start-up.
SHADOWING_NAMES = frozenset({"mlinfra", "autograder", "nbgrader", "ipykernel", "IPython", "sitecustomize.py",
                             "usercustomize.py", "mlinfra.py", "autograder.py", "nbgrader.py", "ipykernel.py",
                             "IPython.py", ".ipython", ".jupyter", ".local", ".config"})


@dataclass
class Submission:
    student: str
    files: Path | None  # folder holding the lab's files, None when nothing usable was handed in
    notes: list[str] = field(default_factory=list)  # problems found while unpacking, recorded in the grades
    flags: list[str] = field(default_factory=list)  # what a person should review (identity, duplicates)
    entry: str = ""  # the name in the submissions folder this came from
    unreadable: str = ""  # why nothing could be read, when files is None because of a broken entry
    received: float | None = None  # when the instructor received it (seconds since the epoch): see received_time


def student_id(raw: str) -> str:
    cleaned = _STUDENT_ID.sub("_", raw).strip("._") or "unnamed"
    return cleaned[:64]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lab_root_in(folder: Path, lab: Lab) -> Path:
    """Students zip a folder or its content; accept both shapes."""
    if (folder / lab.notebook).is_file():
        return folder
    candidates = [folder / lab.name, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())]
    for candidate in candidates:
        if (candidate / lab.notebook).is_file():
            return candidate
    return folder


class _Budget:
    def __init__(self, total: int, per_file: int) -> None:
        self.left, self.per_file = total, per_file

    def refuses(self, size: int) -> str:
        """Why a file of `size` bytes is not taken ('' when it fits)."""
        if size > self.per_file:
            return f"{size // 2**20} MB; the limit is {self.per_file // 2**20} MB a file"
        if size > self.left:
            return f"the submission is over its total of {MAX_TOTAL_BYTES // 2**20} MB"
        return ""


def _skip_name(rel_parts: tuple[str, ...]) -> bool:
    return bool(NOT_LAB_FILES.intersection(rel_parts)) or rel_parts[0] == MANIFEST_NAME


def _copy_folder(src: Path, dest: Path, budget: _Budget, label: str) -> list[str]:
    """Copy a student's folder without following a single symbolic link, within the byte budget."""
    notes: list[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False, onerror=lambda e: notes.append(
            f"{label}: could not read {_shown(e.filename)} ({e.strerror})")):
        base = Path(dirpath)
        rel_dir = base.relative_to(src)
        seen += len(dirnames) + len(filenames)
        if seen > MAX_ENTRIES:
            notes.append(f"{label}: more than {MAX_ENTRIES} files and folders; the rest were not read")
            break
        for name in sorted(dirnames):
            path = base / name
            rel = rel_dir / name
            if path.is_symlink():
                notes.append(f"{label}: skipped {_shown(rel)} (a symbolic link; links are never followed)")
                dirnames.remove(name)
            elif _skip_name(rel.parts):
                dirnames.remove(name)
        for name in sorted(filenames):
            path = base / name
            rel = rel_dir / name
            if _skip_name(rel.parts) and rel.parts[0] != MANIFEST_NAME:
                continue
            try:
                info = path.lstat()
            except OSError as exc:
                notes.append(f"{label}: could not read {_shown(rel)} ({exc.strerror})")
                continue
            if stat.S_ISLNK(info.st_mode):
                notes.append(f"{label}: skipped {_shown(rel)} (a symbolic link; links are never followed)")
                continue
            if not stat.S_ISREG(info.st_mode):
                notes.append(f"{label}: skipped {_shown(rel)} (not a regular file)")
                continue
            too_big = budget.refuses(info.st_size)
            if too_big:
                notes.append(f"{label}: skipped {_shown(rel)} ({too_big})")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(path, "rb", opener=_nofollow_opener) as fin, open(target, "wb") as fout:
                    copied = _copy_limited(fin, fout, min(budget.per_file, budget.left))
            except OSError as exc:
                notes.append(f"{label}: could not read {_shown(rel)} ({exc.strerror or exc})")
                target.unlink(missing_ok=True)
                continue
            if copied is None:
                notes.append(f"{label}: skipped {_shown(rel)} (grew past the size limit while being copied)")
                target.unlink(missing_ok=True)
                continue
            budget.left -= copied
    return notes


def _nofollow_opener(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0))


def _copy_limited(fin: Any, fout: Any, limit: int) -> int | None:
    total = 0
    while True:
        chunk = fin.read(1 << 20)
        if not chunk:
            return total
        total += len(chunk)
        if total > limit:
            return None
        fout.write(chunk)


def _unpack_archive(archive: Path, into: Path, budget: _Budget) -> tuple[Any, list[str]]:
    """Extract what can be extracted safely; return the raw manifest (or None) and notes."""
    notes: list[str] = []
    label = archive.name
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_ENTRIES:
            notes.append(f"{label}: {len(members)} entries, more than {MAX_ENTRIES}; only the first {MAX_ENTRIES} "
                         "were read")
        for member in members[:MAX_ENTRIES]:
            name = member.filename
            if member.is_dir():
                continue
            target = (into / name).resolve()
            if root not in target.parents:
                notes.append(f"{label}: skipped {name!r} (path outside the archive)")
                continue
            rel = target.relative_to(root)
            if _skip_name(rel.parts) and rel.parts[0] != MANIFEST_NAME:
                continue
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                notes.append(f"{label}: skipped {name!r} (a symbolic link; links are never followed)")
                continue
            if member.flag_bits & 0x1:
                notes.append(f"{label}: skipped {name!r} (encrypted; hand it in without a password)")
                continue
            too_big = budget.refuses(member.file_size)
            if too_big:
                notes.append(f"{label}: skipped {name!r} ({too_big})")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as fin, open(target, "wb") as fout:
                    copied = _copy_limited(fin, fout, min(budget.per_file, budget.left))
            except NotImplementedError as exc:
                notes.append(f"{label}: skipped {name!r} (unsupported compression: {exc}; use `.venv/bin/autograder submit`)")
                target.unlink(missing_ok=True)
                continue
            except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, ValueError) as exc:
                notes.append(f"{label}: skipped {name!r} (damaged entry: {str(exc)[:80]})")
                target.unlink(missing_ok=True)
                continue
            if copied is None:
                notes.append(f"{label}: skipped {name!r} (larger than its header said; over the size limit)")
                target.unlink(missing_ok=True)
                continue
            budget.left -= copied
    manifest_path = into / MANIFEST_NAME
    if not manifest_path.is_file():
        return None, notes
    manifest, why = read_manifest(manifest_path)
    manifest_path.unlink(missing_ok=True)
    if why:
        return None, notes + [f"{label}: {MANIFEST_NAME} {why}; graded without it"]
    return manifest, notes


def check_manifest(manifest: Any, into: Path, label: str) -> tuple[str | None, list[str]]:
    """The manifest's student (when it is a string) and notes on everything else that is off in it."""
    if manifest is None:
        return None, []
    if not isinstance(manifest, dict):
        return None, [f"{label}: {MANIFEST_NAME} is not an object (got {type(manifest).__name__}); graded without it"]
    notes: list[str] = []
    named = manifest.get("student")
    if named is not None and not isinstance(named, str):
        notes.append(f"{label}: {MANIFEST_NAME} 'student' is not a string ({named!r:.40}); ignored")
        named = None
    files = manifest.get("files") or {}
    if not isinstance(files, dict):
        notes.append(f"{label}: {MANIFEST_NAME} 'files' is not a mapping of path to checksum; checksums not checked")
        files = {}
    for rel, digest in files.items():
        path = into / str(rel)
        if not isinstance(digest, str):
            notes.append(f"{label}: {MANIFEST_NAME} checksum of {rel} is not a string")
        elif not path.is_file() or path.is_symlink():
            notes.append(f"{label}: {rel} listed in the manifest but missing")
        elif sha256(path) != digest:
            notes.append(f"{label}: {rel} changed after it was packed (checksum differs)")
    return named, notes


def _entry_student(entry: Path, lab: Lab) -> str:
    name = entry.name
    if name.endswith(".zip"):
        name = name[: -len(".zip")]
        if name.endswith(f"-{lab.name}"):
            name = name[: -len(lab.name) - 1]
    return student_id(name)


def _mtime(entry: Path) -> float:
    try:
        return entry.lstat().st_mtime
    except OSError:
        return 0.0


def collect(submissions_dir: Path, lab: Lab, staging: Path, *, max_file_bytes: int = MAX_FILE_BYTES,
            max_total_bytes: int = MAX_TOTAL_BYTES) -> list[Submission]:
    """Every student's submission, staged into `staging/<student>/`. Never raises for one bad entry."""
    by_student: dict[str, list[Path]] = {}
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith(".") or entry.name in NOT_LAB_FILES:
            continue
        if entry.is_symlink() or entry.is_dir() or entry.suffix == ".zip":
            by_student.setdefault(_entry_student(entry, lab), []).append(entry)
    found: list[Submission] = []
    for sid, entries in sorted(by_student.items()):
        entries.sort(key=lambda e: (_mtime(e), e.name))
        chosen, others = entries[-1], entries[:-1]
        sub = _stage_one(sid, chosen, lab, staging / sid, _Budget(max_total_bytes, max_file_bytes))
        sub.received = received_time(chosen)  # late.py: what this time can prove
        if others:
            sub.flags.append(f"{len(entries)} submissions for {sid}: {', '.join(e.name for e in entries)}; "
                             f"graded the newest, {chosen.name} (newest modification time, then name)")
        found.append(sub)
    return found


def _stage_one(sid: str, entry: Path, lab: Lab, dest: Path, budget: _Budget) -> Submission:
    if dest.exists():
        shutil.rmtree(dest)
    label = entry.name
    if entry.is_symlink():
        why = "a symbolic link" + (" that points nowhere" if not entry.exists() else "") + "; links are never followed"
        return Submission(sid, None, [f"{label}: {why}"], entry=label, unreadable=f"{label}: {why}")
    if entry.is_dir():
        notes = _copy_folder(entry, dest, budget, label)
        notes += _remove_shadowing(dest, lab, label)
        manifest_path = entry / MANIFEST_NAME
        named = None
        flags: list[str] = []
        if manifest_path.is_file() and not manifest_path.is_symlink():
            raw, why = read_manifest(manifest_path)
            if why:
                notes.append(f"{label}: {MANIFEST_NAME} {why}; graded without it")
            named, more = check_manifest(raw, dest, label)
            notes += more
        if named is not None and student_id(named) != sid:
            flags.append(f"{label}: the manifest names {named!r:.40} but the folder is {sid}; graded as {sid}")
        return Submission(sid, _lab_root_in(dest, lab), bounded_notes(notes), flags, entry=label)
    try:
        raw, notes = _unpack_archive(entry, dest, budget)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, ValueError, EOFError) as exc:
        why = f"{label}: not a readable zip archive ({str(exc)[:100]})"
        return Submission(sid, None, [why], entry=label, unreadable=why)
    named, more = check_manifest(raw, dest, label)
    notes += more + _remove_shadowing(dest, lab, label)
    flags = []
    if named is not None and student_id(named) != sid:
        flags.append(f"{label}: the manifest names {named!r:.40} but the archive is {sid}'s; graded as {sid}")
    return Submission(sid, _lab_root_in(dest, lab), bounded_notes(notes), flags, entry=label)


def _remove_shadowing(dest: Path, lab: Lab, label: str) -> list[str]:
    if not dest.is_dir():
        return []
    root = _lab_root_in(dest, lab)
    notes = []
    for name in sorted(SHADOWING_NAMES):
        path = root / name
        if path.exists() or path.is_symlink():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            notes.append(f"{label}: removed {name} (it would shadow the course's own code or configure the kernel)")
    return notes


def sanitize_notebook(nb: Any) -> list[str]:
    """Make a student's notebook gradable in place; return what was changed, for the grade's reason.

    Students copy and split cells (nbgrader issues #1083, #1331): a second cell with an existing grade_id would
    stop nbgrader, so later duplicates lose their grading metadata and the first one counts.
    """
    notes: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells, start=1):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not isinstance(meta, dict) or "grade_id" not in meta:
            continue
        gid = meta["grade_id"]
        if gid in seen:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {index} duplicated the graded cell {gid!r}; the first copy was graded")
        seen.add(gid)
    return notes
