"""`autograder quiz coverage`: for each learning outcome, the lessons that teach it, the labs that grade it and
the summative questions that ask about it, all read from the tags (no list kept by hand):

- outcomes:  quizzes/outcomes.yaml (the ids and their wording)
- lessons:   a lesson notebook's metadata, "workbook": {"outcomes": [...]}
- labs:      a lab's lab.yaml, `outcomes: [...]`
- questions: a quiz question's `outcomes: [...]`

An outcome is covered when at least MIN_QUESTIONS questions of the summative banks ask about it, at least one
graded lab practises it (unless outcomes.yaml says `lab: false`), and a summative bank asks it of every learner:
the bank names the outcome's unit in `units:`, and in LEARNERS simulated draws of that bank no learner gets fewer
than MIN_PER_LEARNER questions on it. The pool counts say what could be asked; the per-learner minimum says what
each learner is asked. The command exits 1 when an outcome falls short (docs/quizzes.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError
from mlinfra.base.results import FAILED, PASSED, Check, Outcome

MIN_QUESTIONS = 2
MIN_PER_LEARNER = 1
LEARNERS = 200  # simulated learner ids (and ticket nonces) per bank


def load_outcomes(root: Path) -> list[dict[str, Any]]:
    path = root / "quizzes" / "outcomes.yaml"
    if not path.is_file():
        raise UsageError(f"{path} is missing: it defines the course's learning outcomes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadConfig(path, f"line {mark.line + 1}" if mark else "", "not valid YAML") from None
    items = data.get("outcomes") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise BadConfig(path, "outcomes", "expected a list of {id, unit, text}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item.get("text"):
            raise BadConfig(path, f"outcomes[{i}]", "each outcome needs an 'id' and a 'text'")
        lab = item.get("lab", True)
        if not isinstance(lab, bool):
            raise BadConfig(path, f"outcomes[{i}].lab", "lab is true (a graded lab practises it) or false")
        out.append({"id": item["id"], "unit": str(item.get("unit", "")), "text": str(item["text"]), "lab": lab})
    return out


def lesson_tags(root: Path) -> dict[str, list[str]]:
    """outcome id -> lesson notebooks (relative paths) tagged with it."""
    tags: dict[str, list[str]] = {}
    for path in sorted((root / "modules").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError) as exc:
            raise BadConfig(path, "", f"not a readable notebook ({exc})") from None
        for oid in (meta.get("workbook") or {}).get("outcomes") or []:
            tags.setdefault(str(oid), []).append(str(path.relative_to(root / "modules")))
    return tags


def lab_tags(root: Path) -> dict[str, list[str]]:
    """outcome id -> labs tagged with it (from solutions/, or from labs/ in a class copy without solutions)."""
    from autograder.labs import lab_names, load_lab

    source = (root / "solutions").is_dir()
    base = root / ("solutions" if source else "labs")
    tags: dict[str, list[str]] = {}
    for name in lab_names(root, source=source):
        for oid in load_lab(base / name).outcomes:
            tags.setdefault(oid, []).append(name)
    return tags


def question_tags(root: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(summative, formative): outcome id -> question ids tagged with it."""
    from autograder.quiz.bank import bank_paths, load_quiz

    summative: dict[str, list[str]] = {}
    formative: dict[str, list[str]] = {}
    for path in bank_paths(root):
        quiz = load_quiz(path, schema_check=False)
        target = summative if quiz.summative else formative
        for q in quiz.questions:
            for oid in q.outcomes:
                target.setdefault(oid, []).append(q.id)
    return summative, formative


def per_learner(root: Path, learners: int = LEARNERS) -> dict[str, tuple[str, int]]:
    """outcome id -> (the summative bank that must ask it, the fewest questions on it any simulated learner got),
    for every outcome of every summative bank's `units`."""
    from autograder.quiz.bank import bank_paths, load_quiz
    from autograder.quiz.shuffle import arrange

    out: dict[str, tuple[str, int]] = {}
    for path in bank_paths(root):
        quiz = load_quiz(path, schema_check=False)
        if not quiz.summative or not quiz.required_outcomes:
            continue
        fewest: dict[str, int] = {}
        for i in range(learners):
            asked = arrange(quiz, learner=f"coverage-learner-{i:03d}", nonce=f"coverage-nonce-{i:03d}")
            for oid in quiz.required_outcomes:
                n = sum(1 for p in asked if oid in p.question.outcomes)
                fewest[oid] = min(fewest.get(oid, n), n)
        for oid, n in fewest.items():
            if oid not in out or n > out[oid][1]:
                out[oid] = (quiz.id, n)
    return out


def coverage(root: Path) -> Outcome:
    """One check per outcome: passed when it has >= MIN_QUESTIONS summative questions, a graded lab (unless it is
    marked `lab: false`) and a summative bank that asks it of every learner at least MIN_PER_LEARNER times."""
    outcomes = load_outcomes(root)
    lessons, labs = lesson_tags(root), lab_tags(root)
    summative, formative = question_tags(root)
    each = per_learner(root)
    known = {o["id"] for o in outcomes}
    result = Outcome(subject="learning-outcome coverage")
    rows = []
    for o in outcomes:
        oid = o["id"]
        n = len(summative.get(oid, []))
        problems = []
        if n < MIN_QUESTIONS:
            problems.append(f"{n} summative question(s), needs {MIN_QUESTIONS}: tag more questions in "
                            "quizzes/module01.yaml or phase1.yaml")
        if o["lab"] and not labs.get(oid):
            problems.append("no graded lab: add it to a lab.yaml's `outcomes:` (or mark the outcome `lab: false` "
                            "in quizzes/outcomes.yaml if no lab should practise it)")
        bank, least = each.get(oid, ("", 0))
        if not bank:
            problems.append(f"no summative bank asks it of every learner: add unit {o['unit']} to a graded bank's "
                            "`units:`")
        elif least < MIN_PER_LEARNER:
            problems.append(f"some learners of {bank} get {least} question(s) on it, needs {MIN_PER_LEARNER}: tag "
                            "more questions or raise a topic's count in draw_by_topic")
        result.checks.append(Check(oid, FAILED if problems else PASSED, message="; ".join(problems),
                                   where="quizzes/outcomes.yaml"))
        rows.append({"outcome": oid, "unit": o["unit"], "text": o["text"], "lessons": lessons.get(oid, []),
                     "labs": labs.get(oid, []), "lab_expected": o["lab"], "questions": summative.get(oid, []),
                     "formative_questions": formative.get(oid, []), "bank": bank or None,
                     "per_learner_min": least if bank else None})
    for kind, tags in (("lesson", lessons), ("lab", labs), ("question", {**summative, **formative})):
        for oid in sorted(set(tags) - known):
            result.notes.append(f"unknown outcome id '{oid}' on {kind}(s) {', '.join(tags[oid][:3])}: define it "
                                "in quizzes/outcomes.yaml or fix the tag")
            result.checks.append(Check(f"tag {oid}", FAILED, message="unknown outcome id", where=tags[oid][0]))
    result.data = {"outcomes": rows, "min_questions": MIN_QUESTIONS, "min_per_learner": MIN_PER_LEARNER,
                   "simulated_learners": LEARNERS}
    return result


def render(result: Outcome) -> str:
    from mlinfra.base.output import format_table

    table = []
    for row, check in zip(result.data["outcomes"], result.checks, strict=False):
        lessons = ", ".join(_lesson_label(p) for p in row["lessons"]) or "-"
        labs = ", ".join(row["labs"]) or ("-" if row["lab_expected"] else "(none needed)")
        each = "-" if row["bank"] is None else f"{row['per_learner_min']} ({row['bank']})"
        table.append((row["outcome"], lessons, labs, len(row["questions"]), each,
                      len(row["formative_questions"]), "ok" if check.status == PASSED else "SHORT"))
    text = format_table(["outcome", "lessons", "labs", "summative q", "per learner", "lesson q", "status"], table,
                        max_width=60)
    short = [c for c in result.checks if c.status != PASSED]
    lines = [text, ""]
    lines += [f"{c.name}: {c.message}" for c in short]
    lines += result.notes
    if not short:
        lines.append(f"every outcome has a graded lab and at least {MIN_QUESTIONS} summative questions, and each "
                     f"of {LEARNERS} simulated learners is asked every outcome at least {MIN_PER_LEARNER} time(s)")
    return "\n".join(lines)


def _lesson_label(rel: str) -> str:
    """modules/01-foundations.../04-ml-frameworks.ipynb -> 1.4"""
    parts = Path(rel).parts
    try:
        return f"{int(parts[0][:2])}.{int(parts[-1][:2])}"
    except (ValueError, IndexError):
        return rel
