"""The serving path's cheaper parts give the same answers: preprocessing, top-k over a batch, and batches formed by
waiting for the requests the last batch suggests are coming (docs/serving.md)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest


def torch_preprocess(image: object, card: object) -> object:
    """The formula the service used before preprocessing moved to numpy: what `preprocess` must still give."""
    import numpy as np
    import torch
    from PIL import Image

    mode = "L" if card.channels == 1 else "RGB"
    img = image.convert(mode).resize((card.input_size, card.input_size), Image.BILINEAR)
    array = np.asarray(img, dtype=np.float32) / 255.0
    array = array[None, :, :] if array.ndim == 2 else array.transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    mean = torch.tensor(card.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).view(-1, 1, 1)
    return ((tensor - mean) / std).unsqueeze(0)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1", "CMYK"])
def test_preprocess_gives_exactly_the_torch_formulas_values(channels: int, mode: str) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from mlinfra.modelstore import ModelCard, preprocess

    card = ModelCard(name="t", architecture="t", input_size=32, channels=channels,
                     mean=[0.485, 0.456, 0.406][:channels], std=[0.229, 0.224, 0.225][:channels])
    pixels = np.random.default_rng(channels).integers(0, 256, (57, 91, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB").convert(mode)
    got, want = preprocess(image, card), torch_preprocess(image, card)
    assert got.shape == (1, channels, 32, 32) and got.dtype == torch.float32 and got.is_contiguous()
    assert torch.equal(got, want), f"{mode} -> {channels} channels: differs by {(got - want).abs().max()}"


def test_top_k_rows_is_top_k_of_each_row() -> None:
    import torch

    from mlinfra.modelstore import top_k, top_k_rows

    torch.manual_seed(0)
    logits = torch.randn(6, 10) * 4
    labels = [f"c{i}" for i in range(10)]
    rows = top_k_rows(logits, labels, 5)
    assert rows == [top_k(row, labels, 5) for row in logits]
    assert all(isinstance(p["confidence"], float) and isinstance(p["label"], str) for row in rows for p in row)
    assert len(top_k_rows(logits[:, :3], labels, 5)[0]) == 3  # k is at most the number of classes


def test_waiting_for_the_expected_batch_keeps_every_answer(three_class_rgb_model: Path) -> None:
    """Two workers, the wait for as many as the last batch: batches form, answers are each image's own, and once
    the load is gone a lone request expects no company."""
    from PIL import Image
    from test_assess_service import mixed_uploads, same_answers

    from mlinfra.modelstore import Batcher, load_model, predict_rows, preprocess

    model = load_model(three_class_rgb_model)
    tensors = [preprocess(Image.open(io.BytesIO(u)), model.card) for u in mixed_uploads()]
    want = [predict_rows(model, t)[0] for t in tensors]
    batcher = Batcher(model, max_batch=8, workers=2, expect_ms=50, wait_ms=20)
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(batcher.predict, tensors))
        lone = [batcher.predict(tensors[0]) for _ in range(3)]  # one client: after one batch, no more waiting
    finally:
        batcher.close()
    assert max(batcher.batch_sizes) > 1, f"no batch formed: {list(batcher.batch_sizes)}"
    assert sum(batcher.batch_sizes) == len(tensors) + 3
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert same_answers(g, w), f"upload {i}: batched {g} != alone {w}"
    assert all(same_answers(g, want[0]) for g in lone)
    assert list(batcher.batch_sizes)[-2:] == [1, 1] and batcher._expect == 1


def test_batch_sizes_stay_bounded(tiny_model: Path) -> None:
    from mlinfra.modelstore import Batcher, load_model

    batcher = Batcher(load_model(tiny_model))
    try:
        assert batcher.batch_sizes.maxlen == 100_000  # a long-running service must not grow a list forever
    finally:
        batcher.close()


def test_engine_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinfra.service import EngineConfig

    for name in ("MLINFRA_SERVE_MODE", "MLINFRA_BATCH_EXPECT_MS", "MLINFRA_INFERENCE_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    assert EngineConfig.from_env().expect_ms == 2.0
    monkeypatch.setenv("MLINFRA_BATCH_EXPECT_MS", "0")
    assert EngineConfig.from_env().expect_ms == 0.0
    monkeypatch.setenv("MLINFRA_BATCH_EXPECT_MS", "soon")
    with pytest.raises(ValueError, match="MLINFRA_BATCH_EXPECT_MS"):
        EngineConfig.from_env()


def _colour_jpeg(size: int = 224) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(7).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    photo = Image.fromarray(pixels, "RGB").resize((size, size), Image.BICUBIC)  # smooth, like a photo
    out = io.BytesIO()
    photo.save(out, "JPEG", quality=90)
    return out.getvalue()


def test_an_undecoded_colour_jpeg_is_decoded_straight_to_grey() -> None:
    """A grey model's colour JPEG: the decoder's own luma plane, within one grey level of convert("L"); the same
    tensor from the FastAPI service, the TorchServe handler and `preprocess` on a freshly opened image. A colour
    model, or an image already loaded, keeps convert's exact values."""
    import torch
    from PIL import Image

    from mlinfra.modelstore import ModelCard, preprocess
    from mlinfra.service import decode
    from mlinfra.torchserve_handler import CourseModelHandler

    grey = ModelCard(name="t", architecture="t", input_size=32, channels=1, mean=[0.3], std=[0.3])
    data = _colour_jpeg()
    got = preprocess(Image.open(io.BytesIO(data)), grey)
    luma = Image.open(io.BytesIO(data))
    luma.draft("L", luma.size)
    assert luma.mode == "L"
    assert torch.equal(got, torch_preprocess(luma, grey))
    loaded = Image.open(io.BytesIO(data))
    loaded.load()
    exact = torch_preprocess(loaded, grey)
    assert torch.equal(preprocess(loaded, grey), exact)
    assert (got - exact).abs().max().item() <= 1 / 255 / 0.3 + 1e-6  # one grey level at most
    handler = CourseModelHandler()
    handler.card = grey
    assert torch.equal(decode(data, grey), got)
    assert torch.equal(handler.decode(data), got)
    colour = ModelCard(name="t", architecture="t", input_size=32, channels=3, mean=[0.5] * 3, std=[0.25] * 3)
    assert torch.equal(preprocess(Image.open(io.BytesIO(data)), colour), torch_preprocess(loaded, colour))


def test_a_truncated_jpeg_still_fails_as_corrupt() -> None:
    from fastapi import HTTPException

    from mlinfra import contract
    from mlinfra.modelstore import ModelCard
    from mlinfra.service import decode

    grey = ModelCard(name="t", architecture="t", input_size=32, channels=1, mean=[0.3], std=[0.3])
    with pytest.raises(HTTPException) as err:
        decode(_colour_jpeg()[:600], grey)
    assert err.value.status_code == contract.STATUS_CORRUPT
