"""Load quiz banks (quizzes/<id>.yaml) and learner copies of them (learner.py), and find them by id.

The data model lives in model.py and the checks in checks.py; this module is what the rest of the package calls:
`load_quiz`, `validate_bank`, `resolve`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autograder.errors import BadConfig, UsageError
from autograder.quiz.checks import BankProblem, Locator, collect_problems, read_yaml, semantic_problems
from autograder.quiz.model import (  # noqa: F401  (re-exported: the package imports the model from here)
    FORMATIVE,
    LEARNER_FORMAT,
    SUFFIXES,
    SUMMATIVE,
    TYPE_NAMES,
    TYPES,
    HashedKey,
    Question,
    Quiz,
    normalize,
    pass_fraction,
)


def validate_bank(path: Path) -> list[BankProblem]:
    """Every problem in a bank or a learner copy (an empty list when it is valid)."""
    try:
        data, lines, yaml_problems = read_yaml(path)
    except BadConfig as exc:  # not YAML at all: that is the one problem to report
        return [BankProblem(path, exc.where, exc.problem)]
    if isinstance(data, dict) and data.get("learner_copy"):
        try:
            _learner_quiz(path, data)
        except BadConfig as exc:
            return [BankProblem(path, exc.where, exc.problem)]
        return yaml_problems
    return collect_problems(path, data, lines, yaml_problems)


# --------------------------------------------------------------------------------------------- loading


def _shuffle_settings(value: Any) -> tuple[bool, bool]:
    if isinstance(value, bool):
        return value, value
    if isinstance(value, dict):
        return bool(value.get("questions", False)), bool(value.get("options", False))
    return False, False


def _question(raw: dict[str, Any], line: int | None, hashed: HashedKey | None = None) -> Question:
    qtype = raw["type"]
    answer = raw.get("answer")
    if hashed is None:
        if qtype == "multiple":
            answer = frozenset(answer)
        elif qtype == "numeric" and answer is not None:
            answer = float(answer)
    rng = raw.get("range")
    return Question(
        id=raw["id"],
        type=qtype,
        prompt=raw["prompt"].strip(),
        points=float(raw["points"]),
        topic=raw["topic"],
        explanation=str(raw.get("explanation") or "").strip(),
        options={str(k): str(v) for k, v in (raw.get("options") or {}).items()},
        answer=answer if hashed is None else None,
        tolerance=float(raw.get("tolerance", 0.0)),
        range=(float(rng[0]), float(rng[1])) if rng else None,
        accept=tuple(str(a) for a in raw.get("accept", ())),
        regex=raw.get("regex"),
        case_sensitive=bool(raw.get("case_sensitive", False)),
        hashed=hashed,
        line=line,
        outcomes=tuple(str(o) for o in raw.get("outcomes") or ()),
    )


def _learner_quiz(path: Path, data: dict[str, Any]) -> Quiz:
    """A learner copy is generated (learner.py), so it gets a structural check, not the author's schema."""
    questions = []
    summative = data.get("assessment") == SUMMATIVE
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise BadConfig(path, "questions", "a learner copy needs a non-empty list of questions; regenerate it")
    for i, raw in enumerate(raw_questions):
        qid = raw.get("id") if isinstance(raw, dict) else None
        where = f"question '{qid}'" if qid else f"question #{i + 1}"
        if not isinstance(raw, dict):
            raise BadConfig(path, where, "expected a mapping; regenerate the learner copy")
        needed = ("id", "type", "prompt", "points", "topic") + (() if summative else ("explanation", "salt"))
        missing = [k for k in needed if k not in raw]
        if missing:
            raise BadConfig(path, where, f"missing field '{missing[0]}'; regenerate the learner copy")
        if raw["type"] not in TYPES:
            raise BadConfig(path, where, f"unknown type {raw['type']!r}; expected one of {', '.join(TYPES)}")
        if summative:  # no key material at all: only the instructor's source bank can grade it
            questions.append(_question(raw, None, HashedKey(salt="", instructor=True)))
            continue
        hashed = HashedKey(
            salt=str(raw["salt"]),
            options={str(k): str(v) for k, v in (raw.get("key_hashes") or {}).items()},
            value=raw.get("key_hash"),
            accept=tuple(raw.get("accept_hashes") or ()),
            instructor=raw.get("graded_by") == "instructor",
        )
        questions.append(_question(raw, None, hashed))
    shuffle_q, shuffle_o = _shuffle_settings(data.get("shuffle"))
    return Quiz(id=str(data.get("id") or path.stem), title=str(data.get("title", path.stem)),
                pass_mark=pass_fraction(data.get("pass_mark", 1.0)), questions=tuple(questions), path=path,
                shuffle_questions=shuffle_q, shuffle_options=shuffle_o, draw=data.get("draw"),
                description=str(data.get("description", "")), learner_copy=True,
                assessment=SUMMATIVE if summative else FORMATIVE, draw_by_topic=_draw_by_topic(data),
                required_outcomes=tuple(str(o) for o in data.get("required_outcomes") or ()))


def _draw_by_topic(data: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    spec = data.get("draw_by_topic")
    if not isinstance(spec, dict):
        return ()
    return tuple((str(k), int(v)) for k, v in spec.items())


def _build(path: Path, data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> Quiz:
    shuffle_q, shuffle_o = _shuffle_settings(data.get("shuffle"))
    questions = tuple(_question(q, lines.get(("questions", i))) for i, q in enumerate(data["questions"]))
    if not questions or any(q.type not in TYPES or not q.points > 0 for q in questions):
        raise ValueError("needs the schema check")
    return Quiz(id=data["id"], title=data["title"], pass_mark=pass_fraction(data["pass_mark"]),
                questions=questions, path=path, shuffle_questions=shuffle_q, shuffle_options=shuffle_o,
                draw=data.get("draw"), description=data.get("description", ""),
                assessment=data.get("assessment", FORMATIVE), draw_by_topic=_draw_by_topic(data),
                units=tuple(str(u) for u in data.get("units") or ()),
                required_outcomes=required_outcomes(path.parent, data.get("units") or ()))


def required_outcomes(folder: Path, units: Any) -> tuple[str, ...]:
    """The outcome ids of these units, in the order quizzes/outcomes.yaml lists them (the draw's order)."""
    from autograder.quiz.checks import outcome_units

    wanted = {str(u) for u in units}
    if not wanted:
        return ()
    return tuple(oid for oid, unit in (outcome_units(folder) or {}).items() if unit in wanted)


def load_quiz(path: Path, *, schema_check: bool = True) -> Quiz:
    """A validated quiz from a source bank or a learner copy; BadConfig names the first problem.

    `schema_check=False` is for taking a quiz: importing jsonschema costs seconds (its IRI format checker builds
    a grammar at import), so a bank that builds and passes the semantic checks is used as it is, and only a bank
    that fails them pays for the schema, to name the problem. `validate`, `grade` and CI check everything.
    """
    data, lines, yaml_problems = read_yaml(path)
    if isinstance(data, dict) and data.get("learner_copy"):
        return _learner_quiz(path, data)
    if not schema_check and isinstance(data, dict):
        try:
            quiz = _build(path, data, lines)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass
        else:
            if not yaml_problems and not semantic_problems(path, data, Locator(data, lines)):
                return quiz
    problems = collect_problems(path, data, lines, yaml_problems)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: run `.venv/bin/autograder quiz validate {path}`)" if len(problems) > 1 else ""
        raise BadConfig(first.path, first.where, first.message + more)
    return _build(path, data, lines)


# --------------------------------------------------------------------------------------------- finding banks


def quizzes_dir(root: Path) -> Path:
    return root / "quizzes"


OUTCOMES_FILE = "outcomes.yaml"  # the course's learning outcomes, beside the banks but not a bank


def bank_paths(root: Path) -> list[Path]:
    folder = quizzes_dir(root)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.name != OUTCOMES_FILE)


def resolve(spec: str | Path, root: Path | None = None) -> Path:
    """QUIZ as the CLI and show_quiz() take it: a path to a bank, or a quiz id looked up in <root>/quizzes/."""
    candidate = Path(spec)
    if candidate.suffix in SUFFIXES or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise UsageError(f"{candidate}: no such quiz file; give a quiz id (e.g. module01) or a path to a bank")
        return candidate
    if root is None:
        from autograder.paths import repo_root

        root = repo_root()
    for suffix in SUFFIXES:
        path = quizzes_dir(root) / f"{spec}{suffix}"
        if path.is_file():
            return path
    known = ", ".join(p.stem for p in bank_paths(root)) or "none"
    raise UsageError(f"no quiz '{spec}' in {quizzes_dir(root)} (available: {known}); give a quiz id or a path")
