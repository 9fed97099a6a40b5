"""Writing results for people (tables) and for machines (JSON). No verb formats output or writes files by hand.

`--json -` contract: stdout holds only the JSON. While a command runs with `--json -`, the runner points stdout at
stderr (see `runner`), and `write_json(..., "-")` writes to the real stdout it kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from mlinfra.base.errors import unwritable

_json_stdout: list[IO[str]] = []  # the real stdout while the runner has redirected it; empty otherwise


def push_json_stdout(stream: IO[str]) -> None:
    """While the runner sends everything printed to stderr (`--json -`), `stream` is the real stdout, where the JSON
    alone goes; pop_json_stdout() when done. A stack: a command run inside another keeps its own."""
    _json_stdout.append(stream)


def pop_json_stdout() -> None:
    _json_stdout.pop()


def to_jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return to_jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(result: Any) -> str:
    return json.dumps(to_jsonable(result), indent=2, sort_keys=False) + "\n"


def write_json(result: Any, dest: str | Path | None) -> None:
    """Write `result` as JSON to `dest`; `-` means stdout and None means nowhere (the `--json FILE` contract)."""
    if dest is None:
        return
    text = json_text(result)
    if str(dest) == "-":
        stream = _json_stdout[-1] if _json_stdout else sys.stdout
        stream.write(text)
        stream.flush()
        return
    write_text(Path(dest), text)


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it (no window for another thread)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (a reader never sees half of it), or raise UsageError naming the path. The file gets
    the mode any new file of this user gets (0666 less the umask): mkstemp's 0600 would hide grades and reports
    from the instructor's group."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise unwritable(path, exc) from None


def ensure_dir(path: Path) -> Path:
    """Make an output folder, or raise UsageError naming it (a file in the way, /proc, no permission)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise unwritable(path, exc) from None
    return path


# Bidirectional overrides and isolates: they reorder what a terminal or an editor shows without being seen.
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F}


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text someone else wrote (a learner's log line, file name, heading, model card field), safe to print on a
    terminal or into a report: every character Python does not call printable (control characters C0, DEL and C1:
    escape sequences that move the cursor, recolour, conceal or clear; format characters such as bidi overrides and
    zero-width ones; the line and paragraph separators U+2028/U+2029) is shown as its escape (``\x1b``, ``\n``,
    ``\u202e``), so it can neither forge nor hide other output. Newlines are escaped too unless `keep_newlines`
    (a multi-line field): a one-line field cannot start a line of its own."""
    out = []
    for ch in str(text):
        code = ord(ch)
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif not ch.isprintable() or code in _BIDI:  # C0, DEL, C1, format (bidi, zero-width), line/paragraph separators
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch) or
                       (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"))
        else:
            out.append(ch)
    return "".join(out)


def shorten(text: str, width: int) -> str:
    """The first line of `text`, cut to `width` characters with an ellipsis when it was longer."""
    line = text.splitlines()[0] if text else ""
    cut = len(line) > width or (text and len(text.splitlines()) > 1)
    if len(line) > width:
        line = line[: max(1, width - 1)].rstrip()
    return line + "…" if cut else line


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], max_width: int = 90) -> str:
    """A plain-text table that survives a terminal, a CI log and a copy into an email.

    Cells show their first line; one longer than `max_width` ends in an ellipsis, so a cut is never silent.
    Hand-written, not tabulate: a dozen lines, and the one thing every table here needs (a visible cut) is ours.
    """
    body = [[shorten("" if cell is None else str(cell), max_width) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip(), "  ".join("-" * w for w in widths)]
    for row in body:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(out)


def add_json_option(parser: Any) -> None:
    parser.add_argument(
        "--json", metavar="FILE", dest="json_out",
        help="also write the result as JSON to FILE ('-' for stdout: then stdout holds only the JSON)",
    )


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as the start of a formula


def csv_cell(value: Any) -> str:
    """A value as a CSV cell a spreadsheet shows as text: one that begins with = + - @, a tab or a carriage
    return gets a leading single quote, so a learner-chosen name such as `=HYPERLINK(...)` is never run as a
    formula when an instructor opens the grades. Every CSV the project writes passes its cells through this."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
