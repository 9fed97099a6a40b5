"""One batch a lab: each file of this folder grades its lab's whole class once, in a real `autograder grade` batch,
and asserts what every student scored. One file a lab so that `make test`'s workers (pytest-xdist keeps a file on
one worker) share the labs between them."""

from __future__ import annotations

import pytest
from graded_samples import REFERENCE, build_submission, lab_source, load_samples

from autograder.grading.engine import grade_class
from mlinfra.base.results import Outcome


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
            # Deploy checks cost seconds to minutes a student (a TorchServe start, an image build, an Airflow run):
            # here the engines are hidden, so each scores 0 as skipped; the runs with the engine present are few, in
            # tests/serving_labs, tests/docker and tests/airflow (docs/deploy-checks.md).
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("AUTOGRADER_HIDE_ENGINES", "java,container,airflow")
                self[lab] = grade_class(source, subs, root / "out", workers=2)
            return self[lab]

    return GradedOnFirstUse()
