"""Train a digit classifier: the code the notebook walks you through, and a script you can run.

    python train.py --epochs 3                              # the small CNN; checkpoint in runs/last.pt
    python train.py --model mlp --epochs 5 --lr 0.003
    python train.py --resume runs/last.pt --epochs 2  # two more epochs from where it stopped

The data comes from the course library (`mlinfra.data.load_dataset`): MNIST when its files are under data/,
else the handwritten digits scikit-learn ships (offline). Every run prints which one it used.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

NUM_CLASSES = 10
IMAGE_SIZE = 28


# ---------------------------------------------------------------------------------------------------- models
class MLP(nn.Module):
    """The baseline: flatten the image, one hidden layer (Linear -> ReLU), a Linear layer to the 10 classes."""

    def __init__(self, hidden: int = 128, image_size: int = IMAGE_SIZE, num_classes: int = NUM_CLASSES):
        super().__init__()
        ### BEGIN SOLUTION
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(image_size * image_size, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.layers(x)
        ### END SOLUTION


class SmallCNN(nn.Module):
    """Two conv blocks (3x3 conv -> BatchNorm -> ReLU -> 2x2 max-pool: 28 -> 14 -> 7 pixels, 16 then 32 channels),
    then flatten and one Linear layer to the 10 classes."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        ### BEGIN SOLUTION
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, num_classes))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ### BEGIN SOLUTION
        return self.head(self.features(x))
        ### END SOLUTION


MODELS: dict[str, Callable[[], nn.Module]] = {"mlp": MLP, "cnn": SmallCNN}


def build_model(name: str) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODELS)}")
    return MODELS[name]()


# ------------------------------------------------------------------------------------------------------ data
def make_loaders(splits: Any, batch_size: int = 32, seed: int = 0) -> tuple[DataLoader, DataLoader, DataLoader]:
    """DataLoaders for splits.train (shuffled, the same order for the same seed), splits.val and splits.test
    (in order: evaluation needs no shuffling). Every example is used: no batch is dropped."""
    ### BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, generator=generator)
    val = DataLoader(splits.val, batch_size=512)
    test = DataLoader(splits.test, batch_size=512)
    return train, val, test
    ### END SOLUTION


# -------------------------------------------------------------------------------------------------- progress
def progress_enabled() -> bool:
    """Bars are for a person watching. Stay silent in CI (`CI` is set) and while nbgrader runs the notebook
    (`NBGRADER_EXECUTION` is set): nbgrader gives 0 points to a graded cell that writes anything to stderr."""
    ### BEGIN SOLUTION
    return not (os.environ.get("CI") or os.environ.get("NBGRADER_EXECUTION"))
    ### END SOLUTION


def progress(iterable: Iterable, *, desc: str = "", total: int | None = None, enabled: bool | None = None):
    """`iterable` wrapped in a tqdm bar (a widget in Jupyter, text in a terminal), disabled unless `enabled`
    (default: `progress_enabled()`)."""
    from tqdm.auto import tqdm

    ### BEGIN SOLUTION
    if enabled is None:
        enabled = progress_enabled()
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False)
    ### END SOLUTION


# ------------------------------------------------------------------------------------------ train / evaluate
def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable, device: str | torch.device = "cpu", desc: str = "train") -> float:
    """One pass over `loader` (behind a `progress` bar); returns the mean loss per example."""
    ### BEGIN SOLUTION
    model.train()
    total, count = 0.0, 0
    for x, y in progress(loader, desc=desc):
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        count += len(y)
    return total / count
    ### END SOLUTION


@dataclass
class Evaluation:
    loss: float  # mean loss per example
    accuracy: float  # fraction correct, 0..1
    per_class_accuracy: list[float]  # per true class; 0.0 for a class with no examples
    confusion: list[list[int]]  # confusion[true][predicted] = count


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: Callable | None = None,
             device: str | torch.device = "cpu", num_classes: int = NUM_CLASSES) -> Evaluation:
    """Loss, accuracy, per-class accuracy and confusion matrix of `model` on `loader`, in eval mode."""
    ### BEGIN SOLUTION
    model.eval()
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    total_loss, count = 0.0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        total_loss += loss_fn(logits, y).item() * len(y)
        count += len(y)
        pairs = y.cpu() * num_classes + logits.argmax(dim=1).cpu()
        confusion += torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    per_class = (confusion.diag().double() / confusion.sum(dim=1).clamp(min=1)).tolist()
    return Evaluation(total_loss / count, confusion.diag().sum().item() / count, per_class, confusion.tolist())
    ### END SOLUTION


def fit(model: nn.Module, train_loader: DataLoader, val_loader: DataLoader, optimizer: torch.optim.Optimizer, *,
        epochs: int, start_epoch: int = 0, device: str | torch.device = "cpu",
        log: Callable[[str], Any] = print) -> list[dict[str, float]]:
    """Train `epochs` more epochs after `start_epoch`, validating after each; one metrics row per epoch."""
    loss_fn = nn.CrossEntropyLoss()
    history = []
    for epoch in range(start_epoch + 1, start_epoch + epochs + 1):
        train_loss = train_one_epoch(model, train_loader, optimizer, loss_fn, device, desc=f"epoch {epoch}")
        val = evaluate(model, val_loader, loss_fn, device)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val.loss,
                        "val_accuracy": val.accuracy})
        log(f"epoch {epoch}: train loss {train_loss:.4f}  val loss {val.loss:.4f}  val accuracy {val.accuracy:.2%}")
    return history


# ----------------------------------------------------------------------------------------------- checkpoints
def library_versions() -> dict[str, str]:
    import numpy

    # str(): torch.__version__ is a str subclass that weights_only loading refuses to unpickle.
    return {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(numpy.__version__)}


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int,
                    config: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """One file that can resume the run and explain it: keys model_state, optimizer_state, epoch, config,
    metrics and versions (`library_versions()`). Creates the parent folder; returns the path."""
    ### BEGIN SOLUTION
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "epoch": epoch,
        "config": config,
        "metrics": metrics,
        "versions": library_versions(),
    }, path)
    return path
    ### END SOLUTION


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore the model's (and, when given, the optimizer's) state in place and return the checkpoint dict.
    Loads with weights_only=True: opening a checkpoint must never run code from it."""
    ### BEGIN SOLUTION
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model_state"])
    if optimizer is not None:
        optimizer.load_state_dict(checkpoint["optimizer_state"])
    return checkpoint
    ### END SOLUTION


# ------------------------------------------------------------------------------------------------ the script
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train a digit classifier (MLP or small CNN) and save a checkpoint you can resume.",
        epilog="Example: python train.py --epochs 3, then python train.py --resume runs/last.pt --epochs 2")
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn", help="architecture (default: cnn)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs to train in this run (default: 3)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default: 0.003)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling (default: 0)")
    parser.add_argument("--data", choices=("auto", "mnist", "sklearn-digits"), default="auto",
                        help="data set; auto = MNIST if under data/, else the offline digits (default: auto)")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default: 1; for a model this small, more threads only contend)")
    parser.add_argument("--out", type=Path, default=Path("runs/last.pt"), help="checkpoint to write")
    parser.add_argument("--resume", type=Path, help="checkpoint to continue from (its model and settings win)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    from mlinfra.data import load_dataset

    config = {"model": args.model, "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
              "data": args.data}
    start_epoch, history = 0, []
    if args.resume:
        if not args.resume.is_file():
            parser.error(f"--resume {args.resume}: no such file; train without --resume first")
        config = torch.load(args.resume, map_location="cpu", weights_only=True)["config"]
    torch.set_num_threads(args.threads)
    torch.manual_seed(config["seed"])
    splits = load_dataset(config["data"])
    config["data"] = splits.info.name  # "auto" resolved: the checkpoint records what it was trained on
    print(f"data: {splits.info.detail}")
    model = build_model(config["model"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    if args.resume:
        checkpoint = load_checkpoint(args.resume, model, optimizer)
        start_epoch, history = checkpoint["epoch"], checkpoint["metrics"]["history"]
        print(f"resumed from {args.resume} at epoch {start_epoch}")
    # Shuffle differently after a resume, so the new epochs do not replay the first epochs' order.
    train_loader, val_loader, test_loader = make_loaders(splits, config["batch_size"], config["seed"] + start_epoch)
    history += fit(model, train_loader, val_loader, optimizer, epochs=args.epochs, start_epoch=start_epoch)
    test = evaluate(model, test_loader)
    print(f"test accuracy {test.accuracy:.2%}; per class: "
          + " ".join(f"{c}:{a:.0%}" for c, a in enumerate(test.per_class_accuracy)))
    metrics = {"history": history, "test_accuracy": test.accuracy, "test_per_class_accuracy": test.per_class_accuracy,
               "data": splits.info.name}
    path = save_checkpoint(args.out, model, optimizer, epoch=start_epoch + args.epochs, config=config,
                           metrics=metrics)
    print(f"checkpoint: {path} (resume with: python train.py --resume {path} --epochs 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
