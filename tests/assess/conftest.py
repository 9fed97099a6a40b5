"""Fixtures for the assessment's tests: tiny model folders made on the spot (no `make model` needed)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_model_dir(folder: Path, classes: int = 10, channels: int = 1, size: int = 28) -> Path:
    """A random model whose top-1 depends on the image (mlinfra.modelstore.standin_model): a constant answer
    cannot pass for its own."""
    from mlinfra.modelstore import standin_model

    return standin_model(folder, classes, channels, size, name=f"tiny-{classes}",
                         labels=[f"class-{i}" for i in range(classes)])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny", classes=10)


@pytest.fixture(scope="session")
def three_class_rgb_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny3", classes=3, channels=3, size=32)
