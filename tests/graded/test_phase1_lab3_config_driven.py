"""phase1-lab3-config-driven's graders have teeth: its reference and every known-bad sample of tests/samples/phase1-lab3-config-driven/ graded in one
real `autograder grade` batch, each scoring exactly the points its YAML states (tests/graded/conftest.py)."""

from __future__ import annotations

import pytest
from graded_samples import assert_scores_exactly, sample_names

from mlinfra.base.results import Outcome

pytestmark = pytest.mark.slow

LAB = "phase1-lab3-config-driven"


@pytest.mark.parametrize("sample", sample_names(LAB))
def test_sample_scores_exactly(graded: dict[str, Outcome], sample: str) -> None:
    assert_scores_exactly(graded[LAB], LAB, sample)
