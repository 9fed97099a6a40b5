"""One small model, three runtimes: forward latency in PyTorch eager, Keras 3 (torch backend) and ONNX Runtime.

    python bench/bench_frameworks.py [--repeats 300] [--threads 1] [--batches 1,32,256]
    python bench/bench_frameworks.py --imports [--tf-python /tmp/tfvenv/bin/python]
    python bench/bench_frameworks.py --sizes [--tf-python /tmp/tfvenv/bin/python]

The model is lesson 1.4's (mlinfra.frameworks: 64 -> 32 -> ReLU -> 10, the 8x8 digits' size), with the same
weights in all three runtimes; the outputs are compared first (largest absolute difference), then the median
time of one forward is printed for each batch size, side by side, with the same number of threads everywhere.

--imports measures instead what each runtime costs to start: the wall time of `import X` in a fresh interpreter
(median of --import-runs), for torch, keras on the torch backend (which imports torch), onnxruntime and onnx;
with --tf-python, also tensorflow and keras on the tensorflow backend in that other environment (the course does
not install TensorFlow: docs/frameworks.md). --sizes prints the installed size of the packages the frameworks
part adds (and, with --tf-python, of those tensorflow-cpu adds). Prints figures only; never fails on time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlinfra.base.runner import ArgumentParser  # a bad argument: one line pointing at --help, exit 2


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def import_seconds(
    python: str, statement: str, runs: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of a fresh interpreter running `statement`, minus those of an
    empty one. CPU time is the steadier figure on a busy machine: waiting for a core does not count in it."""
    base = dict(os.environ, **(env or {}))

    def once(code: str) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [python, "-c", code], check=True, env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def medians(code: str) -> tuple[float, float]:
        samples = [once(code) for _ in range(runs)]
        return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)

    empty_wall, empty_cpu = medians("pass")
    wall, cpu = medians(statement)
    return wall - empty_wall, cpu - empty_cpu


def bench_imports(args: argparse.Namespace) -> int:
    rows = [
        ("torch", sys.executable, "import torch", None),
        ("keras (torch backend)", sys.executable, "import keras", {"KERAS_BACKEND": "torch"}),
        ("onnxruntime", sys.executable, "import onnxruntime", None),
        ("onnx", sys.executable, "import onnx", None),
    ]
    if args.tf_python:
        rows += [
            ("tensorflow", args.tf_python, "import tensorflow", {"TF_CPP_MIN_LOG_LEVEL": "3"}),
            (
                "keras (tensorflow backend)",
                args.tf_python,
                "import keras",
                {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
            ),
        ]
    print(
        f"Import cost, fresh interpreter, median of {args.import_runs} (load average {os.getloadavg()[0]:.1f}):"
    )
    print(f"  {'import':<28}{'wall s':>8}{'CPU s':>8}")
    for name, python, statement, env in rows:
        try:
            wall, cpu = import_seconds(python, statement, args.import_runs, env)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"  {name:<28} not measured ({exc})")
            continue
        print(f"  {name:<28}{wall:8.2f}{cpu:8.2f}   ({python})", flush=True)
    return 0


SIZE_SCRIPT = """
import os, sys
from importlib.metadata import PackageNotFoundError, distribution
for name in sys.argv[1:]:
    try:
        d = distribution(name)
    except PackageNotFoundError:
        print(name, "-", -1)
        continue
    total = 0
    for f in d.files or []:
        try:
            total += os.path.getsize(d.locate_file(f))
        except OSError:
            pass
    print(name, d.version, total)
"""
COURSE_DISTS = [
    "keras",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnx-ir",
    "h5py",
    "ml_dtypes",
    "optree",
    "absl-py",
    "flatbuffers",
    "namex",
    "tokenizers",
    "huggingface_hub",
    "hf-xet",
]
TF_DISTS = [
    "tensorflow-cpu",
    "libclang",
    "keras",
    "h5py",
    "ml_dtypes",
    "optree",
    "absl-py",
    "gast",
    "google-pasta",
    "opt_einsum",
    "astunparse",
    "flatbuffers",
    "namex",
]


def bench_sizes(args: argparse.Namespace) -> int:
    """Installed size of each distribution: the files its RECORD lists, summed."""
    envs = [("course environment", sys.executable, COURSE_DISTS)]
    if args.tf_python:
        envs.append(("with tensorflow-cpu", args.tf_python, TF_DISTS))
    for label, python, names in envs:
        try:
            out = subprocess.run(
                [python, "-c", SIZE_SCRIPT, *names], check=True, capture_output=True, text=True
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"{label}: not measured ({exc})")
            continue
        print(f"Installed size, {label} ({python}):")
        total = 0
        for line in out.stdout.splitlines():
            name, version, size = line.split()
            if int(size) < 0:
                print(f"  {name:<18} not installed")
                continue
            total += int(size)
            print(f"  {name:<18}{version:>12}{int(size) / 1e6:9.1f} MB")
        print(f"  {'total':<30}{total / 1e6:9.1f} MB")
    return 0


def bench_forward(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm import tqdm

    from mlinfra import frameworks as fw

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = fw.torch_mlp().eval()
    keras_model = fw.copy_torch_to_keras(model, fw.keras_mlp())
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as tmp:
        session = fw.onnx_session(
            fw.export_onnx(model, torch.zeros(2, 64), Path(tmp) / "mlp.onnx"), args.threads
        )
        rng = np.random.default_rng(0)
        inputs = {b: rng.random((b, 64), dtype=np.float32) for b in args.batches}
        biggest = inputs[max(args.batches)]
        reference = fw.torch_predict(model, biggest)
        print(
            f"Frameworks benchmark: MLP 64 -> 32 -> 10, {args.threads} thread(s), {args.repeats} timed forwards a "
            f"cell, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"outputs vs PyTorch at batch {max(args.batches)}: Keras max |diff| "
            f"{fw.max_abs_diff(reference, fw.keras_predict(keras_model, biggest)):.1e}, ONNX Runtime "
            f"{fw.max_abs_diff(reference, fw.run_onnx(session, biggest)):.1e}"
        )
        runtimes: dict[str, Callable[[np.ndarray], object]] = {}
        tensors = {b: torch.from_numpy(x) for b, x in inputs.items()}

        def torch_eager(x: np.ndarray) -> object:
            with torch.inference_mode():
                return model(tensors[len(x)])

        runtimes["PyTorch eager"] = torch_eager
        runtimes["Keras 3 (torch)"] = lambda x: keras_model(x, training=False)
        runtimes["ONNX Runtime"] = lambda x: fw.run_onnx(session, x)
        cells = [(name, b) for name in runtimes for b in args.batches]
        results: dict[tuple[str, int], float] = {}
        for name, b in tqdm(cells, desc="measuring", unit="cell", file=sys.stderr, leave=False):
            run, x = runtimes[name], inputs[b]
            results[name, b] = median_ms(lambda: run(x), args.repeats)  # noqa: B023 (called at once)
    print()
    print(f"{'median ms per forward':<24}" + "".join(f"{f'batch {b}':>12}" for b in args.batches))
    for name in runtimes:
        print(f"{name:<24}" + "".join(f"{results[name, b]:12.4f}" for b in args.batches))
    base = args.batches[0]
    print(
        f"\nat batch {base}: Keras {results['Keras 3 (torch)', base] / results['PyTorch eager', base]:.1f}x "
        f"PyTorch eager; ONNX Runtime {results['ONNX Runtime', base] / results['PyTorch eager', base]:.2f}x"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="bench_frameworks.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=300, help="timed forwards per runtime and batch (default 300)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for torch and ONNX Runtime (default 1)"
    )
    parser.add_argument(
        "--batches", default="1,32,256", help="comma-separated batch sizes (default 1,32,256)"
    )
    parser.add_argument("--imports", action="store_true", help="measure import times instead of forwards")
    parser.add_argument(
        "--sizes", action="store_true", help="print the installed size of each framework package"
    )
    parser.add_argument(
        "--import-runs", type=int, default=3, help="fresh interpreters per import (default 3)"
    )
    parser.add_argument(
        "--tf-python", help="with --imports or --sizes: a python with tensorflow-cpu installed, to compare"
    )
    args = parser.parse_args(argv)
    try:
        args.batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    except ValueError:
        parser.error(f"--batches takes comma-separated integers, e.g. 1,32,256; got {args.batches!r}")
    if (
        not args.batches
        or min(args.batches) < 1
        or args.repeats < 1
        or args.threads < 1
        or args.import_runs < 1
    ):
        parser.error("--batches, --repeats, --threads and --import-runs must be positive")
    if args.sizes:
        return bench_sizes(args)
    return bench_imports(args) if args.imports else bench_forward(args)


if __name__ == "__main__":
    sys.exit(main())
