"""Helpers shared by the mlinfra tests (a plain module, not a conftest: test folders share one namespace)."""

from __future__ import annotations

from typing import Any

from mlinfra.config import TrainConfig, config_from_dict


def tiny_config(**sections: dict[str, Any]) -> TrainConfig:
    """A run that trains in about a second: the offline digits, a slice of the training images, 2 epochs."""
    base: dict[str, dict[str, Any]] = {
        "data": {"source": "sklearn-digits", "limit_train": 96},
        "model": {"name": "cnn"},
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.01},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return config_from_dict(base, source="<tiny>")
