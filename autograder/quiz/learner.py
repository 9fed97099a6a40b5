"""Learner copies of the banks: everything but the key, which becomes salted SHA-256 digests.

A learner copy lets `autograder quiz take` and `show_quiz()` check an answer (hash it, compare) without the
key being in the file. What the digests cover:

- single/multiple: one digest per option of "<id>=1" (correct) or "<id>=0", so partial credit still works;
- true/false and numeric questions with an exact answer: a digest of the answer;
- short answers: a digest of each normalized accepted answer;
- numeric questions with a tolerance or range, and short answers' regexes, cannot be checked from digests:
  the copy says `graded_by: instructor` and self-check reports them as pending.

Digests keep the key out of sight, not out of reach: anyone with the copy can hash each of four options and
compare. That is acceptable only for formative quizzes (self-check), and their banner says so. A summative bank
(`assessment: summative`) gets a copy with no key material at all: no digests, no salts, no explanations (which
often state the answer). Learners take it with `quiz take --exam`, which records their answers for the
instructor, who grades them from the source bank (`quiz grade`) and releases the explanations with the feedback.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

import yaml

from autograder.quiz.bank import LEARNER_FORMAT, Question, Quiz, bank_paths, load_quiz, normalize

HEADER = (
    "# Learner copy of the quiz bank {source}, written by `.venv/bin/autograder release --student-dist`.\n"
    "# A self-check quiz: the answers are salted hashes (recoverable with effort; it is practice, not a grade).\n"
    "# Take it with `.venv/bin/autograder quiz take {id}` or show_quiz(\"{id}\").\n"
)
SUMMATIVE_HEADER = (
    "# Learner copy of the graded quiz {source}, written by `.venv/bin/autograder release --student-dist`.\n"
    "# It holds the questions only: no answers, no explanations. Take it once with\n"
    "# `.venv/bin/autograder quiz take {id} --exam --ticket YOUR-TICKET-FILE` (or `make exam EXAM={id}\n"
    "# TICKET=...`), with the ticket your instructor gave you; your instructor grades the recorded answers.\n"
)


def digest(salt: str, qid: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x1f{qid}\x1f{value}".encode()).hexdigest()


def canonical_number(value: float) -> str:
    return repr(float(value))


def _hashed_fields(q: Question, salt: str) -> dict[str, Any]:
    if q.type in ("single", "multiple"):
        correct = {q.answer} if q.type == "single" else set(q.answer)
        return {"key_hashes": {o: digest(salt, q.id, f"{o}={int(o in correct)}") for o in q.options}}
    if q.type == "truefalse":
        return {"key_hash": digest(salt, q.id, str(bool(q.answer)).lower())}
    if q.type == "numeric":
        if q.range is None and q.tolerance == 0:
            return {"key_hash": digest(salt, q.id, canonical_number(q.answer))}
        return {"graded_by": "instructor"}
    fields: dict[str, Any] = {}
    if q.accept:
        fields["accept_hashes"] = sorted({digest(salt, q.id, normalize(a, q.case_sensitive)) for a in q.accept})
    if q.case_sensitive:
        fields["case_sensitive"] = True
    if q.regex:
        fields["graded_by"] = "instructor"
    return fields


def learner_copy(quiz: Quiz) -> dict[str, Any]:
    """The learner copy of a source quiz as plain data (what the YAML file holds)."""
    if quiz.learner_copy:
        raise ValueError(f"{quiz.path} is already a learner copy")
    data: dict[str, Any] = {"id": quiz.id, "title": quiz.title, "learner_copy": LEARNER_FORMAT}
    if quiz.description:
        data["description"] = quiz.description
    data["pass_mark"] = quiz.pass_mark
    if quiz.shuffle_questions or quiz.shuffle_options:
        data["shuffle"] = {"questions": quiz.shuffle_questions, "options": quiz.shuffle_options}
    if quiz.draw:
        data["draw"] = quiz.draw
    if quiz.draw_by_topic:
        data["draw_by_topic"] = dict(quiz.draw_by_topic)
    if quiz.required_outcomes:  # the draw needs them; a class copy's outcomes.yaml is not read for it
        data["required_outcomes"] = list(quiz.required_outcomes)
    if quiz.summative:
        data["assessment"] = "summative"
    questions = []
    for q in quiz.questions:
        if quiz.summative:
            item = {"id": q.id, "type": q.type, "topic": q.topic, "points": q.points, "prompt": q.prompt}
            if q.options:
                item["options"] = dict(q.options)
            if q.outcomes:  # what it asks about, for `quiz coverage` in a class copy: not key material
                item["outcomes"] = list(q.outcomes)
            questions.append(item)
            continue
        salt = secrets.token_hex(8)
        item: dict[str, Any] = {"id": q.id, "type": q.type, "topic": q.topic, "points": q.points,
                                "prompt": q.prompt}
        if q.options:
            item["options"] = dict(q.options)
        if q.outcomes:
            item["outcomes"] = list(q.outcomes)
        item["explanation"] = q.explanation
        item["salt"] = salt
        item.update(_hashed_fields(q, salt))
        questions.append(item)
    data["questions"] = questions
    return data


def write_learner_copies(root: Path, dest: Path) -> list[Path]:
    """Write a learner copy of every bank in <root>/quizzes/ into `dest` (the student distribution's quizzes/
    folder); returns the files written. Refuses to write over the source banks."""
    sources = bank_paths(root)
    dest.mkdir(parents=True, exist_ok=True)
    if dest.resolve() == (root / "quizzes").resolve():
        raise ValueError(f"{dest} holds the source banks: write learner copies somewhere else")
    written = []
    for path in sources:
        quiz = load_quiz(path)
        target = dest / f"{quiz.id}.yaml"
        if quiz.learner_copy:  # releasing from a student distribution: the copy is already safe
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
            written.append(target)
            continue
        text = (SUMMATIVE_HEADER if quiz.summative else HEADER).format(source=f"quizzes/{path.name}", id=quiz.id)
        text += yaml.safe_dump(learner_copy(quiz), sort_keys=False, allow_unicode=True, width=110)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
