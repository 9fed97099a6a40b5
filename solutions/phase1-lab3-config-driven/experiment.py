"""Run experiments from configs, one folder per run, and compare them.

    python experiment.py validate configs/*.yaml
    python experiment.py run configs/baseline.yaml --out runs --set training.lr=0.01
    python experiment.py compare runs

A run's folder is <out>/<run id>/ with config.yaml (the resolved config), metrics.json (one row per epoch),
checkpoint.pt (the weights) and train.log. The run id comes from the resolved config, so running the same
config again finds the finished folder and does not train twice.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from runconfig import ConfigError, resolve, run_id

# MNIST is looked for beside this file, never relative to wherever the command happens to run.
DATA_ROOT = Path(__file__).resolve().parent / "data"
RUN_FILES = ("config.yaml", "metrics.json", "checkpoint.pt", "train.log")


@dataclass
class RunResult:
    run_id: str
    folder: Path
    metrics: list[dict[str, float]]  # one row per epoch: epoch, train_loss, val_loss, val_accuracy
    reused: bool  # True when the finished folder was already there and nothing was trained


def train_and_evaluate(resolved: dict[str, dict[str, Any]], log: Callable[[str], Any]):
    """Train the configured model and validate it after every epoch: (model, one metrics row per epoch).

    The loop itself is the course library's (`mlinfra.loops.fit_epochs`): this lab is about configs and runs.
    Shuffling is seeded from the config there; seeding the weights' initialisation is the caller's job
    (seed_everything) before this is called.
    """
    from mlinfra.data import load_dataset
    from mlinfra.loops import fit_epochs
    from mlinfra.models import build_model

    training = resolved["training"]
    splits = load_dataset(resolved["data"]["source"], root=DATA_ROOT)
    log(f"data: {splits.info.detail}")
    model = build_model(resolved["model"]["name"])
    history = fit_epochs(model, splits.train, splits.val, lr=training["lr"], batch_size=training["batch_size"],
                         epochs=training["epochs"], seed=training["seed"], log=log)
    return model, history


def seed_everything(seed: int) -> None:
    """Seed every random number generator a run draws from: Python's `random`, NumPy's and torch's."""
    import numpy as np
    import torch

    ### BEGIN SOLUTION
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ### END SOLUTION


def run(config_path: str | Path, out_dir: str | Path, overrides: Iterable[str] = ()) -> RunResult:
    """Resolve the config (file + overrides), then train it into out_dir/<run id>/ unless that run is finished.

    - Everything goes under `out_dir`: nothing is written anywhere else (in particular not in the current folder).
    - A finished run (its metrics.json exists) is reused as it is: no training, no second folder.
    - Write the run into a temporary folder beside it (e.g. out_dir/.<run id>.partial) and rename it when
      complete, so a crash never leaves a folder that looks finished.
    - Seed with seed_everything(the config's training.seed) right before train_and_evaluate.
    - config.yaml holds the resolved config; metrics.json the rows; checkpoint.pt the model's state_dict;
      train.log every line `log` was given (print them too, so a person sees progress).
    - A bad config raises ConfigError: never catch it here.
    """
    import torch

    ### BEGIN SOLUTION
    resolved = resolve(config_path, overrides)
    rid = run_id(resolved)
    out_dir = Path(out_dir)
    folder = out_dir / rid
    if (folder / "metrics.json").is_file():
        print(f"{rid}: already finished in {folder}, nothing to do")
        return RunResult(rid, folder, json.loads((folder / "metrics.json").read_text()), reused=True)
    partial = out_dir / f".{rid}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=True))
    with open(partial / "train.log", "w") as log_file:
        def log(line: str) -> None:
            print(line)
            log_file.write(line + "\n")

        log(f"run {rid} from {config_path}" + (f" with {' '.join(overrides)}" if overrides else ""))
        seed_everything(resolved["training"]["seed"])
        model, history = train_and_evaluate(resolved, log)
    torch.save(model.state_dict(), partial / "checkpoint.pt")
    (partial / "metrics.json").write_text(json.dumps(history, indent=2) + "\n")
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished leftover under the final name
    partial.rename(folder)
    return RunResult(rid, folder, history, reused=False)
    ### END SOLUTION


def compare(out_dir: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """Read every finished run under `out_dir` (folders holding metrics.json and config.yaml) and:

    - print a table, one line per run, best final val_accuracy first, with the columns
      run_id, model, lr, batch_size, epochs, seed, val_accuracy (of the last epoch);
    - save a plot of val_accuracy against epoch, one line per run labelled with its run id, as
      out_dir/compare.png (use matplotlib.figure.Figure directly: no pyplot, no window);
    - return (the rows as dicts with those keys, in the printed order; the plot's path).
    """
    from matplotlib.figure import Figure

    ### BEGIN SOLUTION
    out_dir = Path(out_dir)
    runs = []
    for folder in sorted(p for p in out_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not ((folder / "metrics.json").is_file() and (folder / "config.yaml").is_file()):
            continue
        config = yaml.safe_load((folder / "config.yaml").read_text())
        runs.append((folder.name, config, json.loads((folder / "metrics.json").read_text())))
    rows = [{"run_id": rid, "model": c["model"]["name"], "lr": c["training"]["lr"],
             "batch_size": c["training"]["batch_size"], "epochs": c["training"]["epochs"],
             "seed": c["training"]["seed"], "val_accuracy": m[-1]["val_accuracy"]} for rid, c, m in runs]
    rows.sort(key=lambda row: row["val_accuracy"], reverse=True)
    columns = list(rows[0]) if rows else ["run_id"]
    cells = [[f"{r[c]:.4f}" if c == "val_accuracy" else str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for rid, _, metrics in runs:
        ax.plot([m["epoch"] for m in metrics], [m["val_accuracy"] for m in metrics], marker="o", label=rid)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7)
    plot = out_dir / "compare.png"
    fig.savefig(plot, dpi=100, bbox_inches="tight")
    return rows, plot
    ### END SOLUTION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate configs, run them into per-run folders, compare runs.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="check config files and print each one resolved")
    check.add_argument("configs", nargs="+", type=Path)
    go = sub.add_parser("run", help="train one config into OUT/<run id>/ (skipped when already finished)")
    go.add_argument("config", type=Path)
    go.add_argument("--out", type=Path, required=True, help="folder that holds the run folders, e.g. runs")
    go.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override one key, e.g. --set training.lr=0.01 (repeatable)")
    table = sub.add_parser("compare", help="print a table of the runs under a folder and save compare.png")
    table.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            for path in args.configs:
                resolved = resolve(path)
                print(f"{path}: ok ({run_id(resolved)})")
        elif args.command == "run":
            result = run(args.config, args.out, args.overrides)
            print(f"{'reused' if result.reused else 'finished'}: {result.folder}")
        else:
            if not args.out.is_dir():
                parser.error(f"{args.out} is not a folder of runs: run a config with --out {args.out} first")
            _, plot = compare(args.out)
            print(f"plot: {plot}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
