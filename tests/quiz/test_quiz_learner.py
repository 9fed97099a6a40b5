"""Learner copies: no key in any answer field, and self-check still works from the hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from quiz_support import BANKS, REFERENCE, REPO, SAMPLE_KEY

from autograder.quiz.bank import bank_paths, load_quiz, normalize, validate_bank
from autograder.quiz.grading import grade_answers, grade_question
from autograder.quiz.learner import learner_copy, write_learner_copies

KEY_FIELDS = ("answer", "accept", "regex", "tolerance", "range")
# What the learner is meant to see: prose, and the points (a numeric key may equal them by coincidence).
SHOWN_FIELDS = ("prompt", "explanation", "topic", "id", "type", "points", "outcomes")


def _key_values(q) -> list[Any]:
    """Every value that would give the key away for this question."""
    if q.type == "single":
        return [q.answer]
    if q.type == "multiple":
        return [sorted(q.answer), *q.answer]
    if q.type == "truefalse":
        return [q.answer, str(q.answer).lower()]
    if q.type == "numeric":
        values = [q.answer, q.tolerance or None, *(q.range or ())]
        return [v for v in values if v is not None]
    return [*q.accept, *(normalize(a) for a in q.accept), *([q.regex] if q.regex else [])]


def _leaves(value: Any, at: str):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{at}.{k}")
    elif isinstance(value, list):
        yield at, value  # a whole list can be a key too ([a, c])
        for i, v in enumerate(value):
            yield from _leaves(v, f"{at}[{i}]")
    else:
        yield at, value


@pytest.mark.parametrize("path", bank_paths(REPO), ids=lambda p: p.stem)
def test_no_field_of_a_learner_copy_holds_a_key_value(path: Path) -> None:
    quiz = load_quiz(path)
    copy = learner_copy(quiz)
    for q, item in zip(quiz.questions, copy["questions"], strict=True):
        assert item["id"] == q.id
        for field in KEY_FIELDS:
            assert field not in item, f"{q.id}: field {field!r} is in the learner copy"
        keys = _key_values(q)
        for name, value in item.items():
            if name in SHOWN_FIELDS:
                continue
            for at, leaf in _leaves(value, name):
                if name == "options" and at != "options":
                    continue  # option texts are shown to everyone; their ids are not the key
                for key in keys:
                    assert leaf != key or isinstance(leaf, bool) != isinstance(key, bool), (
                        f"{path.name}: question {q.id}: field {at} holds the key value {key!r}")
                    if isinstance(leaf, str) and isinstance(key, str) and len(key) > 2:
                        assert normalize(leaf) != normalize(key), f"{q.id}: field {at} holds {key!r}"


def test_options_map_ids_to_text_only(sample) -> None:
    item = learner_copy(sample)["questions"][0]
    assert item["options"] == {"a": "Apple", "b": "Banana split", "c": "Cherry"}
    assert set(item["key_hashes"]) == {"a", "b", "c"}
    assert len(set(item["key_hashes"].values())) == 3  # one digest per option, no telling which is right


def test_salts_differ_per_question(sample) -> None:
    salts = [item["salt"] for item in learner_copy(sample)["questions"]]
    assert len(set(salts)) == len(salts)


def _write_copy(quiz, tmp_path: Path) -> Path:
    path = tmp_path / "copies" / f"{quiz.id}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(learner_copy(quiz), sort_keys=False))
    return path


def test_self_check_from_a_learner_copy(sample, tmp_path: Path) -> None:
    copy = load_quiz(_write_copy(sample, tmp_path))
    assert copy.learner_copy and all(q.answer is None for q in copy.questions)
    result = grade_answers(copy, SAMPLE_KEY)
    by_id = {r.id: r.status for r in result.questions}
    # hashes check what they can: choices, true/false, exact numbers, accepted short answers
    for qid in ("pick-one", "pick-many", "yes-or-no", "exact-number", "words", "exact-case"):
        assert by_id[qid] == "correct", qid
    # tolerance, range and regex need the key: the instructor grades them
    for qid in ("near-number", "in-range", "pattern"):
        assert by_id[qid] == "pending", qid
    assert (result.score, result.max_score, result.pending_points) == (7, 7, 3)
    assert grade_question(copy.question("pick-many"), ["a"]).points == pytest.approx(0.5)  # partial credit
    assert grade_question(copy.question("pick-one"), "a").status == "wrong"
    assert grade_question(copy.question("exact-case"), "cmd").status == "wrong"
    assert grade_question(copy.question("words"), "IaC!").status == "correct"
    assert grade_question(copy.question("yes-or-no"), "maybe").status == "invalid"


def test_a_formative_reference_scores_full_marks_on_its_learner_copy(tmp_path: Path) -> None:
    source = load_quiz(BANKS / "lesson01.yaml")
    copy = load_quiz(_write_copy(source, tmp_path))
    key = {q.id: (sorted(q.answer) if q.type == "multiple" else q.answer) for q in source.questions}
    result = grade_answers(copy, key)
    assert (result.score, result.max_score, result.pending_points) == (len(key), len(key), 0)


def test_a_summative_learner_copy_checks_nothing(tmp_path: Path) -> None:
    copy = load_quiz(_write_copy(load_quiz(BANKS / "module01.yaml"), tmp_path))
    assert copy.summative and copy.learner_copy and len(copy.questions) == 50
    result = grade_answers(copy, yaml.safe_load(REFERENCE.read_text()))
    assert result.score == 0 and {r.status for r in result.questions} == {"pending"}


def test_write_learner_copies(workbook: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dist" / "quizzes"
    written = write_learner_copies(workbook, dest)
    assert sorted(p.name for p in written) == sorted(p.name for p in bank_paths(REPO))
    for path in written:
        assert validate_bank(path) == []
        assert load_quiz(path).learner_copy
        assert "learner copy" in path.read_text().splitlines()[0].lower()
        text = path.read_text()
        if path.stem in ("module01", "phase1"):
            assert "no answers, no explanations" in text
            items = yaml.safe_load(text)["questions"]
            assert all(set(item) <= {"id", "type", "topic", "points", "prompt", "options", "outcomes"} for item in items)
        else:
            assert "recoverable with effort" in text
    with pytest.raises(ValueError, match="source banks"):
        write_learner_copies(workbook, workbook / "quizzes")


# ------------------------------------------------------------------ an attacker with the learner copies


def _brute_force(item: dict) -> set[str]:
    """What a learner with the copy can recover for one question: sha256 over every option / true-false value
    with every salt-like string found in the item, against every digest-like string in it (the attack that
    recovered 69 of 70 keys before summative copies dropped their key material)."""
    import hashlib

    strings = [leaf for _, leaf in _leaves(item, "q") if isinstance(leaf, str)]
    digests = {s for s in strings if len(s) == 64 and all(c in "0123456789abcdef" for c in s)}
    salts = {s for s in strings if s not in digests} | {""}
    candidates = [f"{o}=1" for o in item.get("options", {})] + ["true", "false"]
    found = set()
    for salt in salts:
        for value in candidates:
            if hashlib.sha256(f"{salt}\x1f{item['id']}\x1f{value}".encode()).hexdigest() in digests:
                found.add(value)
    return found


def test_brute_force_over_every_learner_copy_recovers_no_summative_key(workbook: Path, tmp_path: Path) -> None:
    recovered = {"formative": 0, "summative": 0}
    for path in write_learner_copies(workbook, tmp_path / "dist"):
        data = yaml.safe_load(path.read_text())
        kind = data.get("assessment", "formative")
        for item in data["questions"]:
            recovered[kind] += bool(_brute_force(item))
    assert recovered["summative"] == 0
    assert recovered["formative"] > 20, "the attack works on formative copies (which say so), so it has teeth"


def test_a_summative_learner_copy_holds_no_explanation_text(workbook: Path, tmp_path: Path) -> None:
    import re

    copies = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}
    for quiz_id in ("module01", "phase1"):
        text = normalize(copies[quiz_id].read_text())
        source = load_quiz(BANKS / f"{quiz_id}.yaml")
        for q in source.questions:
            for sentence in re.split(r"(?<=[.:;])\s+", q.explanation):
                words = normalize(sentence)
                if len(words.split()) >= 5:
                    assert words not in text, f"{quiz_id}: explanation of {q.id} is in the learner copy: {sentence}"
