"""Generating labs/ from solutions/: nbgrader for notebooks and marker stripping for the lab's other files; the
checks that keep labs/ honest (in sync, no solution lines); the student distribution for instructor-led classes.
The engine behind `autograder release` (autograder/release.py is the verb).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import NOT_LAB_FILES, Lab, lab_files, lab_names, load_lab
from autograder.nbgrader_course import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    course_config,
    quiet_nbgrader,
)
from autograder.paths import labs_dir, solutions_dir
from mlinfra.base.results import FAILED, PASSED, Check, Outcome

# The placeholder a stripped region becomes, by file kind (docs/architecture.md, solution markers).
HASH_COMMENT = "# YOUR CODE HERE"
PYTHON_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
HASH_COMMENT_SUFFIXES = {".yaml", ".yml", ".toml", ".cfg", ".ini", ".properties", ".sh", ".txt", ".conf"}
HASH_COMMENT_NAMES = {"Dockerfile", ".dockerignore", "Makefile", "requirements.txt", "config.properties"}


@dataclass
class ReleaseResult:
    lab: str
    files: list[str] = field(default_factory=list)


def _stub_for(path: Path) -> tuple[str, ...]:
    if path.suffix == ".py":
        return PYTHON_STUB
    if path.suffix in HASH_COMMENT_SUFFIXES or path.name in HASH_COMMENT_NAMES or path.name.startswith("Dockerfile"):
        return (HASH_COMMENT,)
    raise UsageError(
        f"{path}: has solution markers but the release does not know this file's comment syntax; "
        "use a .py, .yaml, .sh, .properties, .txt or Dockerfile, or move the solution into the notebook"
    )


def strip_solution_regions(text: str, path: Path) -> str:
    """Replace every `### BEGIN SOLUTION` ... `### END SOLUTION` region with the file kind's placeholder,
    indented like the BEGIN marker. Unbalanced markers are an error naming the line."""
    out: list[str] = []
    inside_since: int | None = None
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if BEGIN_HIDDEN in stripped or END_HIDDEN in stripped:
            raise UsageError(f"{path}:{number}: hidden tests belong in the lab's notebook, not in other files")
        if stripped.endswith(BEGIN_SOLUTION):
            if inside_since is not None:
                raise UsageError(f"{path}:{number}: {BEGIN_SOLUTION} inside the region opened at line {inside_since}")
            inside_since = number
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(f"{indent}{stub}\n" for stub in _stub_for(path))
        elif stripped.endswith(END_SOLUTION):
            if inside_since is None:
                raise UsageError(f"{path}:{number}: {END_SOLUTION} without a {BEGIN_SOLUTION} before it")
            inside_since = None
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise UsageError(f"{path}:{inside_since}: {BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return "".join(out)


def _has_markers(path: Path) -> bool:
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError):
        return False
    return BEGIN_SOLUTION in text or END_SOLUTION in text


def generate_labs(labs: list[Lab], dest_root: Path) -> list[ReleaseResult]:
    """Write the student version of each lab into `dest_root/<lab>` (replacing it). One nbgrader course folder
    serves the whole release: creating a gradebook costs seconds, generating a notebook a fraction of one."""
    from nbgrader.apps import NbGraderAPI

    results = []
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        course = Path(tmp)
        for lab in labs:
            shutil.copytree(lab.folder, course / "source" / lab.name, ignore=shutil.ignore_patterns(*NOT_LAB_FILES))
        for lab in labs:
            with quiet_nbgrader():
                outcome = NbGraderAPI(config=course_config(course, lab)).generate_assignment(
                    lab.name, force=True, create=True)
            if not outcome.get("success"):
                log = (outcome.get("log") or "") + (outcome.get("error") or "")
                last = [ln for ln in log.splitlines() if ln.strip()][-3:]
                raise UsageError(f"nbgrader could not generate {lab.name}: {' | '.join(last) or 'no log'}")
            results.append(_copy_release(lab, course / "release" / lab.name, dest_root / lab.name))
    return results


def _copy_release(lab: Lab, released: Path, dest: Path) -> ReleaseResult:
    result = ReleaseResult(lab=lab.name)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for rel in lab_files(lab.folder):
        src = lab.folder / rel
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix == ".ipynb":
            shutil.copyfile(released / rel, target)
        elif _has_markers(src):
            target.write_text(strip_solution_regions(src.read_text(), src))
        else:
            shutil.copyfile(src, target)
        result.files.append(str(rel))
    return result


def release(root: Path, names: list[str] | None = None, dest_root: Path | None = None) -> list[ReleaseResult]:
    names = names or lab_names(root)
    for name in names:
        if not (solutions_dir(root) / name).is_dir():
            raise UsageError(f"no lab named {name!r} under solutions/ (labs: {', '.join(lab_names(root))})")
    return generate_labs([load_lab(solutions_dir(root) / n) for n in names], dest_root or labs_dir(root))


# ---------------------------------------------------------------------------------------------- checks


def diff_trees(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two lab trees (missing on either side, or different bytes)."""
    fresh, current = set(lab_files(expected)), set(lab_files(actual))
    problems = [f"{rel}: only in the fresh release" for rel in fresh - current]
    problems += [f"{rel}: not in the fresh release" for rel in current - fresh]
    problems += [f"{rel}: differs" for rel in fresh & current
                 if (expected / rel).read_bytes() != (actual / rel).read_bytes()]
    return sorted(problems)


def _solution_lines(path: Path) -> tuple[set[str], set[str]]:
    """(lines inside solution/hidden-test regions, lines outside them) of one source file, stripped."""
    import nbformat

    texts: list[str]
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        texts = [cell.source for cell in nb.cells]
    else:
        try:
            texts = [path.read_text()]
        except (UnicodeDecodeError, OSError):
            return set(), set()
    inside: set[str] = set()
    outside: set[str] = set()
    for text in texts:
        depth = 0
        for line in text.splitlines():
            s = line.strip()
            if s.endswith((BEGIN_SOLUTION, BEGIN_HIDDEN)):
                depth += 1
            elif s.endswith((END_SOLUTION, END_HIDDEN)):
                depth = max(0, depth - 1)
            elif depth:
                inside.add(s)
            else:
                outside.add(s)
    return inside, outside


def _is_distinctive(line: str) -> bool:
    # Short or generic lines (`return x`, `pass`, `)`) legitimately appear in stubs and prose.
    return len(line) >= 12 and not line.startswith("#") and any(c.isalpha() for c in line)


def find_leaks(root: Path) -> list[str]:
    """Every line under labs/ that is a line of a solution region or hidden test in solutions/ (and that
    appears nowhere outside such regions in the source). The lines themselves, not just the markers."""
    import nbformat

    leaks: list[str] = []
    for name in lab_names(root):
        secret: set[str] = set()
        public: set[str] = set()
        for rel in lab_files(solutions_dir(root) / name):
            inside, outside = _solution_lines(solutions_dir(root) / name / rel)
            secret |= inside
            public |= outside
        secret = {s for s in secret - public if _is_distinctive(s)}
        released = labs_dir(root) / name
        if not released.is_dir():
            continue
        for rel in lab_files(released):
            path = released / rel
            if rel.suffix == ".ipynb":
                text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
            else:
                try:
                    text = path.read_text()
                except (UnicodeDecodeError, OSError):
                    continue
            for number, line in enumerate(text.splitlines(), start=1):
                s = line.strip()
                if s in secret or any(m in s for m in (BEGIN_SOLUTION, BEGIN_HIDDEN, END_SOLUTION, END_HIDDEN)):
                    leaks.append(f"labs/{name}/{rel}:{number}: {s[:80]}")
    return leaks


def check_in_sync(root: Path) -> list[str]:
    """Regenerate every lab into a temporary folder and diff it against labs/."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        fresh = Path(tmp)
        release(root, dest_root=fresh)
        for name in lab_names(root):
            current = labs_dir(root) / name
            if not current.is_dir():
                problems.append(f"labs/{name}: missing")
                continue
            problems.extend(f"labs/{name}/{p}" for p in diff_trees(fresh / name, current))
        for extra in sorted(set(lab_names(root, source=False)) - set(lab_names(root))):
            problems.append(f"labs/{extra}: has no source under solutions/")
    return problems


# ---------------------------------------------------------------------------------------------- distribution


def student_dist(root: Path, dest: Path) -> list[str]:
    """Write the class copy (autograder/classcopy.py): no solutions/, no tests/, no key of a summative quiz, and
    no library code a lab asks learners to write; a README and Makefile for students. What was written."""
    from autograder.classcopy import build_class_copy

    return build_class_copy(root, dest)


# ---------------------------------------------------------------------------------------------- engine


def release_outcome(root: Path, labs: list[str] | None = None) -> Outcome:
    """Regenerate labs/ (all, or `labs`) and check that no solution line reached it."""
    outcome = Outcome(subject="release")
    for result in release(root, labs or None):
        outcome.checks.append(Check(f"release {result.lab}", PASSED, message=f"{len(result.files)} files",
                                    where=f"labs/{result.lab}/"))
    outcome.checks += [Check("leak", FAILED, message=leak, where=leak.split(":")[0]) for leak in find_leaks(root)]
    return outcome


def check_outcome(root: Path) -> Outcome:
    """Change nothing: is labs/ in sync with solutions/, and free of solution lines?"""
    outcome = Outcome(subject="release --check")
    problems = check_in_sync(root) + [f"leak: {leak}" for leak in find_leaks(root)]
    outcome.checks += [Check("labs/", FAILED, message=p, where=p.split(":")[0]) for p in problems]
    if not problems:
        outcome.checks.append(Check("labs/", PASSED, message=f"in sync with solutions/ ({len(lab_names(root))} labs) "
                                    "and no solution lines"))
    return outcome


def dist_outcome(root: Path, dest: Path) -> Outcome:
    """Write the class copy, then read it back as an attacker would (the leak check)."""
    from autograder.classcopy import find_class_copy_leaks

    written = student_dist(root, dest)
    outcome = Outcome(subject=f"class copy {dest}", data={"dest": str(dest), "written": written})
    leaks = find_class_copy_leaks(root, dest)
    outcome.checks += [Check("leak", FAILED, message=leak, where=leak.split(":")[0]) for leak in leaks]
    if not leaks:
        outcome.checks.append(Check("leak check", PASSED, message="no solution line, hidden test or summative key"))
    return outcome
