"""The quiz a learner sees: questions drawn and shuffled, options shuffled, all seeded per learner.

A bank may draw by topic (`draw_by_topic`): each learner gets the stated number of questions from each topic's
pool, so every learner is asked about the same things, not the same questions. A bank that names the outcome
units it assesses (`units:`) also gets, for every learner, at least one question on each outcome of those units
(quizzes/outcomes.yaml): the draw first picks, rarest outcome first, one question for each outcome not yet asked
(within the topic counts), then fills each topic's count at random.

The seed is a hash of the quiz id, the learner's id and, for an exam, the nonce of the learner's ticket
(ticket.py), so the same learner and ticket always give the same quiz on any machine (Python's `hash()` is salted
per process, so it is not used), the instructor rebuilds it to grade, and nobody computes a draw from a learner
id alone.
"""

from __future__ import annotations

import getpass
import hashlib
import random
from dataclasses import dataclass

from autograder.errors import BadConfig
from autograder.quiz.bank import Question, Quiz

ATTEMPTS = 200  # draws tried, each from the same seeded stream, before a bank is called unable to cover


@dataclass(frozen=True)
class Presented:
    question: Question
    options: tuple[str, ...]  # option ids in the order shown (empty for non-choice questions)


def learner_seed(quiz_id: str, learner: str, nonce: str = "") -> int:
    text = f"{quiz_id}\n{learner.strip().casefold()}" + (f"\n{nonce}" if nonce else "")
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def default_learner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "learner"


def draws(quiz: Quiz) -> bool:
    """Whether a learner is given a subset of the bank (else everyone gets every question)."""
    return bool(quiz.draw_by_topic) or bool(quiz.draw and quiz.draw < len(quiz.questions))


def _covering_draw(quiz: Quiz, rng: random.Random) -> list[Question] | None:
    """One try at a draw that honours the topic counts and asks every required outcome; None when it failed."""
    questions = list(quiz.questions)
    quota: dict[str, int] | None = dict(quiz.draw_by_topic) if quiz.draw_by_topic else None
    total = sum(quota.values()) if quota is not None else (quiz.draw or len(questions))
    chosen: list[Question] = []
    covered: set[str] = set()

    def room(q: Question) -> bool:
        return q not in chosen and (quota.get(q.topic, 0) > 0 if quota is not None else len(chosen) < total)

    pools = {o: [q for q in questions if o in q.outcomes] for o in quiz.required_outcomes}
    order = sorted(quiz.required_outcomes, key=lambda o: (len(pools[o]), rng.random()))
    for oid in order:
        if oid in covered:
            continue
        candidates = [q for q in pools[oid] if room(q)]
        if not candidates:
            return None
        pick = rng.choice(candidates)
        chosen.append(pick)
        covered.update(pick.outcomes)
        if quota is not None:
            quota[pick.topic] -= 1
    if quota is not None:
        for topic, _n in quiz.draw_by_topic:
            pool = [q for q in questions if q.topic == topic and q not in chosen]
            chosen.extend(rng.sample(pool, min(quota[topic], len(pool))))
    else:
        rest = [q for q in questions if q not in chosen]
        chosen.extend(rng.sample(rest, max(0, min(total - len(chosen), len(rest)))))
    return chosen


def draw_questions(quiz: Quiz, rng: random.Random) -> list[Question]:
    """This learner's questions in bank order (the whole bank when the bank does not draw)."""
    if not draws(quiz) and not quiz.required_outcomes:
        return list(quiz.questions)
    for _ in range(ATTEMPTS):
        chosen = _covering_draw(quiz, rng)
        if chosen is not None:
            order = {q.id: i for i, q in enumerate(quiz.questions)}
            return sorted(chosen, key=lambda q: order[q.id])
    raise BadConfig(quiz.path, "draw_by_topic", "no draw within the topic counts asks every outcome of the units "
                    f"{', '.join(quiz.required_outcomes)}: tag more questions or raise a topic's count "
                    f"(`.venv/bin/autograder quiz coverage` shows the pool per outcome)")


def arrange(quiz: Quiz, *, learner: str | None = None, seed: int | None = None, nonce: str = ""
            ) -> list[Presented]:
    """The questions in the order this learner sees them. `seed` overrides the learner-derived seed; `nonce` is
    the exam ticket's."""
    rng = random.Random(seed if seed is not None else learner_seed(quiz.id, learner or default_learner(), nonce))
    questions = draw_questions(quiz, rng)
    if quiz.shuffle_questions:
        rng.shuffle(questions)
    out = []
    for q in questions:
        options = list(q.options)
        if quiz.shuffle_options and q.type in ("single", "multiple"):
            rng.shuffle(options)
        out.append(Presented(q, tuple(options)))
    return out


def drawn_ids(quiz: Quiz, learner: str, nonce: str = "") -> set[str] | None:
    """The ids of the questions this learner was given, or None when everyone gets every question."""
    if not draws(quiz):
        return None
    return {p.question.id for p in arrange(quiz, learner=learner, nonce=nonce)}
