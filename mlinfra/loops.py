"""A compact train-and-validate loop for labs about something other than the loop (lab 1.3 is about configs and
run folders), so their starters hold no training loop of their own.

Lab 1.2 asks learners to write their own loop; this one is built differently on purpose (whole tensors, batches
of shuffled indices, a summed loss), and `mlinfra.train` is the full-size trainer behind `make model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch.utils.data import TensorDataset


def fit_epochs(
    model: torch.nn.Module,
    train: TensorDataset,
    val: TensorDataset,
    *,
    lr: float,
    batch_size: int,
    epochs: int,
    seed: int,
    log: Callable[[str], Any] = print,
) -> list[dict[str, float]]:
    """Adam on `train` for `epochs` epochs, validated on `val` after each: one row per epoch with epoch,
    train_loss (mean per example), val_loss and val_accuracy. The batch order comes from `seed` alone;
    seeding the weights' initialisation is the caller's job, before the model is built."""
    import torch
    import torch.nn.functional as F

    from mlinfra.train import evaluate

    inputs, targets = train.tensors
    val_inputs, val_targets = val.tensors
    adam = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    rows: list[dict[str, float]] = []
    for epoch in range(1, epochs + 1):
        model.train()
        summed = 0.0
        for picked in torch.randperm(len(targets), generator=order).split(batch_size):
            batch_sum = F.cross_entropy(model(inputs[picked]), targets[picked], reduction="sum")
            adam.zero_grad(set_to_none=True)
            (batch_sum / len(picked)).backward()
            adam.step()
            summed += float(batch_sum)
        val_loss, val_accuracy = evaluate(model, val_inputs, val_targets)
        rows.append({"epoch": epoch, "train_loss": summed / max(len(targets), 1), "val_loss": val_loss,
                     "val_accuracy": val_accuracy})
        log(f"epoch {epoch}/{epochs}: train loss {rows[-1]['train_loss']:.4f}  val loss {val_loss:.4f}  "
            f"val accuracy {val_accuracy:.2%}")
    return rows
