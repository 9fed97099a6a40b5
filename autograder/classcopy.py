"""The class copy: what an instructor-led class receives (`autograder release --student-dist DIR`), and the checks
that prove it gives nothing away (docs/class-copy.md).

What goes in: the released labs, the lesson notebooks, learner copies of the quiz banks (summative ones hold the
questions only), the course library minus the code a lab or the practical asks learners to write, the grading
package (learners self-check, take quizzes and submit with it), the set-up scripts, and a README and Makefile
written for students (autograder/templates/student/). What stays out: solutions/, tests/ (samples derive from
solutions), bench/, the reference service and the reference TorchServe handler, and every region of a shipped
library file between `# class-copy: omit-begin` and `# class-copy: omit-end` (the response models of the API lab
in mlinfra/contract.py).

Lessons that send self-paced learners to solutions/ are rewritten as they are copied (LESSON_REWRITES).

The leak check (`find_class_copy_leaks`) reads every file of the class copy as an attacker would, down to its
words (autograder/fingerprints.py: Python through its tokenizer with string values, f-strings, escapes, source
encodings, NFKC names and encoded payloads decoded; notebooks per cell, outputs and metadata included; JSON and
YAML parsed), and compares it with what each lab keeps secret: its solution regions and hidden tests, read the
same way, minus what the lab's own public text says. A file gives a lab away when:
- it is one of the lab's own released files (labs/<lab>/) and holds one secret line of OWN_CHARS or more (the
  rule of `release --check`, on words);
- it holds a hidden-test line of UNIT_WORDS words and HIDDEN_CHARS characters or more;
- SHINGLE-word shingles and lines of one region cover REGION_WORDS of its words and REGION_SHARE of it;
- it holds LEAK_UNITS distinctive lines of one lab's solution (UNIT_WORDS words, UNIT_CHARS characters);
- it holds LEAK_SETTINGS settings of one solution config file (config.properties, YAML) that the lab's own
  config files do not state;
- it is a lesson that still points to solutions/.
The thresholds are calibrated on the course (see the comment above them); quizzes/ is also checked for keys:
no summative copy holds a key field, a salt, a digest or an explanation.
`shipped_apps` lists every FastAPI app and module-level `app` the copy holds; `assess` on each must fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import UsageError
from autograder.fingerprints import BREAK, Finder, file_streams, file_text, lex_python, words
from autograder.labs import NOT_LAB_FILES, lab_files, lab_names

# Shipped as they are (directories are copied whole, minus caches).
ITEMS = ("labs", "modules", "mlinfra", "autograder", "scripts", "pyproject.toml", "environment.yml", ".gitignore")
# Course-library files a lab or the practical asks learners to write: never in a class copy.
OMIT_LIBRARY = ("mlinfra/service.py", "mlinfra/torchserve_handler.py")
OMIT_BEGIN, OMIT_END = "# class-copy: omit-begin", "# class-copy: omit-end"
TEMPLATES = Path(__file__).with_name("templates") / "student"
DOCS = ("docs/class-copy.md", "docs/quizzes.md")
# The leak check's calibration, measured on the course (docs/class-copy.md): where the library, the tooling and
# the lessons share the language's idioms with a solution (making a parent folder, refusing a bool where an int
# is due, the optimizer's three calls, a doctor's messages), they cover at most 18 words of a region and then
# under a fifth of it (18%), or at most 10 words where they cover a quarter or more; each leak the course
# shipped covered 16 words or more and a third of its region.
SHINGLE = 8  # words in a row that make a shingle
REGION_WORDS = 12  # a region is given away when shingles and lines of it cover this many of its words ...
REGION_SHARE = 0.25  # ... and this share of them
UNIT_WORDS, UNIT_CHARS = 4, 25  # a distinctive line: this many words and characters (words joined by spaces)
LEAK_UNITS = 4  # distinctive lines of one lab's solution in one file that make it a leak
LEAK_SETTINGS = 3  # settings (key=value lines) of one solution config file (config.properties) in one file
CONFIG_FILES = (".properties", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".env", ".json")
HIDDEN_CHARS = 25  # a hidden-test line this long (3+ words) is a leak anywhere
OWN_CHARS = 12  # in the lab's own released files, any secret line this long (the rule of `release --check`)


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


# The open course ships solutions/ for self-paced learners, and its lessons say so; a class copy has none, so
# those sentences are rewritten as the lessons are copied (the leak check refuses any lesson that still points
# there: add a rewrite here when a lesson gains another such sentence).
LESSON_REWRITES = (
    (re.compile(r"Stuck\? The instructor source is in `solutions/[^`]*`: read it after a real attempt\."),
     ("Stuck? Read the failing test's message first (it says what is wrong and what to do), then ask your "
      "instructor.")),
    (re.compile(r"The instructor sources in\s+`solutions/<lab>/` are there for self-paced learners; look after a "
                r"real attempt\."),
     "Still stuck after a real attempt? Ask your instructor."),
)


def _rewrite_lessons(folder: Path) -> None:
    """Apply LESSON_REWRITES to every markdown cell of the copied lessons under `folder`."""
    for path in sorted(folder.rglob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        changed = False
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "markdown":
                continue
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            new = source
            for pattern, replacement in LESSON_REWRITES:
                new = pattern.sub(replacement, new)
            if new != source:
                cell["source"], changed = new.splitlines(keepends=True), True
        if changed:
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


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
        raise UsageError(f"{root / 'labs'} is missing: run `.venv/bin/autograder release` first")
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
    if (dest / "modules").is_dir():
        _rewrite_lessons(dest / "modules")
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


@dataclass
class Region:
    """One solution region or hidden-test part of a lab, read down to words (autograder/fingerprints.py)."""

    lab: str
    where: str  # file (and cell) and first line, in solutions/<lab>/
    kind: str  # "solution" or "hidden"
    config: bool  # from a config file (CONFIG_FILES: config.properties, YAML): its lines are settings
    lines: list[tuple[int, tuple[str, ...]]]  # (line, its words), in order

    @property
    def words(self) -> list[str]:
        return [w for _, said in self.lines for w in said]


@dataclass
class Secrets:
    """What a lab's learners must not find: its regions, and the lab's public words to tell them apart."""

    lab: str
    regions: list[Region]
    public: Finder  # everything outside the regions (starter code, visible tests, prose, comments)
    public_shingles: set[tuple[str, ...]]
    # The lab's own config files outside their regions (baseline.yaml, config.properties' comments): a setting
    # they state is given. A visible test that checks a setting does not count: the assembled file is the answer.
    public_config: Finder

    def secret(self, unit: tuple[str, ...]) -> bool:
        return not self.public.has(unit)


def _modes(text: str) -> dict[int, str | None]:
    """line -> "solution", "hidden", "marker" or None (outside every region)."""
    from autograder.nbgrader_course import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION

    out: dict[int, str | None] = {}
    mode = None
    for number, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.endswith((BEGIN_SOLUTION, BEGIN_HIDDEN)):
            mode, out[number] = ("solution" if s.endswith(BEGIN_SOLUTION) else "hidden"), "marker"
        elif s.endswith((END_SOLUTION, END_HIDDEN)):
            mode, out[number] = None, "marker"
        else:
            out[number] = mode
    return out


def _chunks(path: Path) -> list[tuple[str, str, bool]]:
    """(where, text, is Python) of each cell of a notebook, or of the whole file."""
    if path.suffix != ".ipynb":
        return [("", path.read_text(encoding="utf-8"), path.suffix == ".py")]
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    return [(f" cell {i}", "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
             c.get("cell_type") == "code") for i, c in enumerate(cells)]


def lab_secrets(root: Path, lab: str) -> Secrets:
    """Every solution region and hidden-test part of solutions/<lab>/, and the lab's public words."""
    regions: list[Region] = []
    public: list[list[str]] = []
    public_config: list[list[str]] = []
    folder = root / "solutions" / lab
    for rel in lab_files(folder):
        try:
            chunks = _chunks(folder / rel)
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        for cell, text, is_python in chunks:
            modes = _modes(text)
            lexed = lex_python(text) if is_python else None
            if lexed is None:  # a config file, a Dockerfile, prose: `#` lines are comments
                lines = text.splitlines()
                code = [(n, w) for n, line in enumerate(lines, 1) if not line.lstrip().startswith("#")
                        for w in words(line)]
                comments = [(n, words(line)) for n, line in enumerate(lines, 1) if line.lstrip().startswith("#")]
            else:
                code, comments = lexed.code, lexed.comments
            given = [said for n, said in comments if modes.get(n) is None]
            public += given
            outside: list[str] = []
            current: Region | None = None
            for number, word in code:
                mode = modes.get(number)
                if mode not in ("solution", "hidden"):
                    current = None
                    outside.append(word)
                    continue
                # a new region at its BEGIN marker, even right after the END of another of the same kind
                after_marker = bool(current and current.lines) and any(
                    modes.get(n) == "marker" for n in range(current.lines[-1][0] + 1, number))
                if current is None or current.kind != mode or after_marker:
                    current = Region(lab, f"{rel.as_posix()}{cell}:{number}", mode, rel.suffix in CONFIG_FILES, [])
                    regions.append(current)
                if word == BREAK:
                    continue
                if current.lines and current.lines[-1][0] == number:
                    current.lines[-1] = (number, (*current.lines[-1][1], word))
                else:
                    current.lines.append((number, (word,)))
            public.append(outside)
            if rel.suffix in CONFIG_FILES:
                public_config += [*given, outside]
    finder = Finder(public)
    return Secrets(lab, [r for r in regions if r.lines], finder, finder.shingles(SHINGLE), Finder(public_config))


@dataclass
class _Prepared:
    region: Region
    units: list[tuple[tuple[str, ...], int, int]]  # secret lines: (words, start, end) in region.words
    shingles: list[tuple[tuple[str, ...], int]]  # secret shingles: (words, start)
    settings: list[tuple[str, ...]]  # a config region's settings that its lab's own config files do not state


def _prepare(secrets: Secrets) -> list[_Prepared]:
    out = []
    for region in secrets.regions:
        flat = region.words
        units, at = [], 0
        for _, said in region.lines:
            if len(said) >= 2 and len(" ".join(said)) >= OWN_CHARS and secrets.secret(said):
                units.append((said, at, at + len(said)))
            at += len(said)
        grams = [(tuple(flat[i:i + SHINGLE]), i) for i in range(len(flat) - SHINGLE + 1)]
        settings = [said for _, said in region.lines if region.config and len(said) >= 2
                    and len(" ".join(said)) >= OWN_CHARS and not secrets.public_config.has(said)]
        out.append(_Prepared(region, units, [(g, i) for g, i in grams if g not in secrets.public_shingles],
                             settings))
    return out


def _file_leaks(rel: str, finder: Finder, own: bool, prepared: list[_Prepared]) -> list[str]:
    """What of one lab the file at `rel` gives away (see the module's docstring for the rules)."""
    problems: list[str] = []
    grams = finder.shingles(SHINGLE)
    lines: dict[tuple[str, ...], Region] = {}
    settings: dict[str, list[tuple[str, ...]]] = {}
    for item in prepared:
        region = item.region
        found = [(u, a, b) for u, a, b in item.units if finder.has(u)]
        if own:  # the lab's own released files: not one line (the rule of `release --check`), and its released
            # config files not one setting (its notebook may well name the settings its tests check)
            settings_here = filter(finder.has, item.settings) if Path(rel).suffix in CONFIG_FILES else ()
            problems += [f"{rel}: a line of {region.lab}'s {region.kind} ({region.where}): {' '.join(u)[:70]}"
                         for u in dict.fromkeys([*(u for u, _, _ in found), *settings_here])]
            continue
        for unit, _, _ in found:
            if region.kind == "hidden" and len(unit) >= UNIT_WORDS and len(" ".join(unit)) >= HIDDEN_CHARS:
                problems.append(f"{rel}: a hidden-test line of {region.lab} ({region.where}): {' '.join(unit)[:70]}")
            if not region.config and len(unit) >= UNIT_WORDS and len(" ".join(unit)) >= UNIT_CHARS:
                lines.setdefault(unit, region)
        settings.setdefault(region.where.split(":")[0], []).extend(u for u in item.settings if finder.has(u))
        covered: set[int] = set()
        for unit, a, b in found:
            if len(unit) >= 3:  # two-word lines (`return value`, `import tempfile`) are idioms, not coverage
                covered.update(range(a, b))
        for gram, i in item.shingles:
            if gram in grams:
                covered.update(range(i, i + SHINGLE))
        total = len(region.words)
        if len(covered) >= REGION_WORDS and len(covered) >= REGION_SHARE * total:
            shown = region.words[min(covered): max(covered) + 1]
            problems.append(f"{rel}: {len(covered)} of the {total} words of {region.lab}'s {region.kind} at "
                            f"{region.where}: {' '.join(shown)[:80]}")
    if len(lines) >= LEAK_UNITS:
        lab = next(iter(lines.values())).lab
        problems.append(f"{rel}: {len(lines)} lines of {lab}'s solution, e.g. {' '.join(next(iter(lines)))[:60]}")
    for source, found_settings in settings.items():
        if len(set(found_settings)) >= LEAK_SETTINGS:
            lab = prepared[0].region.lab
            problems.append(f"{rel}: {len(set(found_settings))} settings of {lab}'s {source}: "
                            + ", ".join(" ".join(u) for u in sorted(set(found_settings))[:4])[:90])
    return problems


# No lesson may send a learner to the instructor's sources, which a class copy does not have.
POINTS_TO_SOLUTIONS = re.compile(r"\bsolutions/")


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
    prepared = {lab: _prepare(lab_secrets(root, lab)) for lab in lab_names(root)}
    problems: list[str] = []
    for rel in (omitted for omitted in OMIT_LIBRARY if (copy / omitted).exists()):
        problems.append(f"{rel}: the reference code a lab asks learners to write is in the class copy")
    if (copy / "solutions").exists() or (copy / "tests").exists():
        problems.append("solutions/ or tests/ is in the class copy")
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        rel = path.relative_to(copy)
        if rel.parts[0] == ".git":
            continue
        pieces = file_streams(path)
        if not pieces:
            continue
        finder = Finder(pieces)
        own = rel.parts[1] if rel.parts[0] == "labs" and len(rel.parts) > 2 else None
        for lab, items in prepared.items():
            problems += _file_leaks(rel.as_posix(), finder, lab == own, items)
        text = file_text(path) if rel.parts[0] == "modules" else None
        if text is not None:
            for number, line in enumerate(text.splitlines(), start=1):
                if POINTS_TO_SOLUTIONS.search(line):
                    problems.append(f"{rel}:{number}: sends learners to solutions/, which a class copy does not "
                                    f"have: {line.strip()[:70]}")
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
