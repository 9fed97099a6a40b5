"""The config-driven trainer: one resolved config in, one reproducible run folder out.

    python -m mlinfra.train --config baseline --set training.lr=0.003 --runs-dir runs

``runs/<run-id>/`` holds ``config.yaml`` (resolved: the data set actually used), ``metrics.json``,
``checkpoint.pt`` (model, optimizer and RNG states, config, metrics, versions) and ``train.log``. The run
id is a hash of the resolved config, so rerunning a finished experiment reuses its folder instead of training
again, an interrupted one resumes from its last epoch, and the same config gives the same numbers in any
folder (CPU, seeded, deterministic kernels, no worker processes).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlinfra.base import runner
from mlinfra.base.errors import UsageError
from mlinfra.base.runner import Done
from mlinfra.config import TrainConfig, config_to_dict, dump_config, load_config, resolve, run_id
from mlinfra.runs import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    CONFIG_FILE,
    LOCK_FILE,
    LOG_FILE,
    METRICS_FILE,
    RunResult,
    check_same_config,
    file_log,
    finished_run,
    load_checkpoint,
    read_metrics,
    run_lock,
    save_checkpoint,
    versions,
    write_metrics,
)

# The run-folder names live in mlinfra.runs; they are re-exported here, where a learner looks for them.
__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "LOCK_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "Prepared",
    "RunResult",
    "evaluate",
    "load_checkpoint",
    "main",
    "model_from_checkpoint",
    "prepare_data",
    "read_metrics",
    "run_training",
    "versions",
]

if TYPE_CHECKING:
    import torch

EVAL_BATCH = 512
log = logging.getLogger("mlinfra.train")
# Without a progress bar (output to a log, CI), a line at most this often within an epoch, so a long epoch is
# never silent: an epoch of ResNet-18 takes minutes on a busy 2-core machine.
PROGRESS_EVERY = 15.0


@dataclass
class Prepared:
    """The tensors a run trains and evaluates on, already resized and normalised."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    dataset: dict[str, Any]
    mean: list[float]
    std: list[float]


def prepare_data(cfg: TrainConfig) -> Prepared:
    """Load the configured data set, keep ``limit_train`` images, resize to the model's input, normalise.

    Mean and std come from the training images only (the served model's card carries them).
    """
    import torch
    import torch.nn.functional as F

    from mlinfra.data import load_dataset

    d = cfg.data
    splits = load_dataset(
        d.source,
        root=d.root,
        download=d.download,
        seed=d.seed,
        val_fraction=d.val_fraction,
        test_fraction=d.test_fraction,
    )
    x_train, y_train = splits.train.tensors
    if d.limit_train is not None and d.limit_train < len(y_train):
        keep = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(d.seed))[: d.limit_train]
        keep = keep.sort().values
        x_train, y_train = x_train[keep], y_train[keep]
    size = cfg.model.input_size

    def resize(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)

    x_train = resize(x_train)
    # Rounded so the model card reads cleanly; the same rounded values normalise training and serving.
    mean = [round(float(x_train.mean()), 4)]
    std = [round(float(x_train.std()), 4)]

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x - mean[0]) / std[0]

    dataset = {
        "name": splits.info.name,
        "image_size": splits.info.image_size,
        "classes": splits.info.classes,
        "n_train": len(y_train),
        "n_val": splits.info.n_val,
        "n_test": splits.info.n_test,
        "detail": splits.info.detail,
    }
    if len(y_train) != splits.info.n_train:
        dataset["detail"] += f"; training on {len(y_train)} of the {splits.info.n_train} training images"
    return Prepared(
        norm(x_train),
        y_train,
        norm(resize(splits.val.tensors[0])),
        splits.val.tensors[1],
        norm(resize(splits.test.tensors[0])),
        splits.test.tensors[1],
        dataset,
        mean,
        std,
    )


def run_training(
    cfg: TrainConfig,
    runs_dir: Path | str | None = None,
    *,
    progress: bool | None = None,
    max_epochs: int | None = None,
) -> RunResult:
    """Train ``cfg`` into ``runs_dir/<run-id>/`` (default ``cfg.output.runs_dir``), or reuse a finished run.

    ``progress``: a tqdm bar on stderr; None shows it only on a terminal outside CI (pass True in a notebook).
    ``max_epochs``: stop after that many epochs in this call, leaving a run that the next call resumes.
    """
    cfg = resolve(cfg)
    rid = run_id(cfg)
    run_dir = Path(runs_dir if runs_dir is not None else cfg.output.runs_dir) / rid
    finished = finished_run(run_dir)
    if finished is not None:
        return finished
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the run folder {run_dir} ({exc.strerror}): pass --runs-dir to a writable folder"
        ) from None
    with run_lock(run_dir), file_log(run_dir / LOG_FILE):
        check_same_config(run_dir, cfg)
        (run_dir / CONFIG_FILE).write_text(dump_config(cfg))
        return _train(cfg, rid, run_dir, _show_progress(progress), max_epochs)


def model_from_checkpoint(path: Path | str) -> torch.nn.Module:
    """The trained model of a run folder or checkpoint file, in eval mode."""
    from mlinfra.config import config_from_dict
    from mlinfra.models import build_model

    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"], source=str(path))
    model = build_model(
        cfg.model.name,
        num_classes=len(ckpt["dataset"]["classes"]),
        in_channels=1,
        image_size=cfg.model.input_size,
    )
    model.load_state_dict(ckpt["model_state"])
    return model.eval()


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on already-normalised ``x``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), EVAL_BATCH):
            logits = model(x[i : i + EVAL_BATCH])
            loss_sum += float(F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum"))
            correct += int((logits.argmax(1) == y[i : i + EVAL_BATCH]).sum())
    return loss_sum / max(len(y), 1), correct / max(len(y), 1)


# --- the training loop --------------------------------------------------------------------------------


def _train(cfg: TrainConfig, rid: str, run_dir: Path, show: bool, max_epochs: int | None) -> RunResult:
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from mlinfra.models import build_model, count_parameters

    t = cfg.training
    data = prepare_data(cfg)
    with _deterministic(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(t.seed)
        model = build_model(
            cfg.model.name,
            num_classes=len(data.dataset["classes"]),
            in_channels=1,
            image_size=cfg.model.input_size,
        )
        steps_per_epoch = -(-len(data.y_train) // t.batch_size)
        optimizer = _optimizer(cfg, model)
        scheduler = _scheduler(cfg, optimizer, steps_per_epoch)
        shuffle = torch.Generator().manual_seed(t.seed)
        metrics: list[dict[str, float]] = []
        ckpt_path = run_dir / CHECKPOINT_FILE
        if ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path)
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            scheduler.load_state_dict(ckpt["scheduler_state"])
            shuffle.set_state(ckpt["rng"]["shuffle"])
            torch.set_rng_state(ckpt["rng"]["torch"])
            metrics = list(ckpt["metrics"])
            log.info("resuming %s after epoch %d of %d", rid, len(metrics), t.epochs)
        else:
            log.info(
                "run %s: %s; model %s (%d parameters, input %d px); %s, lr %g, batch %d, %d epochs",
                rid,
                data.dataset["detail"],
                cfg.model.name,
                count_parameters(model),
                cfg.model.input_size,
                t.optimizer,
                t.lr,
                t.batch_size,
                t.epochs,
            )
        stop = t.epochs if max_epochs is None else min(t.epochs, len(metrics) + max_epochs)
        for epoch in range(len(metrics) + 1, stop + 1):
            start = time.perf_counter()
            model.train()
            order = torch.randperm(len(data.y_train), generator=shuffle)
            total, seen = 0.0, 0
            bar = tqdm(
                range(steps_per_epoch),
                desc=f"epoch {epoch}/{t.epochs}",
                disable=not show,
                leave=False,
                unit="batch",
                file=sys.stderr,
            )
            noted = start
            for step in bar:
                idx = order[step * t.batch_size : (step + 1) * t.batch_size]
                loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
                now = time.perf_counter()
                if not show and now - noted >= PROGRESS_EVERY and step + 1 < steps_per_epoch:
                    noted = now
                    log.info(
                        "  epoch %d/%d: batch %d/%d, train_loss %.4f, %.0f s so far, about %.0f s to go",
                        epoch,
                        t.epochs,
                        step + 1,
                        steps_per_epoch,
                        total / seen,
                        now - start,
                        (now - start) / (step + 1) * (steps_per_epoch - step - 1),
                    )
            bar.close()
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
            row = {
                "epoch": epoch,
                "train_loss": round(total / seen, 6),
                "val_loss": round(val_loss, 6),
                "val_accuracy": round(val_acc, 6),
                "seconds": round(time.perf_counter() - start, 3),
            }
            metrics.append(row)
            log.info(
                "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_accuracy %.4f  (%.1f s)",
                epoch,
                t.epochs,
                row["train_loss"],
                row["val_loss"],
                row["val_accuracy"],
                row["seconds"],
            )
            if epoch < t.epochs:  # the last epoch is saved once, with its test accuracy, below
                _save(run_dir, rid, cfg, data, model, optimizer, scheduler, shuffle, metrics, None)
        test_acc = None
        if len(metrics) == t.epochs:
            test_acc = round(evaluate(model, data.x_test, data.y_test)[1], 6)
            _save(run_dir, rid, cfg, data, model, optimizer, scheduler, shuffle, metrics, test_acc)
            log.info(
                "test_accuracy %.4f on %d test images; run folder %s", test_acc, len(data.y_test), run_dir
            )
    return RunResult(
        rid,
        run_dir,
        metrics,
        test_acc if test_acc is not None else float("nan"),
        ckpt_path,
        reused=False,
        dataset=data.dataset,
        normalization={"mean": data.mean, "std": data.std},
    )


def _save(
    run_dir: Path,
    rid: str,
    cfg: TrainConfig,
    data: Prepared,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    shuffle: torch.Generator,
    metrics: list[dict[str, float]],
    test_acc: float | None,
) -> None:
    """Checkpoint first, then metrics.json: a run counts as finished only once both are on disk."""
    import torch

    from mlinfra.models import count_parameters

    normalization = {"mean": data.mean, "std": data.std}
    state = {
        "format": CHECKPOINT_FORMAT,
        "run_id": rid,
        "epoch": len(metrics),
        "config": config_to_dict(cfg),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state()},
        "metrics": metrics,
        "test_accuracy": test_acc,
        "dataset": data.dataset,
        "normalization": normalization,
        "versions": versions(),
    }
    save_checkpoint(state, run_dir)
    summary = {
        "run_id": rid,
        "complete": test_acc is not None,
        "model": cfg.model.name,
        "parameters": count_parameters(model),
        "epochs": metrics,
        "test_accuracy": test_acc,
        "best_val_accuracy": max(r["val_accuracy"] for r in metrics),
        "dataset": data.dataset,
        "normalization": normalization,
    }
    write_metrics(run_dir, summary)


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    import torch

    t = cfg.training
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    import torch

    t = cfg.training
    total = t.epochs * steps_per_epoch
    if t.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=t.lr, total_steps=total)
    if t.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)


@contextmanager
def _deterministic() -> Iterator[None]:
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return sys.stderr.isatty() and not os.environ.get("CI")


# --- command line -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from mlinfra.config import packaged_configs

    parser = runner.ArgumentParser(
        prog="python -m mlinfra.train",
        description="Train a model from a YAML config into runs/<run-id>/ (config.yaml, metrics.json, "
        "checkpoint.pt, train.log). A finished run with the same resolved config is reused; an "
        "interrupted one resumes.",
        epilog=f"packaged configs: {', '.join(packaged_configs())}. "
        "Compare runs: `make compare` (or .venv/bin/python -m mlinfra.compare runs/)",
    )
    parser.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="a YAML config file, or the name of a packaged config (e.g. baseline)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one value, read as YAML (repeatable), e.g. --set training.lr=0.003",
    )
    parser.add_argument(
        "--runs-dir", metavar="DIR", help="where run folders go (default: the config's output.runs_dir)"
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="ask torchvision to download MNIST into data.root (needs the internet; same as "
        "--set data.download=true). Without it, runs never touch the network.",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    parser.add_argument(
        "--json", metavar="FILE", dest="json_out", help="also write the result as JSON to FILE ('-': stdout)"
    )
    return parser


def run(args: argparse.Namespace) -> Any:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    try:
        overrides = [*args.overrides, *(["data.download=true"] if args.download else [])]
        cfg = load_config(args.config, overrides)
        result = run_training(cfg, args.runs_dir, progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        print("rerun the same command to resume from the last finished epoch", file=sys.stderr)
        raise
    finally:
        log.removeHandler(handler)
    if result.reused:
        print(f"reused the finished run {result.run_id} (same resolved config)")
    print(f"run folder:    {result.run_dir}")
    print(
        f"test accuracy: {result.test_accuracy:.4f} ({result.dataset.get('name', '?')}, "
        f"{result.dataset.get('n_test', '?')} test images)"
    )
    return Done(0, result)


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.train", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
