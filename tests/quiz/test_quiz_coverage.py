"""`autograder quiz coverage`: every learning outcome is asked by at least 2 summative questions, graded by a lab
(unless marked `lab: false`) and asked of every learner by a graded bank's draw, read from the tags in lessons,
labs and banks; the check fails when a tag goes missing or a bank stops asking an outcome of everyone."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from quiz_support import REPO

from autograder.cli import main
from autograder.quiz.coverage import MIN_QUESTIONS, coverage, load_outcomes

OUTCOMES = ["u1-infra-role", "u1-mlops-fundamentals", "u1-infra-lifecycle", "u1-environment", "u1-frameworks",
            "u1-cloud", "u1-serving", "u1-docker", "u1-api", "u1-careers", "u2-lifecycle", "u2-airflow",
            "u2-orchestration", "u2-pytorch-training", "u2-config-driven", "habit-idempotency",
            "habit-date-partitions", "habit-config-over-code", "habit-explicit-io"]
SEED_OUTCOMES = {"u1-infra-role": "role of infrastructure", "u1-mlops-fundamentals": "MLOps fundamentals",
                 "u2-orchestration": "orchestration from computation"}


def test_the_course_defines_fifteen_outcomes_and_four_habits() -> None:
    outcomes = {o["id"]: o for o in load_outcomes(REPO)}
    assert list(outcomes) == OUTCOMES
    for oid, words in SEED_OUTCOMES.items():  # the seed outcomes that had no id of their own
        assert words.lower() in outcomes[oid]["text"].lower()


def test_every_outcome_has_two_summative_questions_and_a_graded_lab() -> None:
    result = coverage(REPO)
    short = [f"{c.name}: {c.message}" for c in result.checks if not c.passed]
    assert short == [], short
    rows = {r["outcome"]: r for r in result.data["outcomes"]}
    assert all(len(rows[o]["questions"]) >= MIN_QUESTIONS and (rows[o]["labs"] or not rows[o]["lab_expected"])
               for o in OUTCOMES)
    assert all(rows[o]["per_learner_min"] >= 1 for o in OUTCOMES)
    assert rows["u1-frameworks"]["labs"] == ["lab03-frameworks"]
    assert "02-mlops-and-tooling/05-four-habits.ipynb" in rows["habit-idempotency"]["lessons"]


def test_the_frameworks_beyond_pytorch_are_asked() -> None:
    text = (REPO / "quizzes" / "module01.yaml").read_text()
    for name in ("Keras 3", "ONNX Runtime", "Hugging Face", "TensorFlow"):
        assert name in text, f"module01 asks nothing about {name}"


def test_coverage_cli_prints_the_table_and_json(capsys) -> None:
    assert main(["quiz", "coverage", "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert "u2-config-driven" in captured.err and "every outcome has a graded lab" in captured.err
    assert "per learner" in captured.err and "each of 200 simulated learners is asked every outcome" in captured.err
    data = json.loads(captured.out)
    assert data["status"] == "completed" and len(data["checks"]) == len(OUTCOMES)


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the course's tags: the banks, the lessons' metadata and every lab.yaml (with its files)."""
    root = tmp_path / "course"
    shutil.copytree(REPO / "quizzes", root / "quizzes")
    for nb in (REPO / "modules").rglob("*.ipynb"):
        meta = json.loads(nb.read_text())["metadata"]
        target = root / nb.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"cells": [], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))
    for manifest in (REPO / "solutions").glob("*/lab.yaml"):
        lab = root / "solutions" / manifest.parent.name
        lab.mkdir(parents=True)
        shutil.copyfile(manifest, lab / "lab.yaml")
        for rel in yaml.safe_load(manifest.read_text()).get("editable") or []:
            (lab / rel).parent.mkdir(parents=True, exist_ok=True)
            (lab / rel).write_text("")
    for marker in ("pyproject.toml", "Makefile"):
        (root / marker).write_text("")
    monkeypatch.setenv("WORKBOOK_ROOT", str(root))
    return root


def _untag(bank: Path, outcome: str) -> None:
    text = bank.read_text()
    bank.write_text(re.sub(rf"(outcomes: \[[^\]]*?)\b{outcome}\b,? ?", r"\1", text).replace(", ]", "]"))


def test_an_outcome_below_two_questions_fails(course: Path, capsys) -> None:
    assert coverage(course).passed
    bank = course / "quizzes" / "module01.yaml"
    first, *rest = bank.read_text().split("outcomes: [u1-cloud]")  # the first question keeps its tag
    bank.write_text(first + "outcomes: [u1-cloud]" + "outcomes: [u1-docker]".join(rest).replace(
        "[u1-infra-role, u1-cloud]", "[u1-infra-role]"))
    result = coverage(course)
    assert [c.name for c in result.checks if not c.passed] == ["u1-cloud"]
    assert "1 summative question(s), needs 2" in result.checks[OUTCOMES.index("u1-cloud")].message
    assert main(["quiz", "coverage"]) == 1
    assert "u1-cloud: 1 summative question(s)" in capsys.readouterr().out


def test_an_outcome_no_graded_bank_asks_of_every_learner_fails(course: Path, capsys) -> None:
    bank = course / "quizzes" / "phase1.yaml"
    bank.write_text(bank.read_text().replace("units: [2, habit]", "units: [2]"))
    result = coverage(course)
    failed = {c.name: c.message for c in result.checks if not c.passed}
    assert sorted(failed) == sorted(o for o in OUTCOMES if o.startswith("habit-"))
    assert all("no summative bank asks it of every learner" in m for m in failed.values())
    rows = {r["outcome"]: r for r in result.data["outcomes"]}
    assert rows["u2-airflow"]["per_learner_min"] >= 1 and rows["habit-idempotency"]["per_learner_min"] is None


@pytest.mark.parametrize("quiz_id", ["module01", "phase1"])
def test_every_learners_draw_asks_every_outcome_of_the_banks_units(quiz_id: str) -> None:
    from autograder.quiz.bank import load_quiz
    from autograder.quiz.shuffle import arrange

    quiz = load_quiz(REPO / "quizzes" / f"{quiz_id}.yaml")
    units = {"module01": {"1"}, "phase1": {"2", "habit"}}[quiz_id]
    assert set(quiz.required_outcomes) == {o["id"] for o in load_outcomes(REPO) if o["unit"] in units}
    for i in range(300):  # learner ids and ticket nonces the lint and coverage simulations never used
        asked = arrange(quiz, learner=f"holdout-{i}", nonce=f"{i:032x}")
        tags = {oid for p in asked for oid in p.question.outcomes}
        assert set(quiz.required_outcomes) <= tags, (i, set(quiz.required_outcomes) - tags)
        assert len(asked) == quiz.asked
        if quiz_id == "module01":
            assert any(p.question.topic == "tensorflow" for p in asked), "TensorFlow is asked of every learner"
            assert any("u1-careers" in p.question.outcomes for p in asked)


def test_a_draw_that_cannot_ask_every_outcome_is_named(tmp_path: Path) -> None:
    from autograder.errors import BadConfig
    from autograder.quiz.bank import load_quiz
    from autograder.quiz.shuffle import arrange

    folder = tmp_path / "quizzes"
    shutil.copytree(REPO / "quizzes", folder)
    bank = folder / "phase1.yaml"
    # three habits, one habit question per learner, and no other topic's question asks about them
    text = bank.read_text().replace("{lifecycle: 2, airflow: 3, training: 2, configuration: 2, habits: 3}",
                                    "{lifecycle: 2, airflow: 5, training: 2, configuration: 2, habits: 1}")
    bank.write_text(text.replace("[u2-airflow, habit-date-partitions]", "[u2-airflow]").replace(
        "[u2-airflow, habit-explicit-io]", "[u2-airflow]"))
    quiz = load_quiz(bank, schema_check=False)
    with pytest.raises(BadConfig, match="no draw within the topic counts asks every outcome"):
        arrange(quiz, learner="ada")


def test_an_outcome_without_a_graded_lab_fails_and_unknown_tags_are_named(course: Path) -> None:
    manifest = course / "solutions" / "phase1-lab2-pytorch-training" / "lab.yaml"
    manifest.write_text(manifest.read_text().replace("outcomes: [u2-pytorch-training]", "outcomes: [u2-pytorch]"))
    result = coverage(course)
    failed = {c.name: c.message for c in result.checks if not c.passed}
    assert "no graded lab" in failed["u2-pytorch-training"]
    assert "tag u2-pytorch" in failed and any("unknown outcome id 'u2-pytorch'" in n for n in result.notes)
