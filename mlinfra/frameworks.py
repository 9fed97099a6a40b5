"""One small model in four runtimes: PyTorch, Keras 3 (on its torch backend), TensorFlow and ONNX Runtime.

Lesson 1.4 and ``bench/bench_frameworks.py`` / ``bench/bench_tensorflow.py`` use this module; docs/frameworks.md records what the course
installs and how TensorFlow and torch share a process (measured): plain TensorFlow (``tf.function``,
``tf.Module``, SavedModel) runs in the lesson's kernel beside torch; Keras on the TensorFlow backend runs in a
process of its own, because the kernel's Keras is already on torch and Keras picks its backend once per process
(lab03 keeps TensorFlow out of its graded kernel altogether: docs/frameworks.md says why).

- ``torch_mlp`` / ``keras_mlp``: the same architecture (dense -> ReLU -> dense) in each framework;
- ``copy_torch_to_keras``: copy the weights across (a ``Linear`` keeps ``out x in``, a ``Dense`` kernel keeps
  ``in x out``: the copy transposes);
- ``export_onnx`` / ``onnx_session`` / ``run_onnx``: export the PyTorch model with a dynamic batch dimension and
  run it with ONNX Runtime on the CPU;
- ``max_abs_diff``: the one number every comparison reports;
- ``import_tensorflow``: TensorFlow with its start-up notices off (a notebook shows them as stderr, which makes
  nbgrader zero a test cell); ``run_own_process``: run a Python file in a fresh interpreter with a chosen Keras
  backend and the same quiet TensorFlow, returning what it printed.

Nothing here imports at module import time; Keras is imported through ``import_keras``, which selects the
torch backend unless ``KERAS_BACKEND`` already names another. ``export_onnx`` and ``max_abs_diff`` are what
exercise 03 asks learners to write: the class copy leaves them out (docs/class-copy.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlinfra.base.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch

# Tolerance used to call two float32 forwards "the same": the frameworks sum in different orders, so bits differ
# (typically ~1e-7 for a model this size), but nothing a prediction could notice.
ATOL = 1e-5

# TensorFlow's start-up notices go from C++ straight to file descriptor 2. TF_CPP_MIN_LOG_LEVEL=3 keeps only
# errors, but the oneDNN notice is printed before that setting is read; TF_ENABLE_ONEDNN_OPTS=0 is the one switch
# that stops it (and uses TensorFlow's own CPU kernels, which for these small models changes nothing a
# comparison at ATOL could see: docs/frameworks.md). Both must be set before TensorFlow's first import.
TF_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def import_keras() -> Any:
    """Import Keras 3 on the torch backend, the notebooks' backend (TensorFlow's runs in its own process).

    Keras reads ``KERAS_BACKEND`` once, at its first import; afterwards the backend cannot change in the
    process, so a different backend already loaded is an error that says what to do.
    """
    os.environ.setdefault("KERAS_BACKEND", "torch")
    # Keras imports TensorFlow, when installed, for a few utilities (``keras.utils.set_random_seed`` seeds it):
    # its notices must be off before that first import, which may come from Keras rather than from us.
    for key, value in TF_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import keras
    except ImportError as exc:  # pragma: no cover - the pinned environment has it
        raise UsageError(
            f"Keras is not installed ({exc}); run `make setup` to install the course environment"
        ) from exc
    backend = keras.backend.backend()
    if backend != "torch":
        raise UsageError(
            f"Keras is running on the {backend!r} backend; the course uses 'torch': "
            "unset KERAS_BACKEND (or set it to torch) and restart the kernel"
        )
    return keras


def import_tensorflow() -> Any:
    """Import TensorFlow with its C++ start-up notices off (``TF_QUIET_ENV``, unless already set otherwise).

    Importing it beside torch in one process works (measured: docs/frameworks.md); what cannot share the
    process is Keras on a second backend, so this never touches ``KERAS_BACKEND``.
    """
    for key, value in TF_QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise UsageError(
            f"TensorFlow is not installed ({exc}); run `make setup` to install the course environment"
        ) from exc
    return tf


@dataclass
class ProcessRun:
    """What ``run_own_process`` saw: the command, its exit code, what it printed, and how long it took."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_own_process(
    script: str | Path, *args: str | Path, keras_backend: str = "tensorflow", timeout: float = 300.0
) -> ProcessRun:
    """Run ``script`` with this interpreter in a fresh process, Keras on ``keras_backend``, TensorFlow quiet.

    The child gets this process's environment with ``KERAS_BACKEND`` replaced (a notebook kernel exports
    ``torch``, which the child must not inherit) and ``TF_QUIET_ENV`` added. A failure raises ``UsageError``
    naming the script, its exit code and the last lines it wrote to stderr.
    """
    script = Path(script)
    if not script.is_file():
        raise UsageError(f"{script}: no such file; write the script first (the cell above writes it)")
    command = [sys.executable, str(script), *map(str, args)]
    env = {**os.environ, **TF_QUIET_ENV, "KERAS_BACKEND": keras_backend}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UsageError(
            f"{script}: still running after {timeout:.0f} s and stopped; look for a loop that never ends, "
            "or pass a larger timeout="
        ) from exc
    run = ProcessRun(command, done.returncode, done.stdout, done.stderr, time.perf_counter() - start)
    if run.returncode != 0:
        tail = " | ".join(run.stderr.strip().splitlines()[-3:]) or "nothing on stderr"
        raise UsageError(f"{script} exited with code {run.returncode} (last lines on stderr: {tail}); fix the script")
    return run


def torch_mlp(in_features: int = 64, hidden: int = 32, classes: int = 10) -> torch.nn.Module:
    """Dense -> ReLU -> dense, in PyTorch (seed torch first for the same weights every time)."""
    from torch import nn

    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def keras_mlp(in_features: int = 64, hidden: int = 32, classes: int = 10) -> Any:
    """The same architecture in Keras 3, built (its weights exist) and ready for ``copy_torch_to_keras``."""
    keras = import_keras()
    return keras.Sequential(
        [
            keras.Input(shape=(in_features,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )


def _linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    from torch import nn

    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def copy_torch_to_keras(torch_model: torch.nn.Module, keras_model: Any) -> Any:
    """Copy every ``Linear`` of ``torch_model`` into the ``Dense`` layers of ``keras_model``, in order.

    A ``Linear`` stores ``weight`` as ``out x in`` and computes ``x @ weight.T + bias``; a ``Dense`` stores its
    kernel as ``in x out`` and computes ``x @ kernel + bias``: the kernel is the transposed weight.
    """
    linears = _linears(torch_model)
    denses = [layer for layer in keras_model.layers if layer.weights]
    if len(linears) != len(denses):
        raise ValueError(
            f"the PyTorch model has {len(linears)} Linear layers, the Keras model {len(denses)} dense layers"
        )
    for i, (linear, dense) in enumerate(zip(linears, denses, strict=False)):
        kernel = linear.weight.detach().cpu().numpy().T
        bias = linear.bias.detach().cpu().numpy()
        want = [tuple(w.shape) for w in dense.get_weights()]
        if [kernel.shape, bias.shape] != want:
            raise ValueError(
                f"layer {i}: PyTorch gives kernel {kernel.shape} and bias {bias.shape}, Keras wants {want}"
            )
        dense.set_weights([kernel, bias])
    return keras_model


def keras_predict(keras_model: Any, x: np.ndarray) -> np.ndarray:
    """Keras forward on a NumPy batch, as NumPy (``model(x)`` rather than ``predict``: no batching loop)."""
    keras = import_keras()
    return keras.ops.convert_to_numpy(keras_model(x, training=False))


def torch_predict(torch_model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """PyTorch forward on a NumPy batch, without recording a graph, as NumPy."""
    import torch

    with torch.inference_mode():
        return torch_model(torch.from_numpy(x)).numpy()


# class-copy: omit-begin (exercise 03 asks learners to write this ONNX export; docs/class-copy.md)
def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Export ``model`` to an ONNX file at ``path``, input ``input`` and output ``output``, batch size dynamic.

    Uses PyTorch's default exporter (``torch.export`` underneath, needs ``onnxscript``), which records the
    forward in inference mode; the model is put in eval mode first all the same, so the PyTorch outputs it is
    compared with afterwards are the inference ones too.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    batch = torch.export.Dim("batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    return path


# class-copy: omit-end


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime session on the CPU (``threads`` caps its intra-op threads, like ``torch.set_num_threads``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: its info lines go to stderr, which a notebook shows in red
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, x: np.ndarray) -> np.ndarray:
    """One ONNX Runtime forward: feed the session's (only) input, return its first output."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})[0]


# class-copy: omit-begin (exercise 03 asks learners to write this comparison; docs/class-copy.md)
def max_abs_diff(a: Any, b: Any) -> float:
    """The largest absolute element-wise difference of two arrays or tensors of the same shape."""
    import numpy as np

    a = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    b = b.detach().cpu().numpy() if hasattr(b, "detach") else np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


# class-copy: omit-end
