"""mlinfra.frameworks: the same MLP in PyTorch, Keras 3 (torch backend) and ONNX Runtime computes the same."""

from __future__ import annotations

import sys
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


def test_run_own_process_replaces_the_keras_backend_and_quiets_tensorflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook kernel exports KERAS_BACKEND=torch: the child must get the backend asked for, not inherit it."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    script = tmp_path / "show_env.py"
    script.write_text(
        "import os, sys\n"
        "print(os.environ['KERAS_BACKEND'], os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ['TF_ENABLE_ONEDNN_OPTS'],"
        " sys.argv[1])\n"
    )
    run = fw.run_own_process(script, tmp_path)
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.split() == ["tensorflow", "3", "0", str(tmp_path)]
    assert run.command[0] == sys.executable and run.seconds > 0
    assert fw.run_own_process(script, "x", keras_backend="jax").stdout.split()[0] == "jax"


def test_run_own_process_names_the_failing_script(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("import sys\nprint('first', file=sys.stderr)\nraise SystemExit('the weights file is missing')\n")
    with pytest.raises(UsageError, match=r"broken\.py exited with code 1 .*the weights file is missing"):
        fw.run_own_process(script)
    with pytest.raises(UsageError, match=r"nothing\.py: no such file"):
        fw.run_own_process(tmp_path / "nothing.py")
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(UsageError, match=r"slow\.py: still running after 1 s"):
        fw.run_own_process(slow, timeout=1)


# Run in a child process: TensorFlow would add ~650 MB and a dozen threads to the test worker for the rest of
# its files, and only a fresh process shows what a learner's kernel prints on stderr.
_BESIDE_TORCH = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, torch, keras
from mlinfra import frameworks as fw
tf = fw.import_tensorflow()
torch.manual_seed(0)
model = fw.torch_mlp(6, 6, 6)
x = np.random.default_rng(0).normal(size=(9, 6)).astype(np.float32)
kernels = [tf.constant(m.weight.detach().numpy().T) for m in (model[0], model[2])]
biases = [tf.constant(m.bias.detach().numpy()) for m in (model[0], model[2])]
forward = tf.function(lambda t: tf.matmul(tf.nn.relu(tf.matmul(t, kernels[0]) + biases[0]), kernels[1]) + biases[1])
got = forward(tf.constant(x)).numpy()
print(keras.backend.backend(), torch.get_num_threads() > 0, fw.max_abs_diff(fw.torch_predict(model, x), got))
"""

_KERAS_ON_TF = """
import sys
import numpy as np
from mlinfra import frameworks as fw
tf = fw.import_tensorflow()
keras = tf.keras
x = np.load(sys.argv[1])
weights = np.load(sys.argv[2])
model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(6)])
model.layers[0].set_weights([weights["w0"], weights["b0"]])
model.layers[1].set_weights([weights["w1"], weights["b1"]])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x)))
print(keras.backend.backend(), type(model(x)).__name__)
"""


@pytest.mark.slow
def test_tensorflow_beside_torch_and_keras_on_tensorflow_in_its_own_process(tmp_path: Path) -> None:
    """What lesson 1.4 and lab03 rely on: TensorFlow imports quietly beside torch and Keras-on-torch in one
    process and computes what torch computes; Keras on the TensorFlow backend, in a child process, too."""
    beside = tmp_path / "beside.py"
    beside.write_text(_BESIDE_TORCH)
    run = fw.run_own_process(beside, keras_backend="torch")
    assert run.stderr == "", f"TensorFlow wrote to stderr beside torch: {run.stderr[:400]}"
    backend, threads, diff = run.stdout.split()
    assert backend == "torch" and threads == "True" and float(diff) < fw.ATOL

    torch.manual_seed(1)
    model = fw.torch_mlp(6, 6, 6)  # square: a forgotten transpose would fit the shapes
    x = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(
        tmp_path / "w.npz",
        **{f"w{i}": m.weight.detach().numpy().T for i, m in enumerate((model[0], model[2]))},
        **{f"b{i}": m.bias.detach().numpy() for i, m in enumerate((model[0], model[2]))},
    )
    on_tf = tmp_path / "on_tf.py"
    on_tf.write_text(_KERAS_ON_TF)
    run = fw.run_own_process(on_tf, tmp_path / "x.npy", tmp_path / "w.npz", tmp_path / "out.npy")
    assert run.stderr == "", f"Keras on TensorFlow wrote to stderr: {run.stderr[:400]}"
    assert run.stdout.split() == ["tensorflow", "EagerTensor"], run.stdout
    assert fw.max_abs_diff(fw.torch_predict(model, x), np.load(tmp_path / "out.npy")) < fw.ATOL
