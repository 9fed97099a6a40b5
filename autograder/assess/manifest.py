"""A practical hand-in's submission.json (written by `autograder submit practical`) against what was scored.

The manifest names the student and a checksum of every file packed. `assess --pack` reads it once the hand-in is
unpacked: a manifest that is missing, names another learner than the hand-in's file or folder, or whose checksums
differ from the files that ran (or that lists fewer files than ran) is not a reason to refuse the score but for a
person to look: each becomes a note, and the outcome is "flagged" for review. Which copy of a file that appears
twice in the archive ran is decided at unpacking (handin.py: the copy the manifest lists).

What the manifest cannot prove is authorship: it is written on the learner's machine and nothing in it is signed,
so a copied hand-in with a rewritten manifest passes every check above. A batch compares the hand-ins themselves
instead (`alike`, below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autograder.assess.handin import PRACTICAL, README_NAME, SERVICE_DIR, Unpacked


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
    from autograder.submissions import MANIFEST_NAME, check_manifest, read_manifest, student_id
    from mlinfra.base.output import printable

    path = unpacked.folder / MANIFEST_NAME
    if path.is_symlink() or not path.is_file():
        return [(f"{label}: no {MANIFEST_NAME}: who packed it and what it held cannot be checked (hand-ins come "
                 "from `.venv/bin/autograder submit practical`)")]
    manifest, why = read_manifest(path)
    if manifest is None:
        return [f"{label}: {MANIFEST_NAME} {why}: who packed it and what it held cannot be checked"]
    named, out = check_manifest(manifest, unpacked.folder, label)
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


# --- Hand-ins alike in one batch ----------------------------------------------------------------------------------
#
# Nothing a learner holds can be signed, so a manifest proves nothing about who wrote a hand-in: a classmate's pack
# with its submission.json rewritten is indistinguishable from an honest one, alone. Within a batch the copies are
# there to compare: each hand-in's graded content (its service's files and its README) is reduced to the set of its
# lines, normalised (Python without comments or whitespace, other text without whitespace or case), file names
# ignored. Lines the course hands everyone (the lab07 starter, the reference service) do not count, nor lines too
# short to mean anything. Two hand-ins whose smaller set lies mostly in the other's are flagged, each naming the
# other: renaming or splitting files, reformatting, comments, or a junk file added change none of that.
# Rewriting the code (renamed variables, reordered logic) does: a person reading them is the check for that.

LIKENESS = 0.8  # the share of the smaller hand-in's lines found in the other's, from which they are flagged
MIN_LINES = 8  # fewer distinct lines than this (after the course's own are taken out) are not compared
MIN_CHARS = 12  # a normalised line shorter than this ("else:", "return x", a heading) says nothing of who wrote it


@dataclass(frozen=True)
class Fingerprint:
    """A hand-in's graded content as sets of normalised-line hashes, file names ignored."""

    service: frozenset[str]
    readme: frozenset[str]


def _python_lines(text: str) -> list[str] | None:
    """Each statement's tokens joined by one space, comments and layout dropped, string literals in one quoting
    and a trailing comma before a bracket gone (a formatter's changes); statements on one line (`a; b`) each a
    line of their own, so a junk statement added to every line is junk added, like a junk file. None if the text
    does not tokenize."""
    import ast
    import contextlib
    import io
    import tokenize

    skip = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
    lines: list[str] = []
    current: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in skip:
                continue
            if tok.type == tokenize.NEWLINE or tok.string == ";" and tok.type == tokenize.OP:
                if current:
                    lines.append(" ".join(current))
                current = []
                continue
            word = tok.string
            if tok.type == tokenize.STRING:  # an f-string does not evaluate: kept as written
                with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
                    word = repr(ast.literal_eval(word))
            if word in (")", "]", "}") and current and current[-1] == ",":
                current.pop()
            current.append(word)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    return [*lines, " ".join(current)] if current else lines


def normalised_lines(name: str, data: bytes) -> set[str]:
    """The lines of one file that carry its content: Python by its tokens (comments, blank lines, indentation and
    spacing gone), other text with whitespace removed and case folded, a binary file as one hash."""
    import hashlib

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"bin:" + hashlib.sha256(data).hexdigest()}
    found = _python_lines(text) if name.endswith(".py") else None
    if found is None:
        found = ["".join(line.split()).casefold() for line in text.splitlines()]
    return {line for line in found if len(line.replace(" ", "")) >= MIN_CHARS}


def _hashed(lines: set[str]) -> frozenset[str]:
    import hashlib

    return frozenset(hashlib.sha256(line.encode()).hexdigest()[:16] for line in lines)


def _given_lines() -> frozenset[str]:
    """The lines every learner was handed (the lab07 starter the practical grows from, the course's reference
    service): sharing those is no sign of copying."""
    import mlinfra.base

    root = Path(str(mlinfra.base.__file__)).resolve().parents[2]  # mlinfra's own file (tests/ holds an mlinfra/)
    given: set[str] = set()
    for path in [*sorted((root / "labs" / "lab07-api").glob("*.py")), root / "mlinfra" / "service.py"]:
        if path.is_file():
            given |= normalised_lines(path.name, path.read_bytes())
    return _hashed(given)


def fingerprint(unpacked: Unpacked) -> Fingerprint:
    """`unpacked`'s service files (every file under service/, links never followed) and README, as line sets."""
    from autograder.assess.handin import MAX_FILE_BYTES

    service: set[str] = set()
    folder = unpacked.folder / SERVICE_DIR
    if folder.is_dir() and not folder.is_symlink():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                with open(path, "rb") as handle:
                    service |= normalised_lines(path.name, handle.read(MAX_FILE_BYTES))
    readme = normalised_lines(README_NAME, (unpacked.readme or "").encode())
    given = _given_lines()
    return Fingerprint(_hashed(service) - given, _hashed(readme) - given)


def likeness(a: frozenset[str], b: frozenset[str]) -> float | None:
    """The share of the smaller set found in the larger; None when the smaller is too small to tell."""
    smaller, larger = sorted((a, b), key=len)
    if len(smaller) < MIN_LINES:
        return None
    return len(smaller & larger) / len(smaller)


def alike(prints: list[Fingerprint | None], labels: list[str], keys: list[str]) -> list[list[str]]:
    """For each hand-in of a batch, a note per other hand-in whose service or README is identical or nearly so
    ([] for most). `keys` tell the same hand-in given twice (its resolved path): never compared with itself."""
    from mlinfra.base.output import printable

    out: list[list[str]] = [[] for _ in prints]
    for i, mine in enumerate(prints):
        named = {keys[i]}
        for j, other in enumerate(prints):
            if mine is None or other is None or keys[j] in named:
                continue
            named.add(keys[j])
            parts = []
            for what, a, b in (("service/", mine.service, other.service), ("README", mine.readme, other.readme)):
                share = likeness(a, b)
                if share is None or share < LIKENESS:
                    continue
                parts.append(f"{what} identical" if a == b else f"{what} near-identical ({share:.0%} of the smaller "
                             "one's lines are in the other)")
            if parts:
                out[i].append(printable(f"{' and '.join(parts)} to {labels[j]}'s hand-in (file names, layout and "
                                        "comments aside)"))
        if len(out[i]) > 5:  # a template many share: the first few say enough
            out[i][5:] = [f"and alike to {len(out[i]) - 5} more hand-ins of this batch"]
    return out
