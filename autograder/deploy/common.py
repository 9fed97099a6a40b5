"""What the deploy checks share: the practical assessment's five requirements as 1-point checks (named per
deployment, all given one status, or scored from `autograder assess`'s criteria with partial credit kept), the
engine-hiding switch $AUTOGRADER_HIDE_ENGINES the graded samples use to grade both ways on one machine, a note
appended to every check's message, and the model a deployment serves: the course's trained one when `make model`
has run on the grading machine, else a stand-in with random weights (the deployment, not the model, is graded).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlinfra.base.results import FAILED, PASSED, Check

HIDE_ENV = "AUTOGRADER_HIDE_ENGINES"
TITLES = (  # the practical assessment's five requirements, one deploy check each (1 point)
    "reachable over HTTP",
    "processes PNG/JPEG, grey/colour, 28-224 px",
    "predictions with confidences",
    "latency under 500 ms",
    "bad input gets a 4xx, keeps serving",
)
POINTS_EACH = 1.0
# Fewer timed requests than `assess`'s 50 (the rule needs at least 20): a class is graded on a shared machine.
ASSESS_REQUESTS = 20
TORCHSERVE_START_S = 120.0


def hidden(engine: str) -> bool:
    """True when $AUTOGRADER_HIDE_ENGINES names `engine` (the checks then act as if it were missing)."""
    return engine in {p.strip().lower() for p in os.environ.get(HIDE_ENV, "").split(",")}


def named(prefix: str) -> list[str]:
    return [f"{prefix}: {title}" for title in TITLES]


def all_checks(names: list[str], status: str, message: str, where: str = "") -> list[Check]:
    return [Check(n, status, 0.0, POINTS_EACH, message, where) for n in names]


def from_criteria(names: list[str], criteria: list[dict[str, Any]], where: str) -> list[Check]:
    """The assessment's five requirements (20 points each) as five 1-point checks, partial credit kept."""
    checks = []
    for name, crit in zip(names, criteria, strict=True):
        share = float(crit["points"]) / float(crit["max_points"]) if crit["max_points"] else 0.0
        checks.append(Check(name, PASSED if crit["passed"] else FAILED, round(POINTS_EACH * share, 2),
                            POINTS_EACH, str(crit.get("verdict") or ""), where))
    return checks


def with_note(checks: list[Check], note: str) -> list[Check]:
    """The checks with `note` appended to each message (unchanged when there is no note)."""
    if not note:
        return checks
    return [Check(c.name, c.status, c.points, c.max_points, c.message + note, c.where) for c in checks]


def course_model(work_dir: Path) -> tuple[Path, str]:
    """The course's trained model (`make model`) when there is one, else a stand-in made in work_dir: the
    deployment, not the model, is graded. Returns the folder and a note for the message."""
    from mlinfra.modelstore import MODEL_FILE, model_dir_from_env

    trained = model_dir_from_env()
    if (trained / MODEL_FILE).is_file():
        return trained, ""
    standin = work_dir / "standin-model"
    if not (standin / MODEL_FILE).is_file():
        _standin_model(standin)
    return standin, " (a stand-in model: `make model` has not been run on the grading machine)"


def _standin_model(folder: Path) -> None:
    from mlinfra.modelstore import standin_model

    standin_model(folder)
