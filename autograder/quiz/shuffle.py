"""The quiz a learner sees: questions drawn and shuffled, options shuffled, all seeded per learner.

A bank may draw by topic (`draw_by_topic`): each learner gets the stated number of questions from each topic's
pool, so every learner is asked about the same things, not the same questions.

The seed is a hash of the quiz id and the learner's id, so the same learner always sees the same quiz on any
machine (Python's `hash()` is salted per process, so it is not used), and an instructor can rebuild it to grade
a drawn quiz.
"""

from __future__ import annotations

import getpass
import hashlib
import random
from dataclasses import dataclass

from autograder.quiz.bank import Question, Quiz


@dataclass(frozen=True)
class Presented:
    question: Question
    options: tuple[str, ...]  # option ids in the order shown (empty for non-choice questions)


def learner_seed(quiz_id: str, learner: str) -> int:
    digest = hashlib.sha256(f"{quiz_id}\n{learner.strip().casefold()}".encode()).hexdigest()
    return int(digest[:16], 16)


def default_learner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "learner"


def arrange(quiz: Quiz, *, learner: str | None = None, seed: int | None = None) -> list[Presented]:
    """The questions in the order this learner sees them. `seed` overrides the learner-derived seed."""
    rng = random.Random(seed if seed is not None else learner_seed(quiz.id, learner or default_learner()))
    questions = list(quiz.questions)
    if quiz.draw_by_topic:  # stratified: every learner gets the same number of questions on each topic
        drawn: list[Question] = []
        for topic, n in quiz.draw_by_topic:
            pool = [q for q in questions if q.topic == topic]
            drawn.extend(rng.sample(pool, min(n, len(pool))))
        questions = drawn
        order = {q.id: i for i, q in enumerate(quiz.questions)}
        questions.sort(key=lambda q: order[q.id])
        if quiz.shuffle_questions:
            rng.shuffle(questions)
    elif quiz.draw and quiz.draw < len(questions):
        questions = rng.sample(questions, quiz.draw)
        if not quiz.shuffle_questions:
            order = {q.id: i for i, q in enumerate(quiz.questions)}
            questions.sort(key=lambda q: order[q.id])
    elif quiz.shuffle_questions:
        rng.shuffle(questions)
    out = []
    for q in questions:
        options = list(q.options)
        if quiz.shuffle_options and q.type in ("single", "multiple"):
            rng.shuffle(options)
        out.append(Presented(q, tuple(options)))
    return out


def drawn_ids(quiz: Quiz, learner: str) -> set[str] | None:
    """The ids of the questions this learner was given, or None when everyone gets every question."""
    if not quiz.draw_by_topic and (not quiz.draw or quiz.draw >= len(quiz.questions)):
        return None
    return {p.question.id for p in arrange(quiz, learner=learner)}
