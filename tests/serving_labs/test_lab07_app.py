"""The API lab's solution app.py: the exact status codes the lab asks for, and the practical assessment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import CORRUPT_PNG, LAB07, assess_all_but_latency, image_bytes, load_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
        app = load_file(LAB07 / "app.py", "lab07_app").app
        assert TestClient(app).get("/health").status_code == 503, "no model before start-up"
        with TestClient(app, raise_server_exceptions=False) as started:
            yield started


def upload(data: bytes, content_type: str = "image/png") -> dict[str, Any]:
    return {"files": {"file": ("x.png", data, content_type)}}


def test_health_and_a_prediction(client: Any) -> None:
    assert client.get("/health").status_code == 200
    answer = client.post("/predict", **upload(image_bytes("RGBA", (300, 200))))
    assert answer.status_code == 200
    confidences = [p["confidence"] for p in answer.json()["predictions"]]
    assert len(confidences) == 5 and confidences == sorted(confidences, reverse=True)


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        (upload(b"plain text", "text/plain"), 415),
        (upload(CORRUPT_PNG), 400),
        (upload(b""), 400),
        (upload(image_bytes() + b"\0" * (12 << 20)), 413),
        ({"files": {"image": ("x.png", image_bytes(), "image/png")}}, 422),
    ],
    ids=["not-an-image", "corrupt", "empty", "12MB", "missing-field"],
)
def test_bad_input_gets_the_exact_4xx_with_a_reason(client: Any, request_kwargs: dict, status: int) -> None:
    answer = client.post("/predict", **request_kwargs)
    assert answer.status_code == status and answer.json()["detail"]
    assert client.get("/predict").status_code == 405


@pytest.mark.slow
def test_solution_passes_the_practical_assessment(tiny_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MLINFRA_MODEL_DIR": str(tiny_model)}
    assess_all_but_latency(["--app", "app.py:app"], LAB07, tmp_path, env)
