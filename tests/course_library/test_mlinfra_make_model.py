from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from mlinfra.make_model import main
from mlinfra.modelstore import load_model, preprocess, top_k

pytestmark = pytest.mark.slow  # trains ResNet-18 on 64 images for one epoch, then traces it


def test_make_model_writes_a_model_the_store_loads_and_serves(tmp_path: Path, capsys) -> None:
    out = tmp_path / "models" / "digits-resnet18"
    args = [
        "--out",
        str(out),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        "--set",
        "training.epochs=1",
        "--set",
        "data.limit_train=64",
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    noisy = [str(w.message) for w in caught if issubclass(w.category, (UserWarning, FutureWarning))]
    assert not noisy, f"make_model must not warn: {noisy}"
    printed = capsys.readouterr().out
    assert f"wrote {out}/" in printed and "make serve" in printed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks torch.jit as deprecated
        loaded = load_model(out)
    card = loaded.card
    assert loaded.labels == [str(d) for d in range(10)]
    assert (card.architecture, card.input_size, card.channels) == ("resnet18", 32, 1)
    assert len(card.mean) == len(card.std) == 1 and card.std[0] > 0
    assert card.dataset["name"] == "sklearn-digits"
    assert (card.dataset["n_train"], card.dataset["n_val"], card.dataset["n_test"]) == (64, 179, 359)
    assert 0.0 <= card.metrics["test_accuracy"] <= 1.0 and card.metrics["epochs"] == 1
    assert {"torch", "python", "mlinfra"} <= set(card.versions)
    run_dir = tmp_path / "runs" / card.metrics["run_id"]
    assert (run_dir / "checkpoint.pt").is_file()

    image = Image.new("L", (28, 28), 0)
    image.paste(255, (12, 4, 16, 24))  # a white stroke on black, like the training digits
    with torch.no_grad():
        logits = loaded.module(preprocess(image, card))
    assert tuple(logits.shape) == (1, 10)
    predictions = top_k(logits, loaded.labels)
    assert len(predictions) == 5 and predictions[0]["confidence"] >= predictions[-1]["confidence"]

    # A second call reuses the finished run instead of training again.
    assert main(args) == 0
    assert "reused the finished run" in capsys.readouterr().out
    assert json.loads((out / "model_card.json").read_text())["metrics"]["run_id"] == run_dir.name
