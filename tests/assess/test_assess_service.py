"""The reference service, in process (fastapi.testclient): every detail of the contract."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlinfra import contract
from mlinfra.contract import validate_predict_body


def image_bytes(
    mode: str = "RGB", size: tuple[int, int] = (28, 28), fmt: str = "PNG", color: object = None
) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (30, 60, 90))
    ImageDraw.Draw(image).ellipse(
        (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2), fill=(250, 250, 250)
    )
    image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def upload(data: bytes, name: str = "x.png", ctype: str = "image/png") -> dict:
    return {"file": (name, data, ctype)}


@pytest.fixture
def client(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from mlinfra.service import app

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    with TestClient(app) as c:
        yield c


def test_health_once_loaded(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["model"] == "tiny-10"


def test_missing_model_folder_gives_503_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.service import app

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tmp_path / "nothing-here"))
    with TestClient(app) as c:
        r = c.get("/health")
        assert r.status_code == 503
        assert "make model" in r.json()["detail"] and r.json()["status"] == "unavailable"
        r = c.post("/predict", files=upload(image_bytes()))
        assert r.status_code == 503 and "make model" in r.json()["detail"]


@pytest.mark.parametrize(
    "mode,size,fmt",
    [
        ("L", (28, 28), "PNG"),
        ("RGB", (28, 28), "PNG"),
        ("RGBA", (64, 64), "PNG"),
        ("P", (50, 50), "PNG"),
        ("LA", (30, 30), "PNG"),
        ("I;16", (28, 28), "PNG"),
        ("1", (28, 28), "PNG"),
        ("RGB", (224, 224), "PNG"),
        ("L", (224, 224), "JPEG"),
        ("RGB", (28, 28), "JPEG"),
        ("CMYK", (40, 40), "JPEG"),
        ("RGB", (1, 1), "PNG"),
        ("RGB", (640, 20), "JPEG"),
        ("L", (1000, 1000), "PNG"),
    ],
)
def test_any_mode_and_size_is_classified(
    client: TestClient, mode: str, size: tuple[int, int], fmt: str
) -> None:
    r = client.post(
        "/predict", files=upload(image_bytes(mode, size, fmt), f"x.{fmt.lower()}", f"image/{fmt.lower()}")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert validate_predict_body(body) == []
    assert len(body["predictions"]) == contract.TOP_K  # min(5, 10 classes)


def test_predictions_are_the_models_top_k(client: TestClient, tiny_model: Path) -> None:
    import torch
    from PIL import Image

    from mlinfra.modelstore import load_model, preprocess, top_k

    data = image_bytes("L", (28, 28))
    model = load_model(tiny_model)
    with torch.inference_mode():
        expected = top_k(model.module(preprocess(Image.open(io.BytesIO(data)), model.card))[0], model.labels)
    got = client.post("/predict", files=upload(data)).json()["predictions"]
    assert [p["label"] for p in got] == [p["label"] for p in expected]
    assert [p["confidence"] for p in got] == pytest.approx([p["confidence"] for p in expected], abs=1e-6)
    again = client.post("/predict", files=upload(data)).json()["predictions"]
    assert again == got


def test_k_is_min_of_five_and_classes(three_class_rgb_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.service import app

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(three_class_rgb_model))
    with TestClient(app) as c:
        preds = c.post("/predict", files=upload(image_bytes("L"))).json()["predictions"]
    assert len(preds) == 3 and {p["label"] for p in preds} == {"class-0", "class-1", "class-2"}
    assert sum(p["confidence"] for p in preds) == pytest.approx(1.0, abs=1e-5)


def bad_requests() -> list[tuple[str, dict, int]]:
    png = image_bytes()
    return [
        ("not an image", {"files": upload(b"hello, not an image", "a.txt", "text/plain")}, 415),
        ("a GIF", {"files": upload(b"GIF89a" + bytes(100), "a.gif", "image/gif")}, 415),
        ("corrupt", {"files": upload(png[:33] + b"garbage" * 50)}, 400),
        ("truncated", {"files": upload(png[: len(png) // 2])}, 400),
        ("corrupt JPEG", {"files": upload(b"\xff\xd8\xff\xe0" + b"junk" * 30, "a.jpg", "image/jpeg")}, 400),
        ("empty", {"files": upload(b"")}, 400),
        ("just over 10 MB", {"files": upload(png[:33] + bytes(contract.MAX_UPLOAD_BYTES))}, 413),
        ("12 MB", {"files": upload(png[:33] + bytes(12 * 1024 * 1024))}, 413),
        ("missing field", {"data": {"note": "x"}, "files": {"image": ("a.png", png, "image/png")}}, 422),
        ("no form at all", {}, 422),
    ]


@pytest.mark.parametrize("name,kwargs,status", bad_requests(), ids=[b[0] for b in bad_requests()])
def test_bad_input_gets_a_4xx_with_a_reason(client: TestClient, name: str, kwargs: dict, status: int) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and len(detail) > 10
    assert client.get("/health").status_code == 200
    assert client.post("/predict", files=upload(image_bytes())).status_code == 200


def test_wrong_method(client: TestClient) -> None:
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["detail"]


def test_a_small_file_claiming_huge_pixels_is_refused(client: TestClient) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, format="PNG")
    data = buf.getvalue()  # a few kB of PNG, 64 megapixels once decoded
    assert len(data) < 200_000
    r = client.post("/predict", files=upload(data))
    assert r.status_code == 413 and "pixels" in r.json()["detail"]


def test_openapi_documents_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(post["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["PredictResponse"]["examples"][0]["predictions"][0]["label"] == "7"
    assert schemas["Prediction"]["properties"]["confidence"]["maximum"] == 1.0
    assert "/health" in spec["paths"]


def test_torch_threads_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.service import torch_threads

    monkeypatch.setenv("MLINFRA_TORCH_THREADS", "3")
    assert torch_threads() == 3
    monkeypatch.delenv("MLINFRA_TORCH_THREADS")
    assert 1 <= torch_threads() <= 4
