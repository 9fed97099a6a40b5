"""What TensorFlow costs the course, and whether it can share a process with torch.

    python bench/bench_tensorflow.py [--runs 3]

Prints three tables, figures only (never fails on time; docs/frameworks.md and docs/setup.md quote them):

1. installed size of what `tensorflow-cpu` brings into the course venv (the files each distribution's RECORD
   lists), and the `.pyc` files setup's bytecode compilation adds for them;
2. starting a process, each in a fresh interpreter (median of --runs; CPU seconds are the steadier figure on a
   busy machine): wall and CPU seconds, peak resident memory, threads, and the bytes written to stderr, for
   torch alone, TensorFlow alone (with and without the course's quiet variables), torch then TensorFlow,
   TensorFlow then torch, Keras on torch then TensorFlow, and Keras on the TensorFlow backend; each also runs one
   small matmul in every framework it loaded;
3. one MLP (lesson 1.4's shape, the same weights) in PyTorch and in TensorFlow inside one process: the largest
   output difference with TensorFlow's oneDNN kernels on and off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlinfra.base.runner import ArgumentParser  # a bad argument: one line pointing at --help, exit 2

# What `uv pip install tensorflow-cpu==2.21.0` added to the course venv (h5py was there and moved 3.16 -> 3.14).
TF_ADDED = ("tensorflow-cpu", "libclang", "astunparse", "gast", "google-pasta", "opt_einsum", "h5py")
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}

# One child per case: it imports what `order` names, runs a small matmul in each, and reports itself as JSON.
_CHILD = r"""
import json, os, resource, sys, time
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
start, cpu0 = time.perf_counter(), time.process_time()
for name in sys.argv[1].split(","):
    if name == "torch":
        import torch
        x = torch.ones(256, 256); float((x @ x).sum())
    elif name == "tf":
        import tensorflow as tf
        x = tf.ones((256, 256)); float(tf.reduce_sum(x @ x))
    elif name == "keras":
        import keras
        float(keras.ops.sum(keras.ops.ones((256, 256)) @ keras.ops.ones((256, 256))))
        sys.modules["keras"].layers.Dense(2).get_config()  # serialisation loads TensorFlow when installed
# (importing TensorFlow puts a `keras` in sys.modules too: report a backend only where Keras was asked for)
extra = {"keras_backend": sys.modules["keras"].backend.backend()} if "keras" in sys.argv[1] else {}
print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu0,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": status("Threads"),
                  "tf_loaded": "tensorflow" in sys.modules, **extra}))
"""


def installed_mb(dist: str) -> tuple[float, float]:
    """(MB of the files RECORD lists, MB of those that are .pyc) for an installed distribution."""
    files = metadata.distribution(dist).files or []
    total = pyc = 0
    for f in files:
        path = Path(str(f.locate()))
        if path.is_file():
            size = path.stat().st_size
            total += size
            pyc += size if path.suffix == ".pyc" else 0
    # uv's --compile-bytecode writes .pyc files that RECORD does not list: count them from the folders.
    roots = {Path(str(f.locate())).parent for f in files if str(f).endswith("__init__.py")}
    listed = {str(Path(str(f.locate()))) for f in files}
    for root in roots:
        for cache in root.glob("__pycache__/*.pyc"):
            if str(cache) not in listed:
                total += cache.stat().st_size
                pyc += cache.stat().st_size
    return total / 1e6, pyc / 1e6


def bench_sizes() -> None:
    print(f"{'distribution':<16} {'version':<10} {'MB':>9} {'of it .pyc':>11}")
    grand = 0.0
    for dist in TF_ADDED:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            print(f"{dist:<16} not installed")
            continue
        mb, pyc = installed_mb(dist)
        grand += mb
        print(f"{dist:<16} {version:<10} {mb:9.1f} {pyc:11.1f}")
    print(f"{'total':<27} {grand:9.1f}")


def child(order: str, env: dict[str, str]) -> tuple[dict, int]:
    done = subprocess.run([sys.executable, "-c", _CHILD, order], capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}, 0
    return json.loads(done.stdout.strip().splitlines()[-1]), len(done.stderr.encode())


def bench_processes(runs: int) -> None:
    cases = [
        ("torch", "torch", {}),
        ("tensorflow, not quieted", "tf", {}),
        ("tensorflow, quiet variables", "tf", QUIET),
        ("torch, then tensorflow", "torch,tf", QUIET),
        ("tensorflow, then torch", "tf,torch", QUIET),
        ("keras on torch, then tensorflow", "torch,keras,tf", {**QUIET, "KERAS_BACKEND": "torch"}),
        ("keras on torch alone (get_config)", "torch,keras", {**QUIET, "KERAS_BACKEND": "torch"}),
        ("keras on the tensorflow backend", "keras", {**QUIET, "KERAS_BACKEND": "tensorflow"}),
    ]
    header = f"{'process':<36} {'wall s':>7} {'CPU s':>6} {'peak MB':>8} {'threads':>7} {'stderr B':>8}  notes"
    print(header)
    for label, order, env in cases:
        samples = [child(order, env) for _ in range(runs)]
        if "error" in samples[0][0]:
            print(f"{label:<36} failed: {samples[0][0]['error'][:80]}")
            continue
        med = {k: statistics.median(s[0][k] for s in samples) for k in ("wall", "cpu", "rss_mb", "threads")}
        notes = [f"keras on {samples[0][0]['keras_backend']}"] if "keras_backend" in samples[0][0] else []
        notes += ["tensorflow loaded"] if samples[0][0]["tf_loaded"] else []
        print(f"{label:<36} {med['wall']:7.2f} {med['cpu']:6.2f} {med['rss_mb']:8.0f} {med['threads']:7.0f} "
              f"{max(s[1] for s in samples):8d}  {', '.join(notes)}")


_AGREE = r"""
import numpy as np, torch
from mlinfra import frameworks as fw
tf = fw.import_tensorflow()
torch.manual_seed(0)
model = fw.torch_mlp(64, 32, 10)
x = np.random.default_rng(0).random((297, 64), dtype=np.float32) * 4
k = [tf.constant(m.weight.detach().numpy().T) for m in (model[0], model[2])]
b = [tf.constant(m.bias.detach().numpy()) for m in (model[0], model[2])]
forward = tf.function(lambda t: tf.matmul(tf.nn.relu(tf.matmul(t, k[0]) + b[0]), k[1]) + b[1])
print(fw.max_abs_diff(fw.torch_predict(model, x), forward(tf.constant(x)).numpy()))
"""


def bench_agreement() -> None:
    for onednn in ("0", "1"):
        done = subprocess.run([sys.executable, "-c", _AGREE], capture_output=True, text=True, check=False,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": onednn})
        result = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
        print(f"TF_ENABLE_ONEDNN_OPTS={onednn}: max |PyTorch - TensorFlow| = {result}")


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="bench_tensorflow.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh interpreters per case (median)")
    args = parser.parse_args(argv)
    bench_sizes()
    print()
    bench_processes(args.runs)
    print()
    bench_agreement()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
