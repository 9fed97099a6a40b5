"""What the term adds to a graded batch: the late rule (late.py) and the manual points (manual.py).

Applied by `finish_batch` after the last student, and again by `refresh`, which rewrites a graded folder's outputs
from its summary.json (after `autograder review` took points, or when the course file changed) without running a
single notebook again. Both passes are safe to repeat: a penalty is computed from the checks each time, never
subtracted twice.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from autograder.grading import late, manual
from mlinfra.base.results import Outcome


def apply_term(outcomes: list[Outcome], item: str, course: dict[str, Any] | None, cells: dict[str, float],
               entered: dict[str, dict[str, manual.Entry]]) -> None:
    """Manual checks first (their points count towards the penalty's base), then the late rule, on each outcome."""
    rules = late.Course.from_dict(course) if course else None
    for o in outcomes:
        manual.apply(o, cells, entered.get(o.subject, {}))
        received = o.data.get("received")
        judged = late.judge(rules, item, o.subject, float(received) if received is not None else None)
        points = judged.penalty_points(o.score, o.max_score)
        o.data["late"] = {**asdict(judged), "penalty": points}


def term_of(plan_course: dict[str, Any] | None, cells: dict[str, float]) -> dict[str, Any]:
    """What summary.json keeps so a refresh applies the same rule to the same cells."""
    return {"course": plan_course, "manual": dict(cells)}


def load_summary(out_dir: Path) -> dict[str, Any]:
    path = Path(out_dir) / "summary.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no graded batch here; give the folder `.venv/bin/autograder grade --out` wrote") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not readable JSON ({exc}); grade the lab again") from None
    if not isinstance(data, dict) or "results" not in data or "term" not in data:
        raise UsageError(f"{path}: written by an older grader (no 'term'); grade the lab again")
    return data


def refresh(out_dir: Path, *, course: dict[str, Any] | None | bool = True) -> list[Outcome]:
    """Rewrite grades.csv, summary.json, feedback/ and the class gradebook's manual scores from summary.json with
    the manual points in OUT/manual.yaml now and the course file's rule (`course`: True keeps the one the batch was
    graded with; a dict replaces it; None drops it). Returns the outcomes as written."""
    from autograder.grading import outputs

    out_dir = Path(out_dir)
    data = load_summary(out_dir)
    term = data["term"]
    cells = {str(k): float(v) for k, v in (term.get("manual") or {}).items()}
    if course is not True:
        term["course"] = course or None
    outcomes = [Outcome.from_dict(raw) for raw in data["results"]]
    entered = manual.load_entered(out_dir / manual.POINTS_FILE, cells)
    apply_term(outcomes, data["lab"], term.get("course"), cells, entered)
    update_gradebook(out_dir / "gradebook.db", data["lab"], outcomes, cells)
    tests = {str(k): float(v) for k, v in (term.get("tests") or {}).items()}
    outputs.write_all(out_dir, data["lab"], tests, outcomes, seconds=float(data.get("seconds", 0.0)),
                      notes=list(data.get("notes", [])), sandbox=str(data.get("sandbox", "")),
                      term={k: v for k, v in term.items() if k != "tests"})
    return outcomes


def update_gradebook(db: Path, item: str, outcomes: list[Outcome], cells: dict[str, float]) -> None:
    """The class gradebook's manual scores (nbgrader's own tools then show them), where it exists."""
    if not db.is_file() or not cells:
        return
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    from mlinfra.base.results import PENDING

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbgrader's SQLAlchemy session warnings
        with Gradebook(f"sqlite:///{db}", "mlinfra-workbook") as gb:
            for o in outcomes:
                for gid in cells:
                    check = o.check(gid)
                    try:
                        submission = gb.find_submission(item, o.subject)
                    except MissingEntry:
                        break
                    for nb in submission.notebooks:
                        for grade in nb.grades:
                            if grade.name == gid:
                                entered = check is not None and check.status != PENDING
                                grade.manual_score = check.points if entered and check else None
                                grade.needs_manual_grade = not entered
            gb.db.commit()
