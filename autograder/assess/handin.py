"""The practical's hand-in: `autograder submit practical` packs it, `autograder assess --pack` scores it.

A hand-in is one .zip holding:

- ``service/``: the learner's service folder (``app.py`` and whatever else it needs: modules, requirements,
  a Dockerfile); no model weights, no virtual environments, no caches;
- ``model_card.json``: the card of the model the service serves (from the folder, else from the model folder);
- ``README.md``: how to run it, its API, the latency the learner measured, its limitations;
- ``demo/`` (optional): a short transcript of it working (an asciinema ``.cast``, a Markdown or text terminal
  transcript, or a notebook), found as ``demo.*`` or ``demo/`` in the folder;
- ``submission.json``: who, when, and a checksum of every file.

`assess --pack` unpacks it into a temporary folder, starts ``service/app.py:app`` under uvicorn and scores the five
requirements, and checks the README's four required sections (5 points each): a README that misses one loses
exactly that section's points.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlinfra.base.errors import UsageError
from mlinfra.base.results import FAILED, PASSED, Check

PRACTICAL = "practical"
README_NAME, CARD_NAME, SERVICE_DIR, DEMO_DIR = "README.md", "model_card.json", "service", "demo"
APP_FILE = "app.py"
MAX_FILE_BYTES = 5 * 1024 * 1024  # source and documents only: weights stay home, the grader has the course model
MAX_PACK_BYTES = 30 * 1024 * 1024
SKIP_DIRS = {"__pycache__", ".venv", "venv", ".git", ".ipynb_checkpoints", "node_modules", ".pytest_cache",
             "models", "runs", "out"}
SKIP_SUFFIXES = {".pt", ".pth", ".ckpt", ".mar", ".onnx", ".bin", ".safetensors", ".pyc", ".zip"}
DEMO_SUFFIXES = {".cast", ".md", ".txt", ".ipynb", ".log", ".gif", ".png", ".svg"}
SECTION_POINTS = 5.0


@dataclass(frozen=True)
class Section:
    name: str
    heading: re.Pattern[str]  # what a heading of this section says
    advice: str  # what to write when it is missing
    needs_ms: bool = False  # the section must hold a measured figure in milliseconds


SECTIONS = (
    Section("how to run", re.compile(r"\b(run|running|start|starting|usage|quick ?start|getting started|install)",
                                     re.IGNORECASE),
            "add a '## How to run' section: the commands that start the service (e.g. uvicorn app:app ...)"),
    Section("API", re.compile(r"\b(api|endpoints?|routes?|requests? and responses?)\b", re.IGNORECASE),
            "add an '## API' section: GET /health and POST /predict, the field 'file', an example answer"),
    Section("latency measured", re.compile(r"\b(latency|performance|benchmarks?|speed|timings?)\b", re.IGNORECASE),
            "add a '## Latency' section with the figures you measured (p50/p95 in ms, e.g. from autograder assess)",
            needs_ms=True),
    Section("limitations", re.compile(r"\b(limitations?|known issues|caveats?|shortcomings|future work)\b", re.IGNORECASE),
            "add a '## Limitations' section: what the service does not do, or does badly"),
)

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MS = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|milliseconds?)\b", re.IGNORECASE)


def readme_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for every Markdown heading; the body runs to the next heading of the same or higher level."""
    lines = text.splitlines()
    heads = [(i, len(m.group(1)), m.group(2)) for i, line in enumerate(lines) if (m := _HEADING.match(line))]
    out = []
    for n, (i, level, title) in enumerate(heads):
        end = next((j for j, lvl, _ in heads[n + 1:] if lvl <= level), len(lines))
        out.append((title, "\n".join(lines[i + 1:end])))
    return out


def check_readme(text: str | None, where: str = README_NAME) -> list[Check]:
    """One scored check per required section: present (a heading that names it) and, for latency, a figure in ms."""
    checks = []
    sections = readme_sections(text or "")
    for section in SECTIONS:
        name = f"README: {section.name}"
        if text is None:
            checks.append(Check(name, FAILED, 0, SECTION_POINTS, f"no {README_NAME} in the hand-in: {section.advice}",
                                where))
            continue
        found = [(title, body) for title, body in sections if section.heading.search(title)]
        if not found:
            checks.append(Check(name, FAILED, 0, SECTION_POINTS, f"no section about {section.name}: {section.advice}",
                                where))
        elif section.needs_ms and not any(_MS.search(title + " " + body) for title, body in found):
            checks.append(Check(name, FAILED, 0, SECTION_POINTS,
                                f"section '{found[0][0]}' gives no figure in ms: {section.advice}", where))
        elif not any(body.strip() for _, body in found):
            checks.append(Check(name, FAILED, 0, SECTION_POINTS, f"section '{found[0][0]}' is empty: {section.advice}",
                                where))
        else:
            checks.append(Check(name, PASSED, SECTION_POINTS, SECTION_POINTS, f"section '{found[0][0]}'", where))
    return checks


# --- Packing -----------------------------------------------------------------------------------------------------


def practical_folder(root: Path, given: Path | None) -> Path:
    """--folder, else workspace/practical, else workspace/lab07-api (the API lab's service is the usual start)."""
    if given is not None:
        return given
    for name in (PRACTICAL, "lab07-api"):
        candidate = root / "workspace" / name
        if (candidate / APP_FILE).is_file():
            return candidate
    raise UsageError(f"no workspace/{PRACTICAL}/{APP_FILE} or workspace/lab07-api/{APP_FILE}: pass --folder with "
                     "the folder that holds your service's app.py and README.md")


def _service_files(folder: Path) -> tuple[list[Path], list[str]]:
    files, left_out = [], []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink() or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts[:-1]):
            continue
        if not path.is_file() or rel.parts[0] in (README_NAME, CARD_NAME, DEMO_DIR) or path.stem == "demo":
            continue
        if path.suffix.lower() in SKIP_SUFFIXES:
            left_out.append(f"{rel} (model weights and archives stay home)")
        elif path.stat().st_size > MAX_FILE_BYTES:
            left_out.append(f"{rel} ({path.stat().st_size // 2**20} MB, over {MAX_FILE_BYTES // 2**20} MB)")
        else:
            files.append(path)
    return files, left_out


def _demo_files(folder: Path) -> list[Path]:
    demos = [p for p in sorted(folder.glob("demo.*")) if p.is_file() and p.suffix.lower() in DEMO_SUFFIXES]
    if (folder / DEMO_DIR).is_dir():
        demos += [p for p in sorted((folder / DEMO_DIR).rglob("*"))
                  if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_FILE_BYTES]
    return demos


def pack(folder: Path, student: str, dest: Path, model_dir: Path | None = None) -> tuple[Path, list[str]]:
    """Write ``<student>-practical.zip`` into dest; returns it and what was left out (with why)."""
    import hashlib

    from autograder.submissions import MANIFEST_NAME
    from mlinfra.modelstore import CARD_FILE, model_dir_from_env

    folder = folder.resolve()
    if not (folder / APP_FILE).is_file():
        raise UsageError(f"{folder / APP_FILE} not found: the hand-in needs your service's app.py; pass --folder")
    if not (folder / README_NAME).is_file():
        raise UsageError(f"{folder / README_NAME} not found: write one with the sections how to run, API, latency "
                         "measured and limitations, then run submit again")
    card = folder / CARD_NAME
    if not card.is_file():
        card = (model_dir or model_dir_from_env()) / CARD_FILE
        if not card.is_file():
            raise UsageError(f"no {CARD_NAME} in {folder} and none at {card}: run `make model`, or copy your model's "
                             f"card into {folder / CARD_NAME}")
    service, left_out = _service_files(folder)
    entries: dict[str, Path] = {f"{SERVICE_DIR}/{p.relative_to(folder).as_posix()}": p for p in service}
    entries[README_NAME] = folder / README_NAME
    entries[CARD_NAME] = card
    for demo in _demo_files(folder):
        rel = demo.relative_to(folder / DEMO_DIR) if demo.is_relative_to(folder / DEMO_DIR) else Path(demo.name)
        entries[f"{DEMO_DIR}/{rel.as_posix()}"] = demo
    total = sum(p.stat().st_size for p in entries.values())
    if total > MAX_PACK_BYTES:
        raise UsageError(f"the hand-in would hold {total // 2**20} MB, over {MAX_PACK_BYTES // 2**20} MB: move data "
                         f"and weights out of {folder}")
    manifest = {
        "student": student,
        "lab": PRACTICAL,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in entries.items()},
        "demo": any(name.startswith(DEMO_DIR + "/") for name in entries),
    }
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / f"{student}-{PRACTICAL}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in entries.items():
            zf.write(path, name)
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2))
    return archive, left_out


def submit_practical(args: Any) -> Any:
    """`autograder submit practical [--folder DIR] [--student ID] [--out DIR]`; returns the Outcome for the runner."""
    import getpass

    from autograder.paths import repo_root
    from autograder.submissions import student_id
    from mlinfra.base.results import Outcome

    folder = practical_folder(repo_root(), getattr(args, "folder", None))
    student = student_id(getattr(args, "student", None) or getpass.getuser())
    archive, left_out = pack(folder, student, Path(getattr(args, "out", None) or "."))
    for item in left_out:
        print(f"left out {item}")
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
    has_demo = any(n.startswith(DEMO_DIR + "/") for n in names)
    demo = "with a demo" if has_demo else "no demo (optional: add demo.md, demo.cast or demo.ipynb)"
    print(f"wrote {archive}: {sum(n.startswith(SERVICE_DIR + '/') for n in names)} service files, README, model card, "
          f"{demo}")
    print(f"check it as your instructor will: autograder assess --pack {archive}")
    return Outcome(f"{student}-{PRACTICAL}", [Check("packed", PASSED, message=str(archive))],
                   notes=[f"left out {item}" for item in left_out],
                   data={"archive": str(archive), "files": names, "demo": has_demo})


# --- Unpacking, for assess --------------------------------------------------------------------------------------


@dataclass
class Unpacked:
    folder: Path  # where the pack was extracted
    readme: str | None
    card: dict[str, Any] | None
    demo: list[str]
    app: Path | None  # service/app.py, when present


def unpack(pack_path: Path, into: Path) -> Unpacked:
    """Extract a hand-in (a .zip from submit, or a folder laid out the same way) safely into `into`."""
    if pack_path.is_dir():
        root = pack_path
    elif zipfile.is_zipfile(pack_path):
        root = into
        total = 0
        with zipfile.ZipFile(pack_path) as zf:
            for info in zf.infolist():
                target = (into / info.filename).resolve()
                if not target.is_relative_to(into.resolve()) or info.is_dir():
                    continue  # an entry escaping the folder is never written
                total += info.file_size
                if info.file_size > MAX_FILE_BYTES or total > MAX_PACK_BYTES:
                    raise UsageError(f"{pack_path}: entry {info.filename} makes the hand-in larger than allowed "
                                     f"({MAX_PACK_BYTES // 2**20} MB in all, {MAX_FILE_BYTES // 2**20} MB a file)")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
    elif pack_path.exists():
        raise UsageError(f"{pack_path} is neither a .zip made by `autograder submit practical` nor a folder")
    else:
        raise UsageError(f"{pack_path} not found: give the .zip that `autograder submit practical` wrote")
    readme = root / README_NAME
    card_path = root / CARD_NAME
    try:
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
    except ValueError:
        card = None
    demo_dir = root / DEMO_DIR
    demo = sorted(p.relative_to(root).as_posix() for p in demo_dir.rglob("*") if p.is_file()) if demo_dir.is_dir() \
        else []
    app = root / SERVICE_DIR / APP_FILE
    return Unpacked(root, readme.read_text(errors="replace") if readme.is_file() else None,
                    card if isinstance(card, dict) else None, demo, app if app.is_file() else None)


def pack_checks(unpacked: Unpacked) -> list[Check]:
    """The README's sections (scored), then the model card and the demo (informational)."""
    from mlinfra.base.results import INFO

    checks = check_readme(unpacked.readme)
    card = unpacked.card
    checks.append(Check("model card", INFO, message=(
        f"{card.get('name', '?')} ({card.get('architecture', '?')}, input {card.get('input_size', '?')} px)"
        if card else f"no readable {CARD_NAME} in the hand-in")))
    checks.append(Check("demo", INFO, message=", ".join(unpacked.demo) if unpacked.demo else "none (optional)"))
    return checks
