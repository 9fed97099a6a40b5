"""Every lab with samples has its file here, so no lab's graders go unchecked when a lab is added."""

from __future__ import annotations

from pathlib import Path

from graded_samples import labs_with_samples


def test_every_lab_with_samples_has_its_graded_file() -> None:
    here = Path(__file__).parent
    missing = [lab for lab in labs_with_samples() if not (here / f"test_{lab.replace('-', '_')}.py").is_file()]
    assert not missing, f"add tests/graded/test_<lab>.py (copy another lab's) for: {missing}"
