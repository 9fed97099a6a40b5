"""The learner's progress: self-checks, quizzes, exams taken and the practical's last score, kept in the ignored
workspace for the start page.

One JSON file per item, `workspace/.progress/<kind>-<name>.json`, so two commands never race on one file. Who
writes them: `autograder check` (lab), `autograder quiz take` (quiz; exam: taken, never a score, since the
learner's copy of a graded quiz holds no key), `autograder assess --app/--url` (practical: the last score).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from autograder.paths import workspace_dir

KINDS = ("lab", "quiz", "exam", "practical")


@dataclass
class ProgressRecord:
    kind: str  # "lab", "quiz", "exam" or "practical"
    name: str  # lab name, quiz id, or "practical"
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


def record_exam(root: Path, quiz_id: str) -> ProgressRecord:
    """An exam taken (its record written for the instructor): taken, not scored, so score and max are 0."""
    return record(root, "exam", quiz_id, passed=False, score=0.0, max_score=0.0)


def record_practical(root: Path, *, passed: bool, score: float, max_score: float) -> ProgressRecord:
    """The learner's last `assess` of their own service (the practical); each run replaces the one before."""
    return record(root, "practical", "practical", passed=passed, score=score, max_score=max_score)
