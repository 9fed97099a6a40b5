"""Writing results for people (tables) and for machines (JSON, CSV). No verb formats output by hand."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(result: Any, dest: str | Path | None) -> None:
    """Write `result` as JSON to `dest`; `-` means stdout and None means nowhere (the `--json FILE` contract)."""
    if dest is None:
        return
    text = json.dumps(to_jsonable(result), indent=2, sort_keys=False) + "\n"
    if str(dest) == "-":
        sys.stdout.write(text)
        return
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table that survives a terminal, a CI log and a copy into an email."""
    body = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell.splitlines()[0]) if cell else 0)
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in body:
        out.append("  ".join((c.splitlines()[0] if c else "").ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def add_json_option(parser: Any) -> None:
    parser.add_argument(
        "--json", metavar="FILE", dest="json_out", help="also write the result as JSON to FILE ('-' for stdout)"
    )
