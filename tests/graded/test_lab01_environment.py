"""lab01-environment's graders have teeth: its reference and every known-bad sample of tests/samples/lab01-environment/ graded in one
real `autograder grade` batch, each scoring exactly the points its YAML states (tests/graded/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from graded_samples import (
    REFERENCE,
    assert_scores_exactly,
    build_submission,
    lab_source,
    load_samples,
    points_by_test,
    sample_names,
)

from autograder.grading.engine import grade_class
from mlinfra.base.results import Outcome

pytestmark = pytest.mark.slow

LAB = "lab01-environment"


@pytest.mark.parametrize("sample", sample_names(LAB))
def test_sample_scores_exactly(graded: dict[str, Outcome], sample: str) -> None:
    assert_scores_exactly(graded[LAB], LAB, sample)


def test_grades_csv_and_feedback_written(graded: dict[str, Outcome]) -> None:
    batch = graded[LAB]
    out = Path(batch.data["out_dir"])
    header = (out / "grades.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["student", "status", "score", "max_score"] and set(batch.data["tests"]) <= set(header)
    assert (out / "feedback" / f"{REFERENCE}.html").is_file(), "a feedback page per graded student"
    assert (out / "summary.json").is_file()


def test_regrading_gives_the_same_grades(tmp_path: Path) -> None:
    """Two batches over the same submissions, in fresh output folders, agree student by student."""
    source = lab_source(LAB)
    subs = tmp_path / "submissions"
    build_submission(None, source, subs / "ada")
    partly = next(s for s in load_samples(LAB) if s.name == "partly-done")
    build_submission(partly, source, subs / "bob")
    first = grade_class(source, subs, tmp_path / "first", workers=2)
    second = grade_class(source, subs, tmp_path / "first", workers=2)  # same --out: regraded from scratch
    assert [(s.subject, points_by_test(s), s.status) for s in first.parts] == [
        (s.subject, points_by_test(s), s.status) for s in second.parts
    ]
    assert {s.subject: s.score for s in second.parts} == {"ada": 10.0, "bob": 3.0}
