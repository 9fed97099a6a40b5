"""Fixtures for the serving labs' tests (helpers live in serving_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import make_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model(tmp_path_factory.mktemp("models") / "tiny")
