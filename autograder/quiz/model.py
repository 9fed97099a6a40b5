"""The quiz data model: a bank's questions and keys as the rest of the package sees them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TYPES = ("single", "multiple", "truefalse", "numeric", "short")
TYPE_NAMES = {
    "single": "single choice",
    "multiple": "multiple select",
    "truefalse": "true/false",
    "numeric": "numeric",
    "short": "short answer",
}
LEARNER_FORMAT = 1  # `learner_copy:` value written by learner.py
FORMATIVE, SUMMATIVE = "formative", "summative"  # a bank's `assessment:` (docs/quizzes.md)
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
    outcomes: tuple[str, ...] = ()  # learning-outcome ids (quizzes/outcomes.yaml) this question asks about

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
    assessment: str = FORMATIVE
    draw_by_topic: tuple[tuple[str, int], ...] = ()  # a stratified draw: (topic, how many) in bank order
    units: tuple[str, ...] = ()  # the outcome units this bank assesses (`units:`, quizzes/outcomes.yaml)
    required_outcomes: tuple[str, ...] = ()  # their outcome ids: every learner's draw asks each at least once

    @property
    def summative(self) -> bool:
        return self.assessment == SUMMATIVE

    @property
    def asked(self) -> int:
        """How many questions one learner is given."""
        return self.draw if self.draw and self.draw < len(self.questions) else len(self.questions)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)

    def question(self, qid: str) -> Question | None:
        return next((q for q in self.questions if q.id == qid), None)


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
