"""A small graded term for the class report's tests, written by the project's own writers (no kernels): two labs
through autograder.grading.outputs.write_all, a self-check quiz through `autograder quiz grade`, and the practical
as `assess --pack --json` writes it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from autograder.cli import main
from autograder.grading.outputs import write_all
from mlinfra.base.output import to_jsonable
from mlinfra.base.results import FAILED, PASSED, PENDING, Check, Outcome

ROOT = Path(__file__).resolve().parents[2]
STUDENTS = ["ada", "bob", "cy", "dee", "eve", "=HYPERLINK(1)"]

# lab -> test -> (max, {student: points})
LABS = {
    "lab-one": {"test-a": (2.0, {"ada": 2, "bob": 2, "cy": 2, "dee": 0, "eve": 0, "=HYPERLINK(1)": 0}),
                "test-b": (3.0, {"ada": 3, "bob": 3, "cy": 0, "dee": 3, "eve": 0, "=HYPERLINK(1)": 0})},
    "lab-two": {"test-x": (5.0, {"ada": 5, "bob": 0, "cy": 5, "dee": 5, "eve": 0})},
}
# quiz lesson03 answers: ada and bob right everywhere, the rest pick the distractors named
QUIZ_ANSWERS = {
    "ada": {"l03-after-the-notebook": ["c", "d", "e"], "l03-validate-data-first": "d",
            "l03-experiment-tracking": "a", "l03-labels-arrive-late": True},
    "bob": {"l03-after-the-notebook": ["c", "d", "e"], "l03-validate-data-first": "d",
            "l03-experiment-tracking": "a", "l03-labels-arrive-late": True},
    "cy": {"l03-after-the-notebook": ["a"], "l03-validate-data-first": "b", "l03-experiment-tracking": "a",
           "l03-labels-arrive-late": False},
    "dee": {"l03-after-the-notebook": ["c", "d"], "l03-validate-data-first": "b",
            "l03-experiment-tracking": "c", "l03-labels-arrive-late": True},
    "eve": {"l03-validate-data-first": "not an option"},
}
PRACTICAL = {"ada": 120.0, "bob": 100.0, "cy": 60.0}
FLAG = "the kernel's builtins were changed <script>alert(1)</script>"  # reasons may quote learner text


def write_lab(out: Path, lab: str, flagged: str | None = None, late: dict[str, float] | None = None,
              manual: bool = False) -> Path:
    tests = {t: mx for t, (mx, _) in LABS[lab].items()} | ({"manual-answer": 3.0} if manual else {})
    outcomes = []
    for student in STUDENTS:
        if not any(student in pts for _, pts in LABS[lab].values()):
            continue
        checks = [Check(t, PASSED if pts[student] >= mx else FAILED, float(pts[student]), mx,
                        "" if pts[student] >= mx else f"{t} fell short")
                  for t, (mx, pts) in LABS[lab].items()]
        if manual:  # a manually graded cell: entered for ada, still waiting for `autograder review` for the rest
            checks.append(Check("manual-answer", PASSED if student == "ada" else PENDING,
                                3.0 if student == "ada" else 0.0, 3.0))
        o = Outcome(student, checks, status="flagged" if student == flagged else "completed")
        if late and student in late:  # as the late rule records it (autograder/grading/late.py)
            o.data["late"] = {"submitted_at": "2026-01-11T12:00:00+00:00", "due": "2026-01-10T10:00:00+00:00",
                              "extension": False, "late_by_hours": 26.0, "penalty_percent": 20.0,
                              "rule": "20% a day", "penalty": late[student]}
        if student == flagged:
            o.data["flags"] = [FLAG]
        outcomes.append(o)
    write_all(out, lab, tests, outcomes, seconds=1.0, notes=[], sandbox="none")
    return out


def write_quiz(tmp: Path) -> Path:
    answers = tmp / "quiz-answers"
    answers.mkdir(parents=True)
    for student, given in QUIZ_ANSWERS.items():
        (answers / f"{student}.yaml").write_text(yaml.safe_dump(given))
    out = tmp / "quiz-lesson03"
    assert main(["quiz", "grade", "lesson03", str(answers), "--out", str(out)]) == 0
    return out


def write_practical(dest: Path) -> Path:
    """What `assess --pack A.zip B.zip ... --json FILE` writes: the batch Outcome, a part per hand-in (the runner's
    JSON of a batch: each part's checks, status and data, the hand-in's name under data.target.pack)."""
    parts = []
    for student, score in PRACTICAL.items():
        checks = [Check(f"{n}. requirement {n}", PASSED if score >= 20 * n else FAILED,
                        20.0 if score >= 20 * n else 0.0, 20.0) for n in range(1, 6)]
        checks.append(Check("README: how to run", PASSED if score >= 120 else FAILED,
                            20.0 if score >= 120 else 0.0, 20.0))
        checks.append(Check("throughput", "info", message="requests per second: 1 client 90/s"))
        parts.append(Outcome(f"hand-in {student}-practical.zip (http://127.0.0.1:1)", checks,
                             data={"target": {"pack": f"hand-ins/{student}-practical.zip", "kind": "pack"}}))
    dest.write_text(json.dumps(to_jsonable(Outcome("assess --pack", parts=parts))))
    return dest


def write_term(tmp: Path) -> list[Path]:
    return [write_lab(tmp / "lab-one", "lab-one", flagged="bob", late={"cy": 1.0}),
            write_lab(tmp / "lab-two", "lab-two", manual=True), write_quiz(tmp), write_practical(tmp / "practical.json")]
