"""How a bank is checked: YAML read with line numbers, the JSON Schema (schema.json), then the checks a schema
cannot make (unique ids, an answer that is one of the options, a regex that compiles, a draw no larger than the
bank). Every problem names the file, the line, the question id and what was expected.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError
from autograder.quiz.model import TYPE_NAMES, TYPES, normalize


@dataclass(frozen=True)
class BankProblem:
    path: Path
    where: str  # "line 12, question 'q04'" or "" for the whole file
    message: str
    line: int = 0  # for listing problems in file order

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.message}" if self.where else f"{self.path}: {self.message}"


# --------------------------------------------------------------------------------------------- reading YAML


def read_yaml(path: Path) -> tuple[Any, dict[tuple[Any, ...], int], list[BankProblem]]:
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


class Locator:
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


def schema_problems(path: Path, data: Any, where: Locator) -> list[BankProblem]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for error in validator.iter_errors(data):
        at = tuple(error.absolute_path)
        problems.append(BankProblem(path, where.where(at), _schema_message(error, data), where.line(at) or 0))
    return problems


def semantic_problems(path: Path, data: dict[str, Any], where: Locator) -> list[BankProblem]:
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
            numbers = isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, (int, float)) for x in rng)
            if numbers and rng[0] > rng[1]:
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
    by_topic = data.get("draw_by_topic")
    if isinstance(by_topic, dict) and isinstance(questions, list):
        counts: dict[str, int] = {}
        for q in questions:
            if isinstance(q, dict) and isinstance(q.get("topic"), str):
                counts[q["topic"]] = counts.get(q["topic"], 0) + 1
        for topic in counts:
            if topic not in by_topic:
                add(("draw_by_topic",), f"topic '{topic}' has questions but no count here: list every topic")
        for topic, n in by_topic.items():
            if isinstance(n, int) and n > counts.get(topic, 0):
                add(("draw_by_topic", topic), f"draws {n} of topic '{topic}', which has {counts.get(topic, 0)} "
                                              "question(s)")
        total = sum(n for n in by_topic.values() if isinstance(n, int))
        if draw != total:
            add(("draw_by_topic",), f"the counts add up to {total} but draw is {draw!r}: set draw: {total}")
    units = data.get("units")
    if isinstance(units, list) and units:
        defined = outcome_units(path.parent)
        if defined is None:
            add(("units",), f"units need {path.parent / 'outcomes.yaml'} to say which outcomes they hold")
        else:
            for j, unit in enumerate(units):
                ids = [o for o, u in defined.items() if u == str(unit)]
                if not ids:
                    add(("units", j), f"no outcome of unit {unit!r} in outcomes.yaml")
                for oid in ids:
                    if not any(isinstance(q, dict) and oid in (q.get("outcomes") or []) for q in questions):
                        add(("units", j), f"outcome '{oid}' of unit {unit} has no question in this bank: tag one "
                                          "(every learner is asked each outcome of the bank's units)")
    known = known_outcomes(path.parent)
    if known is not None:
        for i, q in enumerate(questions if isinstance(questions, list) else []):
            for j, oid in enumerate(q.get("outcomes") or [] if isinstance(q, dict) else []):
                if isinstance(oid, str) and oid not in known:
                    add(("questions", i, "outcomes", j), f"unknown outcome id '{oid}' (defined ones are in "
                                                         f"{path.parent / 'outcomes.yaml'})")
    return problems


def known_outcomes(folder: Path) -> set[str] | None:
    """The outcome ids defined in <folder>/outcomes.yaml, or None when there is no such file."""
    units = outcome_units(folder)
    return None if units is None else set(units)


def outcome_units(folder: Path) -> dict[str, str] | None:
    """outcome id -> its unit (as text: "1", "habit"), in file order, from <folder>/outcomes.yaml; None when
    there is no such file."""
    path = folder / "outcomes.yaml"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    outcomes = data.get("outcomes") if isinstance(data, dict) else None
    if not isinstance(outcomes, list):
        return None
    return {str(o["id"]): str(o.get("unit", "")) for o in outcomes if isinstance(o, dict) and "id" in o}


def collect_problems(path: Path, data: Any, lines: dict[tuple[Any, ...], int], problems: list[BankProblem]
                     ) -> list[BankProblem]:
    """All problems of a source bank, in file order: YAML's, the schema's, then the semantic ones."""
    where = Locator(data, lines)
    problems = problems + schema_problems(path, data, where)
    if isinstance(data, dict):
        problems += semantic_problems(path, data, where)
    return sorted(problems, key=lambda p: p.line)
