"""Manually graded cells: found in the source notebook, listed as pending, scored from what the instructor entered.

nbgrader's "manually graded answer" cells (`grade` and `solution`, markdown or code) and "manually graded task"
cells (`task`) carry points that no test can give. Grading lists each as a check with status `pending` and the
outcome as `needs manual grading` until the instructor enters points with `autograder review`, which keeps them in
OUT/manual.yaml::

    ada:
      q-explain: {points: 2, comment: "Right idea; the trade-off is missing."}
    bob:
      q-explain: {points: 3}

Regrading reads the same file, so points entered survive a regrade. The learner's answers are kept for review in
OUT/answers/<student>.json (the cell's text as handed in, from the trusted side's copy of the notebook).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig
from mlinfra.base.results import (
    COMPLETED,
    FAILED,
    FLAGGED,
    NEEDS_MANUAL,
    NOT_RUN,
    PASSED,
    PENDING,
    Check,
    Outcome,
)

POINTS_FILE = "manual.yaml"
ANSWERS_DIR = "answers"
MAX_ANSWER_CHARS = 20_000  # of one answer kept for review: an essay fits, a pasted data dump does not


@dataclass(frozen=True)
class Entry:
    points: float
    comment: str = ""


def is_manual(meta: dict[str, Any]) -> bool:
    """A cell a person grades: a manually graded answer (grade + solution) or a manually graded task."""
    return bool(meta.get("task")) or (bool(meta.get("grade")) and bool(meta.get("solution")))


def manual_cells(nb: Any) -> dict[str, float]:
    """grade_id -> points of the notebook's manually graded cells, in notebook order."""
    out: dict[str, float] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and meta.get("grade_id") and is_manual(meta):
            out[str(meta["grade_id"])] = float(meta.get("points", 0) or 0)
    return out


def _meta(cell: Any) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def answers_of(nb: Any, manual: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The learner's text for each manual cell (bounded), with where it is and the cell's kind. A task cell is
    the instructor's prompt: its answer is what the learner wrote in the cells after it, up to the next cell
    nbgrader knows, so those follow the prompt."""
    out: dict[str, dict[str, Any]] = {}
    cells = list(nb.cells)
    for index, cell in enumerate(cells, start=1):
        meta = _meta(cell)
        gid = meta.get("grade_id")
        if gid in manual and gid not in out:
            text = str(cell.get("source", ""))
            if meta.get("task"):
                after = []
                for later in cells[index:]:
                    if _meta(later).get("grade_id"):
                        break
                    after.append(f"--- {later.get('cell_type', 'cell')} cell ---\n{later.get('source', '')}")
                text = "\n\n".join([text, *after])
            if len(text) > MAX_ANSWER_CHARS:
                text = text[:MAX_ANSWER_CHARS] + f"\n[... {len(text) - MAX_ANSWER_CHARS} more characters]"
            out[gid] = {"where": f"cell {index}", "kind": cell.get("cell_type", ""), "text": text,
                        "max_points": manual[gid]}
    return out


def load_entered(path: Path, manual: dict[str, float] | None = None) -> dict[str, dict[str, Entry]]:
    """OUT/manual.yaml (empty when missing), validated: points a number between 0 and the cell's maximum."""
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadConfig(path, f"line {mark.line + 1}" if mark else "", f"not valid YAML "
                        f"({getattr(exc, 'problem', exc)})") from None
    return parse_entries(path, data, manual)


def parse_entries(path: Path, data: Any, manual: dict[str, float] | None) -> dict[str, dict[str, Entry]]:
    if not isinstance(data, dict):
        raise BadConfig(path, "", "expected a mapping of student to {grade_id: {points: N, comment: TEXT}}")
    out: dict[str, dict[str, Entry]] = {}
    for student, cells in data.items():
        if not isinstance(cells, dict):
            raise BadConfig(path, str(student), "expected a mapping of grade_id to {points: N, comment: TEXT}")
        for gid, raw in cells.items():
            key = f"{student}.{gid}"
            if manual is not None and str(gid) not in manual:
                raise BadConfig(path, key, f"no manually graded cell {gid!r} in this lab (cells: "
                                f"{', '.join(manual) or 'none'})")
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                raw = {"points": raw}
            if not isinstance(raw, dict) or set(raw) - {"points", "comment"} or "points" not in raw:
                raise BadConfig(path, key, "expected {points: N} with an optional comment: TEXT")
            points = raw["points"]
            top = manual.get(str(gid)) if manual is not None else None
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0 or (
                    top is not None and points > top):
                raise BadConfig(path, f"{key}.points", f"expected a number from 0 to {top if top is not None else 'the cell maximum'}, got {points!r}")
            comment = raw.get("comment") or ""
            if not isinstance(comment, str):
                raise BadConfig(path, f"{key}.comment", "expected text")
            out.setdefault(str(student), {})[str(gid)] = Entry(float(points), comment)
    return out


def dump_entered(entered: dict[str, dict[str, Entry]]) -> str:
    plain = {s: {g: ({"points": e.points, "comment": e.comment} if e.comment else {"points": e.points})
                 for g, e in sorted(cells.items())} for s, cells in sorted(entered.items()) if cells}
    return ("# Points entered by hand for manually graded cells (.venv/bin/autograder review). Regrading keeps them.\n"
            + yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))


def apply(outcome: Outcome, manual: dict[str, float], entered: dict[str, Entry]) -> None:
    """Put one check per manual cell on the outcome (replacing any from an earlier pass): the points entered, or
    pending; and the outcome's status `needs manual grading` while any is pending. Safe to apply again."""
    kept = [c for c in outcome.checks if c.name not in manual]
    before = {c.name: c for c in outcome.checks if c.name in manual}
    answers = outcome.data.get("answers", {}) or {}
    graded = outcome.status in (COMPLETED, FLAGGED, NEEDS_MANUAL)
    added = []
    for gid, max_points in manual.items():
        earlier = before.get(gid)
        where = str((answers.get(gid) or {}).get("where", "") or (earlier.where if earlier else ""))
        # a person can grade the answer whenever there is one: also when the kernel died later in the notebook
        answered = graded or gid in answers or (earlier is not None and earlier.status != NOT_RUN)
        entry = entered.get(gid)
        if entry is not None:
            status = PASSED if entry.points >= max_points else FAILED
            added.append(Check(gid, status, entry.points, max_points, entry.comment, where))
        elif answered:
            added.append(Check(gid, PENDING, 0.0, max_points, "needs manual grading", where))
        else:
            added.append(Check(gid, NOT_RUN, 0.0, max_points, "nothing to grade", where))
    outcome.checks = kept + added
    pending = sum(c.max_points for c in added if c.status == PENDING)
    outcome.data["manual_pending"] = pending
    if outcome.status == NEEDS_MANUAL and not pending:
        outcome.status = COMPLETED
    elif outcome.status == COMPLETED and pending:
        outcome.status = NEEDS_MANUAL


def pending_points(outcome: Outcome) -> float:
    return sum(c.max_points for c in outcome.checks if c.status == PENDING)
