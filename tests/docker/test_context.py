"""The Docker lab's build context in a class copy, which ships no reference service: the image serves the
learner's own exercise-07 app under the name the Dockerfile's CMD expects, or the error says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.dockerfile import context
from autograder.errors import UsageError


@pytest.fixture
def class_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    library = tmp_path / "copy" / "mlinfra"
    library.mkdir(parents=True)
    for name in context.SERVICE_MODULES:
        if name != "service.py":
            (library / name).write_text(f"# {name}\n")
    model = tmp_path / "model"
    model.mkdir()
    for name in context.MODEL_FILES:
        (model / name).write_text("x")
    monkeypatch.setattr(context, "service_package", lambda: library)
    monkeypatch.setenv("WORKBOOK_ROOT", str(tmp_path / "copy"))
    return tmp_path


def test_the_learners_own_app_is_served_when_the_reference_is_absent(class_copy: Path) -> None:
    own = class_copy / "copy" / "workspace" / "lab07-api" / "app.py"
    own.parent.mkdir(parents=True)
    own.write_text("app = 'the learner's own'\n")
    build = class_copy / "build"
    assert context.stage_service(build, class_copy / "model") == ["mlinfra/", "model/"]
    assert (build / "mlinfra" / "service.py").read_text() == own.read_text()
    assert (build / "mlinfra" / "contract.py").is_file()


def test_without_the_learners_app_the_error_says_what_to_do(class_copy: Path) -> None:
    with pytest.raises(UsageError, match=r"lab07-api/app.py not found: .*make lab"):
        context.stage_service(class_copy / "build", class_copy / "model")
