"""The graders' teeth: for every lab, the reference scores full marks and each known-bad sample scores exactly
the points its YAML states, test by test, in one real `autograder grade` batch per lab (nbgrader, hidden tests
restored, a fresh sandboxed kernel per student)."""

from __future__ import annotations

from pathlib import Path

import pytest
from graded_samples import REFERENCE, Sample, build_submission, lab_source, labs_with_samples, load_samples

from autograder.grading.engine import grade_class
from mlinfra.base.results import Outcome

pytestmark = pytest.mark.slow

CASES = [(lab, REFERENCE) for lab in labs_with_samples()] + [
    (lab, s.name) for lab in labs_with_samples() for s in load_samples(lab)
]


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Grades each lab's whole class once, on first use."""

    class GradedOnFirstUse(dict):
        def __missing__(self, lab: str) -> Outcome:
            source = lab_source(lab)
            root = tmp_path_factory.mktemp(lab)
            subs = root / "submissions"
            build_submission(None, source, subs / REFERENCE)
            for sample in load_samples(lab):
                build_submission(sample, source, subs / sample.name)
            # Deploy checks cost seconds to minutes a student (a TorchServe start, an image build): here the engines
            # are hidden, so each scores 0 as skipped; the runs with the engine present are few, in tests/serving_labs
            # and tests/docker (docs/deploy-checks.md).
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("AUTOGRADER_HIDE_ENGINES", "java,container")
                self[lab] = grade_class(source, subs, root / "out", workers=2)
            return self[lab]

    return GradedOnFirstUse()


def _student(batch: Outcome, name: str) -> Outcome:
    matches = [s for s in batch.parts if s.subject == name]
    assert matches, f"{name} was not graded; graded: {[s.subject for s in batch.parts]}"
    return matches[0]


def _points(student: Outcome) -> dict[str, float]:
    return {c.name: c.points for c in student.checks}


def _reason(student: Outcome) -> str:
    return "; ".join([*student.data.get("flags", []), *student.notes])


@pytest.mark.parametrize(("lab", "sample"), CASES, ids=[f"{lab}/{name}" for lab, name in CASES])
def test_sample_scores_exactly(graded: dict[str, Outcome], lab: str, sample: str) -> None:
    batch = graded[lab]
    got = _student(batch, sample)
    tests = batch.data["tests"]
    if sample == REFERENCE:
        expected = dict(tests)
        spec = None
    else:
        spec: Sample = next(s for s in load_samples(lab) if s.name == sample)
        unknown = set(spec.expect) - set(tests)
        assert not unknown, f"{sample}.yaml expects points for unknown tests {sorted(unknown)}"
        expected = spec.expected_points(tests)
    points = {name: p for name, p in _points(got).items() if name in tests}
    assert points == expected, (
        f"{lab}/{sample} scored {points}, expected {expected} (status {got.status}: {_reason(got)})"
    )
    if spec is not None and spec.reason:
        assert spec.reason.lower() in f"{got.status} {_reason(got)}".lower(), (got.status, _reason(got))
    if spec is None or spec.status is None:
        assert got.status != "flagged", f"{lab}/{sample} was flagged for review: {_reason(got)}"
    else:
        assert got.status == spec.status, (got.status, _reason(got))


def test_grades_csv_and_feedback_written(graded: dict[str, Outcome]) -> None:
    lab = "lab01-environment"
    batch = graded[lab]
    out = Path(batch.data["out_dir"])
    header = (out / "grades.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["student", "status", "score", "max_score"] and set(batch.data["tests"]) <= set(header)
    assert (out / "feedback" / f"{REFERENCE}.html").is_file(), "a feedback page per graded student"
    assert (out / "summary.json").is_file()


def test_regrading_gives_the_same_grades(tmp_path: Path) -> None:
    """Two batches over the same submissions, in fresh output folders, agree student by student."""
    source = lab_source("lab01-environment")
    subs = tmp_path / "submissions"
    build_submission(None, source, subs / "ada")
    partly = next(s for s in load_samples("lab01-environment") if s.name == "partly-done")
    build_submission(partly, source, subs / "bob")
    first = grade_class(source, subs, tmp_path / "first", workers=2)
    second = grade_class(source, subs, tmp_path / "first", workers=2)  # same --out: regraded from scratch
    assert [(s.subject, _points(s), s.status) for s in first.parts] == [
        (s.subject, _points(s), s.status) for s in second.parts
    ]
    assert {s.subject: s.score for s in second.parts} == {"ada": 10.0, "bob": 3.0}
