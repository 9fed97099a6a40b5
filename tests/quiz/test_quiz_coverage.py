"""`autograder quiz coverage`: every learning outcome is asked by at least 2 summative questions and graded by a
lab, read from the tags in lessons, labs and banks; the check fails when a tag goes missing."""

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

OUTCOMES = ["u1-infra-lifecycle", "u1-environment", "u1-frameworks", "u1-cloud", "u1-serving", "u1-docker", "u1-api",
            "u2-lifecycle", "u2-airflow", "u2-pytorch-training", "u2-config-driven", "habit-idempotency",
            "habit-date-partitions", "habit-config-over-code", "habit-explicit-io"]


def test_the_course_defines_the_eleven_outcomes_and_four_habits() -> None:
    assert [o["id"] for o in load_outcomes(REPO)] == OUTCOMES


def test_every_outcome_has_two_summative_questions_and_a_graded_lab() -> None:
    result = coverage(REPO)
    short = [f"{c.name}: {c.message}" for c in result.checks if not c.passed]
    assert short == [], short
    rows = {r["outcome"]: r for r in result.data["outcomes"]}
    assert all(len(rows[o]["questions"]) >= MIN_QUESTIONS and rows[o]["labs"] for o in OUTCOMES)
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
    for bank in ("module01.yaml", "phase1.yaml"):
        _untag(course / "quizzes" / bank, "u1-cloud")
    text = (course / "quizzes" / "module01.yaml").read_text()
    text = text.replace("outcomes: []", "outcomes: [u1-docker]")
    (course / "quizzes" / "module01.yaml").write_text(text)
    result = coverage(course)
    assert [c.name for c in result.checks if not c.passed] == ["u1-cloud"]
    assert "0 summative question(s), needs 2" in result.checks[3].message
    assert main(["quiz", "coverage"]) == 1
    assert "u1-cloud: 0 summative question(s)" in capsys.readouterr().out


def test_an_outcome_without_a_graded_lab_fails_and_unknown_tags_are_named(course: Path) -> None:
    manifest = course / "solutions" / "phase1-lab2-pytorch-training" / "lab.yaml"
    manifest.write_text(manifest.read_text().replace("outcomes: [u2-pytorch-training]", "outcomes: [u2-pytorch]"))
    result = coverage(course)
    failed = {c.name: c.message for c in result.checks if not c.passed}
    assert "no graded lab" in failed["u2-pytorch-training"]
    assert "tag u2-pytorch" in failed and any("unknown outcome id 'u2-pytorch'" in n for n in result.notes)
