"""Shared helpers for the Docker lab's tests: Dockerfiles written into a temporary folder, and a tiny model."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "solutions" / "lab06-docker"
GOOD_IGNORE = ".git\n.venv\n.env\n**/__pycache__\n**/.ipynb_checkpoints\n"


def without_markers(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if "### BEGIN" not in line and "### END" not in line)


@pytest.fixture
def solution_dockerfile() -> str:
    return without_markers((LAB / "Dockerfile").read_text())


@pytest.fixture
def write_dockerfile(tmp_path: Path) -> Callable[..., Path]:
    """write_dockerfile(text, ignore=GOOD_IGNORE, name="Dockerfile") -> the file's path (ignore=None: none)."""

    def write(text: str, ignore: str | None = GOOD_IGNORE, name: str = "Dockerfile") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        if ignore is not None:
            (tmp_path / ".dockerignore").write_text(ignore)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-class random TorchScript model in the course's model-folder format: the service, not the model, is
    under test."""
    from mlinfra.modelstore import standin_model

    return standin_model(tmp_path_factory.mktemp("tiny-model"), name="tiny-test")


@pytest.fixture
def placeholder_model(tmp_path: Path) -> Path:
    """A model folder whose files only have the model's names: for images that never load a model (no stand-in is
    made for them, so no torch is imported)."""
    from autograder.dockerfile.context import MODEL_FILES

    folder = tmp_path / "placeholder-model"
    folder.mkdir()
    for name in MODEL_FILES:
        (folder / name).write_text("{}")
    return folder
