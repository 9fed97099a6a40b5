"""The learner's progress: self-check and quiz results, kept in the ignored workspace for the start page.

One JSON file per item, `workspace/.progress/<kind>-<name>.json`, so two commands never race on one file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from autograder.paths import workspace_dir

KINDS = ("lab", "quiz")


@dataclass
class ProgressRecord:
    kind: str  # "lab" or "quiz"
    name: str  # lab name or quiz id
    passed: bool
    score: float
    max_score: float
    when: str  # ISO 8601, UTC


def progress_dir(root: Path) -> Path:
    return workspace_dir(root) / ".progress"


def record(root: Path, kind: str, name: str, *, passed: bool, score: float, max_score: float) -> ProgressRecord:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rec = ProgressRecord(kind, name, passed, float(score), float(max_score),
                         datetime.now(timezone.utc).isoformat(timespec="seconds"))
    folder = progress_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{kind}-{name}.json.tmp"
    tmp.write_text(json.dumps(asdict(rec), indent=2) + "\n")
    tmp.replace(folder / f"{kind}-{name}.json")
    return rec


def read_all(root: Path) -> list[ProgressRecord]:
    """Every record, skipping (not failing on) files a learner broke by hand."""
    folder = progress_dir(root)
    out: list[ProgressRecord] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            out.append(ProgressRecord(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return out
