"""The class copy: what an instructor-led class receives (`autograder release --student-dist DIR`), and the checks
that prove it gives nothing away (docs/class-copy.md).

What goes in: the released labs, the lesson notebooks, learner copies of the quiz banks (summative ones hold the
questions only), the course library minus the code a lab or the practical asks learners to write, the grading
package (learners self-check, take quizzes and submit with it), the set-up scripts, and a README and Makefile
written for students (autograder/templates/student/). What stays out: solutions/, tests/ (samples derive from
solutions), bench/, the reference service and the reference TorchServe handler, and every region of a shipped
library file between `# class-copy: omit-begin` and `# class-copy: omit-end` (the response models of the API lab
in mlinfra/contract.py).

The leak check (`find_class_copy_leaks`) reads the class copy as an attacker would:
- every shipped file: no hidden-test line of LONG_LINE characters or more;
- a lab's own released files (labs/<lab>/): not one line of its solution regions or hidden tests (12+
  characters, the rule of `release --check`);
- every other file (the course library, the tooling, the lessons, the other labs): fewer than LEAK_LINES lines
  of any one lab's solution regions, counting only lines of LONG_LINE characters or more: `model.eval()`,
  `return value` and `import tempfile` are the language's idioms, which the library and lessons must be free to
  use, while the reference service held 6 such lines of the API lab and the reference handler 9 of the
  TorchServe lab;
- quizzes/: no summative copy holds a key field, a salt, a digest or an explanation.
`shipped_apps` lists every FastAPI app and module-level `app` the copy holds; `assess` on each must fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import NOT_LAB_FILES, lab_files, lab_names

# Shipped as they are (directories are copied whole, minus caches).
ITEMS = ("labs", "modules", "mlinfra", "autograder", "scripts", "pyproject.toml", "environment.yml", ".gitignore")
# Course-library files a lab or the practical asks learners to write: never in a class copy.
OMIT_LIBRARY = ("mlinfra/service.py", "mlinfra/torchserve_handler.py")
OMIT_BEGIN, OMIT_END = "# class-copy: omit-begin", "# class-copy: omit-end"
TEMPLATES = Path(__file__).with_name("templates") / "student"
DOCS = ("docs/class-copy.md", "docs/quizzes.md")
LEAK_LINES = 4  # lines of one lab's solution in one library or lesson file that make it a leak
LONG_LINE = 25  # shorter solution lines are idioms where the library and lessons are concerned


def _scrub(text: str, path: str) -> str:
    """Drop every omit-begin ... omit-end region of a library file, leaving a comment that says why."""
    out: list[str] = []
    inside = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped.startswith(OMIT_BEGIN):
            if inside:
                raise UsageError(f"{path}:{number}: {OMIT_BEGIN} inside the region opened at line {inside}")
            inside = number
            reason = stripped[len(OMIT_BEGIN):].strip(" ()") or "a lab asks learners to write this"
            out.append(f"# (left out of the class copy: {reason})\n")
        elif stripped.startswith(OMIT_END):
            if not inside:
                raise UsageError(f"{path}:{number}: {OMIT_END} without an {OMIT_BEGIN} before it")
            inside = 0
        elif not inside:
            out.append(line)
    if inside:
        raise UsageError(f"{path}:{inside}: {OMIT_BEGIN} is never closed by {OMIT_END}")
    return "".join(out)


def _ignore(src_root: Path):
    base = shutil.ignore_patterns(*NOT_LAB_FILES, "*.egg-info", "*.pyc")

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(base(folder, names))
        rel = Path(folder).resolve().relative_to(src_root.resolve())
        for name in names:
            if (rel / name).as_posix() in OMIT_LIBRARY:
                skipped.add(name)
        return skipped

    return ignore


def build_class_copy(root: Path, dest: Path) -> list[str]:
    """Write the class copy of the course at `root` into the new or empty folder `dest`; what was written."""
    from autograder.quiz.bank import OUTCOMES_FILE
    from autograder.quiz.learner import write_learner_copies

    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise UsageError(f"--student-dist {dest}: choose a folder outside the course's own folder")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"--student-dist {dest}: the folder is not empty; name a new or empty folder")
    if not (root / "labs").is_dir():
        raise UsageError(f"{root / 'labs'} is missing: run `autograder release` first")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for item in ITEMS:
        src = root / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=_ignore(root))
        elif src.is_file():
            shutil.copy2(src, dest / item)
        else:
            continue
        written.append(item)
    for path in sorted((dest / "mlinfra").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if OMIT_BEGIN in text:
            path.write_text(_scrub(text, str(path.relative_to(dest))), encoding="utf-8")
    for name in ("README.md", "Makefile"):
        shutil.copyfile(TEMPLATES / name, dest / name)
    for doc in DOCS:  # the two docs the shipped code cites
        if (root / doc).is_file():
            (dest / doc).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / doc, dest / doc)
    written += ["README.md (for students)", "Makefile (for students)"]
    copies = write_learner_copies(root, dest / "quizzes")
    if (root / "quizzes" / OUTCOMES_FILE).is_file():
        shutil.copyfile(root / "quizzes" / OUTCOMES_FILE, dest / "quizzes" / OUTCOMES_FILE)
    written.append(f"quizzes ({len(copies)} learner copies)")
    return written


# ---------------------------------------------------------------------------------------------- the leak check


def _text_lines(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        import json

        try:
            cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
        except (OSError, ValueError, UnicodeDecodeError):
            return []
        return ["".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
                for c in cells]
    try:
        return [path.read_text(encoding="utf-8")]
    except (OSError, UnicodeDecodeError):
        return []


def _regions(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(solution-region lines, hidden-test lines, lines outside both) of one source file, stripped."""
    from autograder.generate import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

    solution: set[str] = set()
    hidden: set[str] = set()
    outside: set[str] = set()
    for text in _text_lines(path):
        mode = None
        for line in text.splitlines():
            s = line.strip()
            if s.endswith(BEGIN_SOLUTION):
                mode = "solution"
            elif s.endswith(BEGIN_HIDDEN):
                mode = "hidden"
            elif s.endswith((END_SOLUTION, END_HIDDEN)):
                mode = None
            elif mode == "solution":
                solution.add(s)
            elif mode == "hidden":
                hidden.add(s)
            else:
                outside.add(s)
    return solution, hidden, outside


def _secret_lines(root: Path) -> dict[str, tuple[set[str], set[str]]]:
    """lab -> (solution lines, hidden-test lines) that appear nowhere outside those regions in the lab."""
    from autograder.generate import _is_distinctive

    secrets = {}
    for name in lab_names(root):
        solution: set[str] = set()
        hidden: set[str] = set()
        public: set[str] = set()
        for rel in lab_files(root / "solutions" / name):
            s, h, o = _regions(root / "solutions" / name / rel)
            solution |= s
            hidden |= h
            public |= o
        secrets[name] = ({x for x in solution - public if _is_distinctive(x)},
                         {x for x in hidden - public if _is_distinctive(x)})
    return secrets


def _quiz_leaks(root: Path, copy: Path) -> list[str]:
    import yaml

    from autograder.quiz.bank import bank_paths, load_quiz, normalize

    problems = []
    for source in bank_paths(root):
        quiz = load_quiz(source, schema_check=False)
        if not quiz.summative:
            continue
        target = copy / "quizzes" / f"{quiz.id}.yaml"
        if not target.is_file():
            continue
        text = target.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        for item in data.get("questions", []):
            extra = sorted(set(item) - {"id", "type", "topic", "points", "prompt", "options", "outcomes"})
            if extra:
                problems.append(f"quizzes/{target.name}: question {item.get('id')}: holds {', '.join(extra)}")
        flat = normalize(text)
        for q in quiz.questions:
            for sentence in re.split(r"(?<=[.:;])\s+", q.explanation):
                words = normalize(sentence)
                if len(words.split()) >= 5 and words in flat:
                    problems.append(f"quizzes/{target.name}: the explanation of {q.id} is in it: {sentence[:60]}")
    return problems


def find_class_copy_leaks(root: Path, copy: Path) -> list[str]:
    """Every way the class copy at `copy` gives away a lab's solution, a hidden test or a summative key."""
    secrets = _secret_lines(root)
    long_hidden = {line for _, hidden in secrets.values() for line in hidden if len(line) >= LONG_LINE}
    problems: list[str] = []
    for rel in (omitted for omitted in OMIT_LIBRARY if (copy / omitted).exists()):
        problems.append(f"{rel}: the reference code a lab asks learners to write is in the class copy")
    if (copy / "solutions").exists() or (copy / "tests").exists():
        problems.append("solutions/ or tests/ is in the class copy")
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        rel = path.relative_to(copy)
        if rel.parts[0] in (".git", "quizzes") or NOT_LAB_FILES.intersection(rel.parts):
            continue
        lines = {ln.strip() for text in _text_lines(path) for ln in text.splitlines()}
        if not lines:
            continue
        problems.extend(f"{rel}: a hidden-test line: {line[:70]}" for line in sorted(lines & long_hidden))
        own = rel.parts[1] if rel.parts[0] == "labs" and len(rel.parts) > 2 else None
        for lab, (solution, hidden) in secrets.items():
            found = lines & (solution | hidden)
            if lab == own:  # the lab's own released files: not one line (the rule of `release --check`)
                problems.extend(f"{rel}: a line of {lab}'s solution: {line[:70]}" for line in sorted(found))
                continue
            long_lines = sorted(line for line in found if len(line) >= LONG_LINE)
            if len(long_lines) >= LEAK_LINES:
                problems.append(f"{rel}: {len(long_lines)} lines of {lab}'s solution, e.g. {long_lines[0][:60]}")
    return problems + _quiz_leaks(root, copy)


def shipped_apps(copy: Path) -> list[str]:
    """`--app` specs of every FastAPI app in the copy's labs/ and course library, plus the reference service's
    import path (absent from a class copy, so assessing it must fail too)."""
    specs = ["mlinfra.service:app"]
    for folder in ("labs", "mlinfra"):
        for path in sorted((copy / folder).rglob("*.py")):
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if re.search(r"^app\s*=\s*FastAPI\(", text, re.MULTILINE):
                specs.append(f"{path.relative_to(copy).as_posix()}:app")
    return specs


def assess_fails(copy: Path, spec: str, timeout: float = 120.0) -> tuple[bool, str]:
    """Run `autograder assess --app SPEC` inside the class copy, on the copy's own code; (it failed, last line)."""
    import os

    env = {**os.environ, "WORKBOOK_ROOT": str(copy), "PYTHONPATH": str(copy)}
    proc = subprocess.run([sys.executable, "-m", "autograder", "assess", "--app", spec, "--startup-timeout", "10"],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
    return proc.returncode != 0, f"exit {proc.returncode}: {last[0][:160]}"
