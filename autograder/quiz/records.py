"""Reading what learners hand in (answers files, exam records, tickets) with limits, so one hostile file cannot
stop a batch.

A learner controls every byte of these files. YAML can describe structures far larger than the file (aliases:
"billion laughs") or nested deeper than Python's recursion limit, and JSON can nest as deep as its brackets, so
each file is checked before it is built: its size, its nesting depth, no aliases at all (an answers file never
needs one) and a bounded number of values. The YAML check walks the parser's event stream, which is flat, so the
check itself cannot recurse or grow. Only then is the file constructed, with the safe loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024  # a 41-question record with a ticket and times is about 4 KB
MAX_DEPTH = 6  # record -> answers -> question -> list of options is 4 levels; a ticket is 2
MAX_VALUES = 20_000  # scalars and collections in one file
SUFFIXES = (".yaml", ".yml", ".json")


class RecordError(Exception):
    """A file that cannot be read as a learner's hand-in; the message names the file and what is wrong."""


def read_limited(path: Path, limit: int = MAX_BYTES) -> str:
    """The text of a file no larger than `limit` bytes (checked before and while reading: the file may grow)."""
    try:
        if not path.is_file():
            raise RecordError(f"{path.name}: not a regular file")
        size = path.stat().st_size
        if size > limit:
            raise RecordError(f"{path.name}: {size} bytes, more than the {limit} an answers file may have")
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise RecordError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise RecordError(f"{path.name}: more than the {limit} bytes an answers file may have")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path.name}: not UTF-8 text (byte {exc.start})") from None


def _yaml_shape(name: str, text: str) -> None:
    """Refuse aliases, deep nesting and too many values, from the event stream (no recursion, no expansion)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    depth = values = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise RecordError(f"{name}: line {line}: a YAML alias (*{event.anchor}); answers files may not "
                                  "use anchors and aliases: write each answer out")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                values += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    raise RecordError(f"{name}: line {line}: nested more than {MAX_DEPTH} levels deep; an answers "
                                      "file maps question ids to answers")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent):
                values += 1
            if values > MAX_VALUES:
                raise RecordError(f"{name}: more than {MAX_VALUES} values; an answers file has one per question")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise RecordError(f"{name}: {line}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _json_depth_ok(data: Any) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def load_mapping(path: Path) -> dict[str, Any]:
    """A hand-in as a mapping (an empty file is an empty mapping), or RecordError saying why not."""
    if path.suffix not in SUFFIXES:
        raise RecordError(f"{path.name}: not an answers file (expected .yaml, .yml or .json)")
    text = read_limited(path)
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            if not _json_depth_ok(data):
                raise RecordError(f"{path.name}: nested more than {MAX_DEPTH} levels deep")
        else:
            _yaml_shape(path.name, text)
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except RecordError:
        raise
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path.name}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise RecordError(f"{path.name}: {line}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:  # JSON nesting, huge numbers
        raise RecordError(f"{path.name}: cannot be read within the limits ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecordError(f"{path.name}: expected a mapping of question id -> answer, got a {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


EXAM_KEYS = ("quiz", "learner", "answers")  # what marks an answers file as an exam record (quiz take --exam)


def is_exam_record(data: Any) -> bool:
    return isinstance(data, dict) and all(k in data for k in EXAM_KEYS) and isinstance(data.get("answers"), dict)
