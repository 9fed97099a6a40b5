"""Fixtures for the assessment's tests: tiny model folders made on the spot (no `make model` needed)."""

from __future__ import annotations

from pathlib import Path

import pytest


def make_model_dir(folder: Path, classes: int = 10, channels: int = 1, size: int = 28) -> Path:
    import torch

    from mlinfra.modelstore import ModelCard, save_model

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, classes),
    ).eval()
    card = ModelCard(
        name=f"tiny-{classes}",
        architecture="tiny-cnn",
        input_size=size,
        channels=channels,
        mean=[0.5] * channels,
        std=[0.5] * channels,
    )
    return save_model(folder, torch.jit.script(net), [f"class-{i}" for i in range(classes)], card)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny", classes=10)


@pytest.fixture(scope="session")
def three_class_rgb_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("models") / "tiny3", classes=3, channels=3, size=32)
