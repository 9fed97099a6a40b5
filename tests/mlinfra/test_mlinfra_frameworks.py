"""mlinfra.frameworks: the same MLP in PyTorch, Keras 3 (torch backend) and ONNX Runtime computes the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlinfra import frameworks as fw
from mlinfra.base.errors import UsageError


def test_max_abs_diff_is_absolute_and_elementwise() -> None:
    a = np.zeros((2, 3), dtype=np.float32)
    b = a.copy()
    b[1, 2] = -0.5
    b[0, 0] = 0.25
    assert fw.max_abs_diff(a, b) == 0.5
    assert fw.max_abs_diff(torch.from_numpy(a), b) == 0.5, "tensors and arrays mix"
    with pytest.raises(ValueError, match="shapes differ"):
        fw.max_abs_diff(a, np.zeros((3, 2)))


def test_torch_mlp_shapes() -> None:
    model = fw.torch_mlp(8, 5, 3)
    assert tuple(model(torch.zeros(4, 8)).shape) == (4, 3)
    assert sum(p.numel() for p in model.parameters()) == 8 * 5 + 5 + 5 * 3 + 3


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # keras' own NumPy 2 notices, not ours
def test_keras_and_onnx_compute_what_pytorch_computes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keras import (~2 s) and the first ONNX export (~5 s) make this the one slow test here."""
    torch.manual_seed(0)
    model = fw.torch_mlp(6, 6, 6)  # square layers: a copy without the transpose would still fit the shapes
    x = np.random.default_rng(0).normal(size=(9, 6)).astype(np.float32)
    expected = fw.torch_predict(model, x)

    keras_model = fw.copy_torch_to_keras(model, fw.keras_mlp(6, 6, 6))
    assert fw.max_abs_diff(expected, fw.keras_predict(keras_model, x)) < fw.ATOL
    with pytest.raises(ValueError, match="Keras wants"):
        fw.copy_torch_to_keras(fw.torch_mlp(6, 4, 6), fw.keras_mlp(6, 6, 6))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert fw.max_abs_diff(fw.torch_predict(model, x), fw.keras_predict(keras_model, x)) > 0.1, (
        "the Keras model holds copies, not views of the PyTorch weights"
    )

    keras = fw.import_keras()
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(UsageError, match="'jax' backend; the course uses 'torch'"):
        fw.import_keras()
    monkeypatch.undo()

    path = fw.export_onnx(model, torch.zeros(1, 6), tmp_path / "sub" / "mlp.onnx")
    assert path.is_file()
    session = fw.onnx_session(path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["input"]
    for batch in (1, 5, 9):  # exported with a batch of 1: the batch dimension is dynamic
        got = fw.run_onnx(session, x[:batch])
        assert fw.max_abs_diff(fw.torch_predict(model, x[:batch]), got) < fw.ATOL
