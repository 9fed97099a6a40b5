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
    from mlinfra.modelstore import torch_threads

    monkeypatch.setenv("MLINFRA_TORCH_THREADS", "3")
    assert torch_threads() == 3
    monkeypatch.delenv("MLINFRA_TORCH_THREADS")
    assert 1 <= torch_threads() <= 4


# --- The inference engines: batching must not change a single answer ---------------------------------------


def unbatched(model_dir: Path, uploads: list[bytes]) -> list[list[dict]]:
    """The reference: each image alone through the model, batch of one, no engine."""
    from PIL import Image

    from mlinfra.modelstore import load_model, predict_rows, preprocess

    model = load_model(model_dir)
    return [predict_rows(model, preprocess(Image.open(io.BytesIO(u)), model.card))[0] for u in uploads]


def mixed_uploads() -> list[bytes]:
    """Different sizes, modes and formats: they all become one input size, so they share batches."""
    out = []
    for i, (mode, size, fmt) in enumerate(
        [("L", (28, 28), "PNG"), ("RGB", (224, 224), "JPEG"), ("RGBA", (300, 120), "PNG"), ("L", (64, 64), "JPEG")]
        * 4
    ):
        out.append(image_bytes(mode, (size[0] + i, size[1]), fmt))
    return out


def same_answers(got: list[dict], want: list[dict]) -> bool:
    """The same labels in the same order, each confidence within 1e-4: a batch's matrix product sums a row's
    thousands of terms in another order than one row alone does (float32: about 1e-5 apart for the stand-in
    model's 3,072 pixels), while another upload's answer differs in its labels or by far more."""
    return [p["label"] for p in got] == [p["label"] for p in want] and all(
        abs(a["confidence"] - b["confidence"]) < 1e-4 for a, b in zip(got, want, strict=False)
    )


def test_batcher_gives_every_request_the_unbatched_answer(three_class_rgb_model: Path) -> None:
    """16 mixed images from 8 threads at once: batches do form, and each answer is the one the image gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from mlinfra.modelstore import Batcher, load_model, preprocess

    uploads = mixed_uploads()
    want = unbatched(three_class_rgb_model, uploads)
    model = load_model(three_class_rgb_model)
    batcher = Batcher(model, max_batch=8, wait_ms=20)  # a wait so batches surely form, even on a busy machine
    try:
        tensors = [preprocess(Image.open(io.BytesIO(u)), model.card) for u in uploads]
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(batcher.predict, tensors))
    finally:
        batcher.close()
    assert max(batcher.batch_sizes) > 1, f"no batch formed: {batcher.batch_sizes}"
    assert sum(batcher.batch_sizes) == len(uploads)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same_answers(g, w), f"upload {i}: batched {g} != alone {w}"


@pytest.mark.parametrize("mode", ["batch", "threads"])
def test_service_under_8_concurrent_clients_with_bad_input_mixed_in(
    mode: str, three_class_rgb_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every good upload gets exactly its unbatched answer, every bad one its 4xx, and the service stays up."""
    from concurrent.futures import ThreadPoolExecutor

    from mlinfra.service import app

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(three_class_rgb_model))
    monkeypatch.setenv("MLINFRA_SERVE_MODE", mode)
    monkeypatch.setenv("MLINFRA_BATCH_WAIT_MS", "5")
    good = mixed_uploads()
    want = unbatched(three_class_rgb_model, good)
    bad = [(b"not an image", 415), (b"\x89PNG\r\n\x1a\n" + b"garbage" * 20, 400), (b"", 400)]
    jobs = [("good", i) for i in range(len(good))] + [("bad", i) for i in range(len(bad))] * 3
    jobs = jobs[::2] + jobs[1::2]  # interleave bad with good

    with TestClient(app) as c:

        def send(job: tuple[str, int]) -> tuple[tuple[str, int], int, dict]:
            kind, i = job
            data = good[i] if kind == "good" else bad[i][0]
            r = c.post("/predict", files=upload(data))
            return job, r.status_code, r.json()

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(send, jobs))
        assert c.get("/health").status_code == 200
    for (kind, i), status, body in results:
        if kind == "good":
            assert status == 200, f"good upload {i}: {status} {body}"
            assert same_answers(body["predictions"], want[i]), f"upload {i}: {body} != {want[i]}"
        else:
            assert status == bad[i][1] and body["detail"], f"bad upload {i}: {status} {body}"


def test_bad_engine_setting_is_reported_by_health(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.service import app

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    monkeypatch.setenv("MLINFRA_MAX_BATCH", "lots")
    with TestClient(app) as c:
        r = c.get("/health")
    assert r.status_code == 503 and "MLINFRA_MAX_BATCH" in r.json()["detail"]


def test_default_model_dir_is_under_the_workbook_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlinfra.base.paths import repo_root
    from mlinfra.modelstore import model_dir_from_env

    root = repo_root()
    monkeypatch.delenv("MLINFRA_MODEL_DIR", raising=False)
    monkeypatch.chdir(root / "labs" / "lab07-api")
    assert model_dir_from_env() == root / "models" / "digits-resnet18"
