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
from dataclasses import dataclass, field
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
    advice: str  # what to write in it
    heading_text: str  # how to head it, with its article ("a '## API'")
    needs_ms: bool = False  # the section must hold a measured figure in milliseconds

    @property
    def add(self) -> str:
        """What to do when the README has no such section."""
        return f"add {self.heading_text} section: {self.advice}"


SECTIONS = (
    Section("how to run", re.compile(r"\b(run|running|start|starting|usage|quick ?start|getting started|install)",
                                     re.IGNORECASE),
            "the commands that start the service (e.g. uvicorn app:app ...)", "a '## How to run'"),
    Section("API", re.compile(r"\b(api|endpoints?|routes?|requests? and responses?)\b", re.IGNORECASE),
            "GET /health and POST /predict, the field 'file', an example answer", "an '## API'"),
    Section("latency measured", re.compile(r"\b(latency|performance|benchmarks?|speed|timings?)\b", re.IGNORECASE),
            "the figures you measured (p50/p95 in ms, e.g. from .venv/bin/autograder assess)", "a '## Latency'",
            needs_ms=True),
    Section("limitations", re.compile(r"\b(limitations?|known issues|caveats?|shortcomings|future work)\b", re.IGNORECASE),
            "what the service does not do, or does badly", "a '## Limitations'"),
)

_MS = re.compile(r"\d+(?:\.\d+)?\s*(?:ms|milliseconds?)\b", re.IGNORECASE)
# An HTML comment as a browser ends it: at -->, --!>, an abrupt <!--> or <!--->, else at the end of the document.
_COMMENT = re.compile(r"<!--(?:-?>|.*?--!?>|.*\Z)", re.DOTALL)
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?![.\d]*[1-9])"
                           r"|opacity\s*:\s*0(?![.\d]*[1-9])", re.IGNORECASE)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_NEVER_SHOWN = {"script", "style", "template", "noscript", "head", "title"}
# Characters that take no room on the page: format characters (zero-width space and joiners, BOM, direction marks)
# are Unicode category Cf; these fillers are letters or symbols that render blank.
_BLANK = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e"}


def visible(text: str) -> str:
    """`text` as a reader sees it: invisible characters dropped, whitespace runs made one space."""
    import unicodedata

    kept = "".join(ch for ch in text if ch not in _BLANK and unicodedata.category(ch) not in ("Cf", "Cc", "Co", "Cn")
                   or ch in "\n\t")
    return " ".join(kept.split())


def readme_sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) for every heading the README shows when rendered (CommonMark, as GitHub or an LMS renders
    it); the body, the text shown under it up to the next heading of the same or higher level. What a reader never
    sees does not count: HTML comments (an unclosed one hides the rest), headings in code blocks (their text is a
    body's), elements marked hidden or styled invisible, script/style/template, and invisible characters.
    `<details>` counts: it is shown by a click."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    rendered = _COMMENT.sub("", MarkdownIt("commonmark").render(text))

    class Shown(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.open: list[tuple[str, bool]] = []  # (tag, hides what it holds)
            self.heads: list[tuple[int, list[str], list[str]]] = []  # (level, title parts, body parts)
            self.in_heading = 0

        def hidden(self) -> bool:
            return any(hides for _, hides in self.open)

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in _VOID:
                return
            named = dict(attrs)
            hides = (tag in _NEVER_SHOWN or "hidden" in named
                     or bool(_HIDING_STYLE.search(named.get("style") or "")))
            self.open.append((tag, hides))
            level = int(tag[1]) if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456" else 0
            if level and not self.hidden():
                self.heads.append((level, [], []))
                self.in_heading = level

        def handle_endtag(self, tag: str) -> None:
            for i in range(len(self.open) - 1, -1, -1):  # an end tag closes what it matches, and what is inside,
                if self.open[i][0] == tag:
                    # but never a hiding element it is inside (<template><p></p>..., a browser keeps it open)
                    if not any(hides for _, hides in self.open[i + 1:]):
                        del self.open[i:]
                    break
            if tag == f"h{self.in_heading}":
                self.in_heading = 0

        def handle_data(self, data: str) -> None:
            if self.hidden() or not self.heads:
                return
            self.heads[-1][1 if self.in_heading else 2].append(data)

    parser = Shown()
    parser.feed(rendered)
    parser.close()
    heads = [(level, visible("".join(title)), "".join(body)) for level, title, body in parser.heads]
    out = []
    for n, (level, title, body) in enumerate(heads):
        if not title:  # a heading of nothing visible is no heading
            continue
        parts = [body]
        for lvl, sub_title, sub_body in heads[n + 1:]:
            if lvl <= level:
                break
            parts.append(f"{sub_title}\n{sub_body}")
        out.append((title, visible("\n".join(parts))))
    return out


# What a section must hold under its heading (the heading itself not counted) to be one: a line of real text.
MIN_BODY_CHARS = 20  # visible characters
MIN_BODY_WORDS = 3  # words of two letters or more
_WORD = re.compile(r"[^\W\d_]{2,}")
BODY_RULE = f"at least {MIN_BODY_WORDS} words and {MIN_BODY_CHARS} characters of text under its own heading"


def _why_not(section: Section, title: str, body: str) -> str:
    """Why the heading `title` with `body` under it is not this section ('' when it is)."""
    words = len(_WORD.findall(body))
    if not body.strip():
        return f"section '{title}' is empty"
    if len(body) < MIN_BODY_CHARS or words < MIN_BODY_WORDS:
        return f"section '{title}' holds too little ({words} word(s), {len(body)} character(s); {BODY_RULE})"
    if section.needs_ms and not _MS.search(f"{title} {body}"):
        return f"section '{title}' gives no figure in ms"
    return ""


def _assign(fits: list[list[int]]) -> list[int | None]:
    """A heading per section (fits[s]: the headings that would pass as section s), each heading used at most once,
    as many sections served as can be: a heading that names two sections ("Run the API") is one of them."""
    owner: dict[int, int] = {}

    def take(s: int, seen: set[int]) -> bool:
        for h in fits[s]:
            if h not in seen:
                seen.add(h)
                if h not in owner or take(owner[h], seen):
                    owner[h] = s
                    return True
        return False

    for s in range(len(fits)):
        take(s, set())
    chosen: list[int | None] = [None] * len(fits)
    for h, s in owner.items():
        chosen[s] = h
    return chosen


def check_readme(text: str | None, where: str = README_NAME) -> list[Check]:
    """One scored check per required section: its own heading that names it (one heading is one section, never
    two), with real text under it (BODY_RULE), and for latency a figure in ms."""
    from mlinfra.base.output import printable

    if text is None:
        return [Check(f"README: {section.name}", FAILED, 0, SECTION_POINTS,
                      f"no {README_NAME} in the hand-in: {section.add}", where) for section in SECTIONS]
    # The headings are the learner's text, quoted in one-line messages: control characters and newlines escaped.
    sections = [(printable(title), body) for title, body in readme_sections(text)]
    named = [[n for n, (title, _) in enumerate(sections) if section.heading.search(title)] for section in SECTIONS]
    chosen = _assign([[n for n in heads if not _why_not(section, *sections[n])]
                      for section, heads in zip(SECTIONS, named, strict=True)])
    checks = []
    for section, heads, got in zip(SECTIONS, named, chosen, strict=True):
        name = f"README: {section.name}"
        if got is not None:
            checks.append(Check(name, PASSED, SECTION_POINTS, SECTION_POINTS, f"section '{sections[got][0]}'", where))
        elif not heads:
            checks.append(Check(name, FAILED, 0, SECTION_POINTS, f"no section about {section.name}: {section.add}",
                                where))
        else:
            why = [_why_not(section, *sections[n]) for n in heads]
            message, fix = next((w for w in why if w), ""), f"write in it {section.advice}"
            if not message:  # each heading naming it passes, but as another section
                message = (f"section '{sections[heads[0]][0]}' already counts as another section (each section "
                           "needs its own heading)")
                fix = section.add
            checks.append(Check(name, FAILED, 0, SECTION_POINTS, f"{message}: {fix}", where))
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
    print(f"check it as your instructor will: .venv/bin/autograder assess --pack {archive}")
    return Outcome(f"{student}-{PRACTICAL}", [Check("packed", PASSED, message=str(archive))],
                   notes=[f"left out {item}" for item in left_out],
                   data={"archive": str(archive), "files": names, "demo": has_demo})


# --- Unpacking, for assess --------------------------------------------------------------------------------------

MAX_ENTRIES = 2000  # files and folders in one hand-in: a service, its README and a demo need a few dozen
MAX_DEPTH = 16  # folders deep under the hand-in's root
MAX_NAME = 255  # one path component, as most file systems allow
_CHUNK = 1 << 16


class HandinProblem(Exception):
    """A hand-in that cannot be read as one: the student's outcome, never the tool's failure. `entry` names the
    archive member or file at fault ('' for the whole pack)."""

    def __init__(self, pack: Path, entry: str, problem: str) -> None:
        self.pack, self.entry, self.problem = pack, entry, problem
        where = f"{pack.name}: entry {entry!r}" if entry else pack.name
        super().__init__(f"{where}: {problem}")


@dataclass
class Unpacked:
    folder: Path  # where the pack was extracted
    readme: str | None
    card: dict[str, Any] | None
    demo: list[str]
    app: Path | None  # service/app.py, when present
    skipped: list[str] = field(default_factory=list)  # entries not extracted, each with why


class _Budget:
    """What a hand-in may hold in all, counted as it is written (never from what the archive claims)."""

    def __init__(self, pack: Path) -> None:
        self.pack, self.entries, self.bytes = pack, 0, 0
        self.folders: set[tuple[str, ...]] = set()

    def folders_of(self, parts: tuple[str, ...], name: str) -> None:
        """Count the folders an archive entry implies (a zip need not list them), each once: the sandbox's copy
        of the service counts folders too, so a pack that fits here fits there."""
        for depth in range(1, len(parts)):
            if parts[:depth] not in self.folders:
                self.folders.add(parts[:depth])
                self.entry(name)

    def entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise HandinProblem(self.pack, name, f"more than {MAX_ENTRIES} entries; hand in the service, the README "
                                "and the demo only (`.venv/bin/autograder submit practical` does)")

    def grow(self, name: str, size: int) -> None:
        if size > MAX_FILE_BYTES:
            raise HandinProblem(self.pack, name, f"larger than {MAX_FILE_BYTES // 2**20} MB a file; model weights "
                                "and data stay home (the grader serves the course model)")
        self.bytes += size
        if self.bytes > MAX_PACK_BYTES:
            raise HandinProblem(self.pack, name, f"makes the hand-in larger than {MAX_PACK_BYTES // 2**20} MB in all")


def _safe_parts(pack: Path, name: str) -> tuple[str, ...] | None:
    """The relative path parts of an entry name, or None for one that must not be written (absolute, escaping,
    empty); HandinProblem for one too deep or with a part too long for any file system."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return None
    parts = tuple(p for p in raw.split("/") if p not in ("", "."))
    if not parts or ".." in parts or any("\0" in p for p in parts):
        return None
    if len(parts) > MAX_DEPTH:
        raise HandinProblem(pack, name, f"nested {len(parts)} folders deep (at most {MAX_DEPTH})")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME for p in parts):
        raise HandinProblem(pack, name, f"a name longer than {MAX_NAME} bytes")
    return parts


def _place(pack: Path, into: Path, parts: tuple[str, ...], name: str) -> Path:
    """The path to write an entry at, its folders made; HandinProblem when a file stands where a folder must be
    or a folder where the file must be (two entries that cannot both exist)."""
    target = into.joinpath(*parts)
    folder = into
    for part in parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise HandinProblem(pack, name, f"needs {folder.relative_to(into).as_posix()!r} to be a folder, but "
                                "the hand-in also has a file of that name")
        folder.mkdir(exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        raise HandinProblem(pack, name, "is a file, but the hand-in also has a folder of that name")
    return target


def _extract_zip(pack: Path, into: Path, skipped: list[str]) -> None:
    import stat
    import zlib

    budget = _Budget(pack)
    try:
        with zipfile.ZipFile(pack) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ENTRIES:
                raise HandinProblem(pack, "", f"{len(infos)} entries, more than {MAX_ENTRIES}; hand in the service, "
                                    "the README and the demo only")
            listed = _listed_checksums(zf)
            for info in infos:
                name = info.filename
                budget.entry(name)
                parts = _safe_parts(pack, name)
                if parts is None:
                    skipped.append(f"{name!r} (outside the hand-in's folder: not extracted)")
                    continue
                mode = info.external_attr >> 16
                if info.is_dir() or stat.S_ISDIR(mode):
                    if parts in budget.folders:
                        budget.entries -= 1  # already counted as a file's folder
                    budget.folders.add(parts)
                    continue  # folders are made for the files inside them
                budget.folders_of(parts, name)
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                    skipped.append(f"{name!r} (a link or special file: not extracted)")
                    continue
                target = _place(pack, into, parts, name)
                if target.exists():  # the same name twice: the copy the manifest lists is the one that runs
                    kept = _file_sha256(target) == listed.get("/".join(parts))
                    skipped.append(f"{name!r} (in the archive twice: the "
                                   + ("copy submission.json lists kept, the other not extracted)" if kept else
                                      "later copy extracted; neither matches submission.json)"))
                    if kept:
                        continue
                # Counted while reading: the sizes an archive declares can lie, so they never bound anything.
                budget.grow(name, 0)
                written = 0
                with zf.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > MAX_FILE_BYTES:
                            budget.grow(name, written)
                        dst.write(chunk)
                budget.grow(name, written)
    except HandinProblem:
        raise
    except zipfile.BadZipFile as exc:
        raise HandinProblem(pack, _member(exc), f"a damaged or forged archive ({exc}); pack it again with "
                            "`.venv/bin/autograder submit practical`") from None
    except (zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OverflowError) as exc:
        raise HandinProblem(pack, "", f"an archive that cannot be read ({type(exc).__name__}: {str(exc)[:120]}); "
                            "pack it again with `.venv/bin/autograder submit practical`") from None
    except OSError as exc:
        raise HandinProblem(pack, Path(exc.filename).name if exc.filename else "",
                            f"cannot be written out ({exc.strerror or exc})") from None


def _listed_checksums(zf: zipfile.ZipFile) -> dict[str, str]:
    """submission.json's checksums by entry name, read from the archive (bounded), or {} when it has none."""
    try:
        with zf.open("submission.json") as fh:
            data = json.loads(fh.read(1 << 20).decode("utf-8", errors="replace"))
        files = data.get("files") if isinstance(data, dict) else None
        return {str(k): v for k, v in files.items() if isinstance(v, str)} if isinstance(files, dict) else {}
    except (KeyError, ValueError, RecursionError, OSError, zipfile.BadZipFile, EOFError, RuntimeError):
        return {}


def _file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _member(exc: Exception) -> str:
    found = re.search(r"(?:file|member) '?([^' ]+)'?", str(exc))
    return found.group(1) if found else ""


def copy_folder(pack: Path, into: Path, skipped: list[str]) -> None:
    """A hand-in given as a folder: copied with the same limits as an archive, links never followed, so what is
    scored (and what the sandbox sees) is a private copy."""
    import os
    import stat

    budget = _Budget(pack)
    for top, dirs, files in os.walk(pack, followlinks=False):
        rel_top = Path(top).relative_to(pack)
        for name in sorted(dirs):
            rel = (rel_top / name).as_posix()
            budget.entry(rel)
            if os.path.islink(os.path.join(top, name)):
                skipped.append(f"{rel!r} (a link: not followed)")
                dirs.remove(name)
            elif len(rel_top.parts) + 1 > MAX_DEPTH:
                raise HandinProblem(pack, rel, f"nested more than {MAX_DEPTH} folders deep")
        for name in sorted(files):
            rel = (rel_top / name).as_posix()
            budget.entry(rel)
            source = os.path.join(top, name)
            try:
                info = os.lstat(source)
            except OSError as exc:
                raise HandinProblem(pack, rel, f"cannot be read ({exc.strerror or exc})") from None
            if not stat.S_ISREG(info.st_mode):
                skipped.append(f"{rel!r} (a link or special file: not copied)")
                continue
            budget.grow(rel, info.st_size)
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
                    written = 0
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > MAX_FILE_BYTES:
                            budget.grow(rel, written)  # a file that grew while being copied
                        dst.write(chunk)
            except OSError as exc:
                raise HandinProblem(pack, rel, f"cannot be read ({exc.strerror or exc})") from None


def unpack(pack_path: Path, into: Path) -> Unpacked:
    """Extract a hand-in (a .zip from submit, or a folder laid out the same way) into `into`, a private copy.
    UsageError when there is nothing at `pack_path` (the grader's typo); HandinProblem for anything wrong with
    what is there (the student's outcome)."""
    skipped: list[str] = []
    into.mkdir(parents=True, exist_ok=True)
    if pack_path.is_dir():
        copy_folder(pack_path, into, skipped)
    elif pack_path.is_file():
        try:
            is_zip = zipfile.is_zipfile(pack_path)
        except OSError as exc:
            raise HandinProblem(pack_path, "", f"cannot be read ({exc.strerror or exc})") from None
        if not is_zip:
            raise HandinProblem(pack_path, "", "is neither a .zip made by `.venv/bin/autograder submit practical` nor a folder")
        _extract_zip(pack_path, into, skipped)
    elif pack_path.exists():
        raise HandinProblem(pack_path, "", "is neither a .zip made by `.venv/bin/autograder submit practical` nor a folder")
    else:
        raise UsageError(f"{pack_path} not found: give the .zip that `.venv/bin/autograder submit practical` wrote")
    root = into
    card = None
    card_text = _read_small(root / CARD_NAME)
    if card_text is not None:
        try:
            card = json.loads(card_text)
        except (ValueError, RecursionError):  # a card nested thousands deep is as unreadable as a broken one
            card = None
    demo_dir = root / DEMO_DIR
    demo = sorted(p.relative_to(root).as_posix() for p in demo_dir.rglob("*") if p.is_file()) \
        if demo_dir.is_dir() and not demo_dir.is_symlink() else []
    app = root / SERVICE_DIR / APP_FILE
    return Unpacked(root, _read_small(root / README_NAME), card if isinstance(card, dict) else None, demo,
                    app if app.is_file() and not app.is_symlink() else None, skipped)


def _read_small(path: Path) -> str | None:
    """A document of the hand-in as text (at most MAX_FILE_BYTES), or None when it is missing or not a file."""
    if path.is_symlink() or not path.is_file():
        return None
    with open(path, "rb") as handle:
        return handle.read(MAX_FILE_BYTES).decode("utf-8", errors="replace")


def unreadable_checks(problem: HandinProblem) -> list[Check]:
    """The README's sections, none scored, when the hand-in itself could not be read (the max stays 120)."""
    return [Check(f"README: {section.name}", FAILED, 0, SECTION_POINTS, f"not read: {problem}", README_NAME)
            for section in SECTIONS]


SUBMITTED_BY, MANIFEST_FILE = "submitted by", "submission.json"


def submitted_by(folder: Path) -> str:
    """The student submission.json names, as written (the class report compares it with the hand-in's file or
    folder name, exactly: tests/classbook/test_identity.py), or '' when it names none. Control characters and
    newlines are shown as escapes; anything else is kept, so a look-alike stays one."""
    from autograder.submissions import read_manifest
    from mlinfra.base.output import printable

    path = folder / MANIFEST_FILE
    if path.is_symlink() or not path.is_file():
        return ""
    manifest, _ = read_manifest(path)
    named = manifest.get("student") if isinstance(manifest, dict) else None
    return printable(named[:64]) if isinstance(named, str) else ""


def pack_checks(unpacked: Unpacked) -> list[Check]:
    """The README's sections (scored), then the model card and the demo (informational)."""
    from mlinfra.base.output import printable
    from mlinfra.base.results import INFO

    checks = check_readme(unpacked.readme)
    card = unpacked.card

    def field(key: str, width: int) -> str:  # the learner's text: one line, control characters shown
        return printable(str(card.get(key, "?"))[:width]) if card else ""

    checks.append(Check("model card", INFO, message=(
        f"{field('name', 80)} ({field('architecture', 80)}, input {field('input_size', 20)} px)"
        if card else f"no readable {CARD_NAME} in the hand-in")))
    checks.append(Check("demo", INFO, message=", ".join(printable(d) for d in unpacked.demo[:20]) if unpacked.demo
                        else "none (optional)"))
    named = submitted_by(unpacked.folder)
    if named:  # the manifest's own problems (none, no student, another's) are assess's notes (manifest.notes)
        checks.append(Check(SUBMITTED_BY, INFO, message=named, where=MANIFEST_FILE))
    if unpacked.skipped:
        checks.append(Check("entries left out", INFO, message="; ".join(unpacked.skipped[:10])
                            + (f"; and {len(unpacked.skipped) - 10} more" if len(unpacked.skipped) > 10 else "")))
    return checks
