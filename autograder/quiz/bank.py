"""Load and validate quiz banks: quizzes/<id>.yaml, or a learner copy of one (see learner.py).

Validation is two passes: the published JSON Schema (schema.json) for the shape of each field, then the checks
a schema cannot make (unique ids, an answer that is one of the options, a regex that compiles, a draw no larger
than the bank). Every problem names the file, the line, the question id and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError

TYPES = ("single", "multiple", "truefalse", "numeric", "short")
TYPE_NAMES = {
    "single": "single choice",
    "multiple": "multiple select",
    "truefalse": "true/false",
    "numeric": "numeric",
    "short": "short answer",
}
LEARNER_FORMAT = 1  # `learner_copy:` value written by learner.py
SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class HashedKey:
    """A learner copy's key: salted SHA-256 digests (learner.py), never the answer itself."""

    salt: str
    options: dict[str, str] = field(default_factory=dict)  # single/multiple: option id -> digest of "id=1|0"
    value: str | None = None  # truefalse, exact numeric: digest of the canonical answer
    accept: tuple[str, ...] = ()  # short: digests of the normalized accepted answers
    instructor: bool = False  # the full key is not in the copy: the instructor grades what the hashes cannot


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    prompt: str
    points: float
    topic: str
    explanation: str
    options: dict[str, str] = field(default_factory=dict)  # option id -> text, in bank order
    answer: Any = None  # single: id; multiple: frozenset of ids; truefalse: bool; numeric: float
    tolerance: float = 0.0
    range: tuple[float, float] | None = None
    accept: tuple[str, ...] = ()
    regex: str | None = None
    case_sensitive: bool = False
    hashed: HashedKey | None = None  # set on learner copies instead of the plain key
    line: int | None = None

    @property
    def has_key(self) -> bool:
        return self.hashed is None

    @property
    def bounds(self) -> tuple[float, float]:
        """The accepted interval of a numeric question."""
        if self.range is not None:
            return self.range
        return (self.answer - self.tolerance, self.answer + self.tolerance)


@dataclass(frozen=True)
class Quiz:
    id: str
    title: str
    pass_mark: float  # a fraction in (0, 1]
    questions: tuple[Question, ...]
    path: Path
    shuffle_questions: bool = False
    shuffle_options: bool = False
    draw: int | None = None
    description: str = ""
    learner_copy: bool = False

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)


@dataclass(frozen=True)
class BankProblem:
    path: Path
    where: str  # "line 12, question 'q04'" or "" for the whole file
    message: str
    line: int = 0  # for listing problems in file order

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.message}" if self.where else f"{self.path}: {self.message}"


# --------------------------------------------------------------------------------------------- reading YAML


def _read_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int], list[BankProblem]]:
    """The data, a map from each value's path (('questions', 3, 'answer')) to its 1-based line, and the
    problems YAML itself hides (duplicate keys, which PyYAML would silently resolve to the last one)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the quiz bank ({exc})") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)  # libyaml when present: 10x faster
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise BadConfig(path, where, f"not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    finally:
        loader.dispose()
    lines: dict[tuple[Any, ...], int] = {}
    problems: list[BankProblem] = []

    def walk(n: yaml.Node, at: tuple[Any, ...]) -> None:
        lines[at] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in n.value:
                key = key_node.value
                if key in seen:
                    line = key_node.start_mark.line + 1
                    problems.append(BankProblem(path, f"line {line}", f"duplicate key '{key}': keep one", line))
                seen.add(key)
                walk(value_node, (*at, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*at, i))

    if node is not None:
        walk(node, ())
    return data, lines, problems


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("schema.json")).read_text())


# --------------------------------------------------------------------------------------------- validation


class _Locator:
    """Turns a path inside the bank into "line 12, question 'q04'"."""

    def __init__(self, data: Any, lines: dict[tuple[Any, ...], int]) -> None:
        self.data, self.lines = data, lines

    def line(self, at: tuple[Any, ...]) -> int | None:
        for cut in range(len(at), -1, -1):
            if at[:cut] in self.lines:
                return self.lines[at[:cut]]
        return None

    def where(self, at: tuple[Any, ...]) -> str:
        parts = []
        line = self.line(at)
        if line:
            parts.append(f"line {line}")
        if len(at) >= 2 and at[0] == "questions" and isinstance(at[1], int):
            qid = _question_id(self.data, at[1])
            parts.append(f"question '{qid}'" if qid else f"question #{at[1] + 1}")
            rest = at[2:]
        else:
            rest = at
        if rest:
            parts.append(".".join(str(p) for p in rest))
        return ", ".join(parts)


def _question_id(data: Any, index: int) -> str | None:
    try:
        qid = data["questions"][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return qid if isinstance(qid, str) else None


def _schema_message(error: Any, data: Any) -> str:
    """jsonschema's wording, rewritten for the cases an author meets most."""
    v, value, instance = error.validator, error.validator_value, error.instance
    field_name = error.path[-1] if error.path else None
    if v == "type" and isinstance(instance, bool) and "string" in value:
        return (f"{'true' if instance else 'false'} where text was expected: YAML reads yes/no, on/off and "
                "true/false as booleans, so put this text in quotes")
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"missing required field '{missing}'"
    if v == "additionalProperties":
        extra = sorted(set(instance) - set(error.schema.get("properties", {})))
        return f"unknown field '{extra[0]}'" if extra else error.message
    if v == "enum" and field_name == "type":
        return f"unknown type {instance!r}; expected one of {', '.join(TYPES)}"
    if v == "exclusiveMinimum" and field_name == "points":
        return f"points must be positive, got {instance!r}"
    if v == "not" and isinstance(instance, dict):
        forbidden = [r["required"][0] for r in value.get("anyOf", []) if "required" in r]
        present = [k for k in forbidden if k in instance]
        qtype = TYPE_NAMES.get(instance.get("type"), "this")
        return f"field '{present[0] if present else '?'}' does not apply to a {qtype} question; remove it"
    if field_name == "pass_mark":
        return f"pass_mark must be a fraction in (0, 1] or a percentage like '70%', got {instance!r}"
    if isinstance(instance, dict) and instance.get("type") == "numeric" and v == "oneOf":
        return "a numeric question needs either 'answer' (with an optional 'tolerance') or 'range', not both"
    if isinstance(instance, dict) and instance.get("type") == "short" and v == "anyOf":
        return "a short-answer question needs 'accept' (a list of answers) or 'regex', or both"
    if field_name == "answer" and v in ("type", "minItems"):
        expected = {"single": "one option id (a string)", "multiple": "a non-empty list of option ids",
                    "truefalse": "true or false", "numeric": "a number"}
        at = tuple(error.absolute_path)
        question = data["questions"][at[1]] if len(at) >= 2 and at[0] == "questions" else {}
        qtype = question.get("type") if isinstance(question, dict) else None
        return f"'answer' must be {expected.get(qtype, value)}, got {instance!r}"
    if v == "pattern" and field_name == "id":
        return f"id {instance!r} must be letters, digits, '-', '_' or '.', starting with a letter or digit"
    return error.message


def _schema_problems(path: Path, data: Any, where: _Locator) -> list[BankProblem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in validator.iter_errors(data):
        at = tuple(error.absolute_path)
        problems.append(BankProblem(path, where.where(at), _schema_message(error, data), where.line(at) or 0))
    return problems


def _semantic_problems(path: Path, data: dict[str, Any], where: _Locator) -> list[BankProblem]:
    problems: list[BankProblem] = []

    def add(at: tuple[Any, ...], message: str) -> None:
        problems.append(BankProblem(path, where.where(at), message, where.line(at) or 0))

    stem = path.stem
    if data.get("id") != stem and not data.get("learner_copy"):
        add(("id",), f"the quiz id {data.get('id')!r} must match the file name ('{stem}')")
    seen: dict[str, int] = {}
    questions = data.get("questions") or []
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            continue
        at = ("questions", i)
        qid = q.get("id")
        if isinstance(qid, str):
            if qid in seen:
                add((*at, "id"), f"duplicate question id '{qid}' (first used by question #{seen[qid] + 1}); "
                                 "ids must be unique in a quiz")
            else:
                seen[qid] = i
        qtype, options, answer = q.get("type"), q.get("options"), q.get("answer")
        if qtype in ("single", "multiple") and isinstance(options, dict):
            picks = [answer] if qtype == "single" else (answer if isinstance(answer, list) else [])
            unknown = [a for a in picks if isinstance(a, str) and a not in options]
            if unknown:
                add((*at, "answer"), f"answer '{unknown[0]}' is not one of the options "
                                     f"({', '.join(map(str, options))})")
            if qtype == "multiple" and isinstance(answer, list) and len(set(answer)) != len(answer):
                add((*at, "answer"), "an option is listed twice in the answer")
        if qtype == "numeric":
            rng = q.get("range")
            if isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, (int, float)) for x in rng):
                if rng[0] > rng[1]:
                    add((*at, "range"), f"range must be [low, high] with low <= high, got {rng}")
            for key in ("answer", "tolerance"):
                value = q.get(key)
                if isinstance(value, float) and not math.isfinite(value):
                    add((*at, key), f"{key} must be a finite number, got {value}")
            if "tolerance" in q and "answer" not in q:
                add((*at, "tolerance"), "tolerance needs an 'answer' to be around; use 'range' alone instead")
        if qtype == "short":
            accept = q.get("accept") or []
            for j, text in enumerate(accept):
                if isinstance(text, (str, int, float)) and not normalize(str(text), True):
                    add((*at, "accept", j), "an accepted answer is empty once punctuation and spaces are removed")
            regex = q.get("regex")
            if isinstance(regex, str):
                try:
                    re.compile(regex)
                except re.error as exc:
                    add((*at, "regex"), f"regex does not compile ({exc})")
    draw = data.get("draw")
    if isinstance(draw, int) and isinstance(questions, list) and draw > len(questions):
        add(("draw",), f"draw {draw} is more than the {len(questions)} questions in the bank")
    return problems


def validate_bank(path: Path) -> list[BankProblem]:
    """Every problem in a bank or a learner copy (an empty list when it is valid)."""
    try:
        return _problems(path, *_read_yaml(path))
    except BadConfig as exc:  # not YAML at all: that is the one problem to report
        return [BankProblem(path, exc.where, exc.problem)]


def _problems(path: Path, data: Any, lines: dict[tuple[Any, ...], int], problems: list[BankProblem]
              ) -> list[BankProblem]:
    where = _Locator(data, lines)
    if isinstance(data, dict) and data.get("learner_copy"):
        try:
            _learner_quiz(path, data)
        except BadConfig as exc:
            return [BankProblem(path, exc.where, exc.problem)]
        return problems
    problems = problems + _schema_problems(path, data, where)
    if isinstance(data, dict):
        problems += _semantic_problems(path, data, where)
    return sorted(problems, key=lambda p: p.line)


# --------------------------------------------------------------------------------------------- loading


def pass_fraction(value: Any) -> float:
    if isinstance(value, str):
        return float(value.strip().rstrip("%").strip()) / 100.0
    return float(value)


def normalize(text: str, case_sensitive: bool = False) -> str:
    """The form short answers are compared in: punctuation and spacing do not count, case does not by default
    ("Infrastructure-as-code." == "infrastructure as code")."""
    import unicodedata

    text = unicodedata.normalize("NFKC", text)
    if not case_sensitive:
        text = text.casefold()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


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
        explanation=raw["explanation"].strip(),
        options={str(k): str(v) for k, v in (raw.get("options") or {}).items()},
        answer=answer if hashed is None else None,
        tolerance=float(raw.get("tolerance", 0.0)),
        range=(float(rng[0]), float(rng[1])) if rng else None,
        accept=tuple(str(a) for a in raw.get("accept", ())),
        regex=raw.get("regex"),
        case_sensitive=bool(raw.get("case_sensitive", False)),
        hashed=hashed,
        line=line,
    )


def _learner_quiz(path: Path, data: dict[str, Any]) -> Quiz:
    """A learner copy is generated (learner.py), so it gets a structural check, not the author's schema."""
    questions = []
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise BadConfig(path, "questions", "a learner copy needs a non-empty list of questions; regenerate it")
    for i, raw in enumerate(raw_questions):
        qid = raw.get("id") if isinstance(raw, dict) else None
        where = f"question '{qid}'" if qid else f"question #{i + 1}"
        if not isinstance(raw, dict):
            raise BadConfig(path, where, "expected a mapping; regenerate the learner copy")
        missing = [k for k in ("id", "type", "prompt", "points", "topic", "explanation", "salt") if k not in raw]
        if missing:
            raise BadConfig(path, where, f"missing field '{missing[0]}'; regenerate the learner copy")
        if raw["type"] not in TYPES:
            raise BadConfig(path, where, f"unknown type {raw['type']!r}; expected one of {', '.join(TYPES)}")
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
                description=str(data.get("description", "")), learner_copy=True)


def _build(path: Path, data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> Quiz:
    shuffle_q, shuffle_o = _shuffle_settings(data.get("shuffle"))
    questions = tuple(_question(q, lines.get(("questions", i))) for i, q in enumerate(data["questions"]))
    if not questions or any(q.type not in TYPES or not q.points > 0 for q in questions):
        raise ValueError("needs the schema check")
    return Quiz(id=data["id"], title=data["title"], pass_mark=pass_fraction(data["pass_mark"]),
                questions=questions, path=path, shuffle_questions=shuffle_q, shuffle_options=shuffle_o,
                draw=data.get("draw"), description=data.get("description", ""))


def load_quiz(path: Path, *, schema_check: bool = True) -> Quiz:
    """A validated quiz from a source bank or a learner copy; BadConfig names the first problem.

    `schema_check=False` is for taking a quiz: importing jsonschema costs seconds (its IRI format checker builds
    a grammar at import), so a bank that builds and passes the semantic checks is used as it is, and only a bank
    that fails them pays for the schema, to name the problem. `validate`, `grade` and CI check everything.
    """
    data, lines, yaml_problems = _read_yaml(path)
    if isinstance(data, dict) and data.get("learner_copy"):
        return _learner_quiz(path, data)
    if not schema_check and isinstance(data, dict):
        try:
            quiz = _build(path, data, lines)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            pass
        else:
            if not yaml_problems and not _semantic_problems(path, data, _Locator(data, lines)):
                return quiz
    problems = _problems(path, data, lines, yaml_problems)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more: run `autograder quiz validate {path}`)" if len(problems) > 1 else ""
        raise BadConfig(first.path, first.where, first.message + more)
    return _build(path, data, lines)


# --------------------------------------------------------------------------------------------- finding banks


def quizzes_dir(root: Path) -> Path:
    return root / "quizzes"


def bank_paths(root: Path) -> list[Path]:
    folder = quizzes_dir(root)
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES) if folder.is_dir() else []


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
