"""What training costs on this machine: the digits' load time, time to 97% with the reference CNN, seconds per
epoch of each model, and checkpoint sizes.

    python bench/bench_training.py [--models mlp,cnn,resnet18] [--threads N]

Every run goes through mlinfra.train.run_training into a temporary folder (nothing is reused).
"Time to 97%" is the training time until the validation accuracy first reaches 97% with the packaged
baseline config; the test accuracy printed is the finished run's. Prints figures only: nothing here passes
or fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,resnet18", help="models to time one epoch of")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()

    import torch

    from mlinfra.config import config_from_dict, load_config
    from mlinfra.data import load_dataset
    from mlinfra.train import read_metrics, run_training

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (figures scale with contention)"
    )

    start = time.perf_counter()
    splits = load_dataset("sklearn-digits")
    print(
        f"load the offline digits: {time.perf_counter() - start:.2f} s "
        f"({splits.info.n_train}/{splits.info.n_val}/{splits.info.n_test} images)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        cfg = load_config("baseline", ["data.source=sklearn-digits"])
        start, cpu = time.perf_counter(), time.process_time()
        run = run_training(cfg, Path(tmp) / "baseline", progress=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        elapsed, reached = 0.0, None
        for row in run.metrics:
            elapsed += row["seconds"]
            if row["val_accuracy"] >= 0.97:
                reached = (row["epoch"], elapsed)
                break
        where = f"{reached[1]:.1f} s (epoch {reached[0]})" if reached else "not reached"
        print(
            f"cnn baseline ({cfg.training.epochs} epochs): val accuracy >= 97% after {where}; "
            f"test accuracy {run.test_accuracy:.4f}; whole run {wall:.1f} s ({cpu:.1f} CPU s)"
        )

        print(f"{'model':10} {'s/epoch':>8} {'CPU s/run':>10} {'params':>11} {'checkpoint MB':>14}")
        for name in args.models.split(","):
            size = 32 if name == "resnet18" else 28
            one = config_from_dict(
                {
                    "data": {"source": "sklearn-digits"},
                    "model": {"name": name, "input_size": size},
                    "training": {"epochs": 1},
                }
            )
            cpu = time.process_time()
            result = run_training(one, Path(tmp) / name, progress=False)
            cpu = time.process_time() - cpu
            params = read_metrics(result.run_dir)["parameters"]
            mb = result.checkpoint.stat().st_size / 1e6
            print(f"{name:10} {result.metrics[0]['seconds']:8.1f} {cpu:10.1f} {params:11,d} {mb:14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
