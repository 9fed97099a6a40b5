"""The course pipeline's steps as plain functions: ingest -> validate -> engineer features -> train ->
evaluate.

This is the computation; the Airflow DAG of lab 1.1 is the orchestration around it: it decides when each step
runs, in what order, with how many retries, and passes each step the logical date (``ds``). Every step

- reads and writes only under ``base/<stage>/<ds>/`` (a date partition), so two dates never collide;
- overwrites its outputs (written to a temporary name, then renamed), so running a date twice leaves the same
  bytes: the step is idempotent and safe to retry;
- returns a small JSON-able summary (a path, counts, a metric), which is what Airflow passes between tasks
  (XCom): never the data itself.

    from mlinfra import pipeline
    base = pipeline.data_dir()                     # $PIPELINE_DATA_DIR or ./data
    pipeline.ingest(base, "2024-01-01")
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DATA_DIR_ENV = "PIPELINE_DATA_DIR"
STAGES = ("raw", "validated", "features", "models", "reports")
SPLITS = ("train", "val", "test")
# The trainer's offline default: the features step splits exactly as mlinfra.data does, so evaluation on the
# features' test split is the trainer's own test set.
SEED, VAL_FRACTION, TEST_FRACTION = 0, 0.1, 0.2
_DS = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# The lab's contract on the DAG's shape: the steps each step must wait for (directly, or through tasks in
# between), because it reads what they wrote or must not run unless they passed. Any shape that keeps it is
# correct: the plain chain, or ingest fanning out to validate and engineer_features, which fan in to train.
MUST_FOLLOW: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "validate": ("ingest",),  # reads raw/<ds>
    "engineer_features": ("ingest",),  # reads raw/<ds>
    "train": ("validate", "engineer_features"),  # reads features/<ds>; never learns from data that failed checks
    "evaluate": ("train",),  # reads the checkpoint (and the features' test split, through train)
}
_WHY = {
    ("validate", "ingest"): "it checks the raw files ingest writes",
    ("engineer_features", "ingest"): "it reads the raw files ingest writes",
    ("train", "validate"): "a model must never learn from data that failed validation",
    ("train", "engineer_features"): "it trains on the features engineer_features writes",
    ("evaluate", "train"): "it scores the checkpoint train writes",
}


def order_problems(upstream: Mapping[str, Iterable[str]]) -> list[str]:
    """How a DAG's wiring breaks MUST_FOLLOW, one sentence each saying what to change ([] when it keeps it).

    ``upstream`` maps every task id to the ids of its direct upstream tasks (what ``autograder dag`` reports).
    Extra tasks are allowed; a step may wait for more than it must (a chain waits for everything before it).
    """
    graph = {task: set(ups) for task, ups in upstream.items()}

    def ancestors(task: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph.get(task, ()))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return seen

    problems = [
        f"there is no task {step!r}: add a @task named {step} that calls pipeline.{step}(DATA_DIR, ds)"
        for step in MUST_FOLLOW
        if step not in graph
    ]
    for step, before in MUST_FOLLOW.items():
        if step not in graph:
            continue
        waits_for = ancestors(step)
        for first in before:
            if first in graph and first not in waits_for:
                problems.append(
                    f"{step} can start before {first} has finished, but {_WHY[step, first]}: make {first} "
                    f"upstream of {step} (pass {first}'s result to {step}, or write {first} >> {step})"
                )
    return problems


class DataValidationError(ValueError):
    """The ingested data broke an expectation; the message lists every check that failed."""


def data_dir(default: Path | str = "data") -> Path:
    """The pipeline's base folder: ``$PIPELINE_DATA_DIR`` if set, else ``default``."""
    return Path(os.environ.get(DATA_DIR_ENV) or default)


def partition(base: Path | str, stage: str, ds: str) -> Path:
    """``base/<stage>/<ds>``: the one folder a step writes for one logical date."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    if not isinstance(ds, str) or not _DS.match(ds):
        raise ValueError(f"ds must be the logical date as YYYY-MM-DD (Airflow's {{{{ ds }}}}), got {ds!r}")
    date.fromisoformat(ds)
    return Path(base) / stage / ds


# -- 1. ingest -----------------------------------------------------------------------------------------------
def ingest(base: Path | str, ds: str) -> str:
    """Land the day's raw data: the 1,797 8x8 handwritten digits scikit-learn ships (grey levels 0..16).

    Writes raw/<ds>/images.npy, labels.npy and manifest.json. Offline: nothing is downloaded.
    """
    from mlinfra.data import digits_array

    images, labels = digits_array()
    out = partition(base, "raw", ds)
    _save_npy(out / "images.npy", images)
    _save_npy(out / "labels.npy", labels)
    _write_json(
        out / "manifest.json",
        {
            "ds": ds,
            "source": "sklearn-digits",
            "images": len(labels),
            "shape": list(images.shape[1:]),
            "pixel_range": [0, 16],
        },
    )
    return str(out)


# -- 2. validate ---------------------------------------------------------------------------------------------
def validate(base: Path | str, ds: str, min_per_class: int = 10) -> dict[str, Any]:
    """Check the raw partition before anything learns from it; raise DataValidationError listing what failed.

    Writes validated/<ds>/report.json (also when it fails, so the failure can be read afterwards).
    """
    import numpy as np

    raw = partition(base, "raw", ds)
    images, labels = np.load(raw / "images.npy"), np.load(raw / "labels.npy")
    counts = {str(c): int((labels == c).sum()) for c in range(10)}
    checks = {
        "same_length": len(images) == len(labels),
        "not_empty": len(labels) > 0,
        "image_shape_8x8": images.ndim == 3 and images.shape[1:] == (8, 8),
        "finite_pixels": bool(np.isfinite(images).all()),
        "pixels_in_0_16": bool(images.size and images.min() >= 0 and images.max() <= 16),
        "labels_in_0_9": bool(labels.size and labels.min() >= 0 and labels.max() <= 9),
        f"at_least_{min_per_class}_per_class": min(counts.values()) >= min_per_class,
    }
    report = {
        "ds": ds,
        "ok": all(checks.values()),
        "images": len(labels),
        "per_class": counts,
        "checks": checks,
    }
    _write_json(partition(base, "validated", ds) / "report.json", report)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise DataValidationError(f"raw/{ds} failed {len(failed)} check(s): {', '.join(failed)}")
    return {"ds": ds, "images": report["images"], "ok": True}


# -- 3. engineer features ------------------------------------------------------------------------------------
def engineer_features(base: Path | str, ds: str, seed: int = SEED) -> dict[str, Any]:
    """Raw 8x8 grey levels -> the model's input: 28x28 floats in [0, 1] (bilinear), split train/val/test with
    the same seeded stratified split as mlinfra.data. Writes features/<ds>/{split}_x.npy, {split}_y.npy and
    meta.json.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mlinfra.data import IMAGE_SIZE, stratified_split

    raw = partition(base, "raw", ds)
    images, labels = np.load(raw / "images.npy"), np.load(raw / "labels.npy")
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    test_idx, val_idx, train_idx = stratified_split(labels, (TEST_FRACTION, VAL_FRACTION), seed)
    out = partition(base, "features", ds)
    sizes = {}
    for split, idx in zip(SPLITS, (train_idx, val_idx, test_idx), strict=False):
        _save_npy(out / f"{split}_x.npy", x.numpy()[idx])
        _save_npy(out / f"{split}_y.npy", labels[idx].astype(np.int64))
        sizes[split] = len(idx)
    meta = {
        "ds": ds,
        "image_size": IMAGE_SIZE,
        "scale": "grey level / 16, bilinear to 28x28",
        "seed": seed,
        "sizes": sizes,
    }
    _write_json(out / "meta.json", meta)
    return {"ds": ds, "path": str(out), **sizes}


# -- 4. train ------------------------------------------------------------------------------------------------
def train(
    base: Path | str,
    ds: str,
    config: Path | str | None = None,
    overrides: Sequence[str] = (),
    epochs: int = 1,
) -> dict[str, Any]:
    """Train through the course's config-driven trainer into models/<ds>/<run-id>/.

    The trainer is idempotent by itself: the same resolved config gives the same run id, and a complete run is
    reused rather than trained again, so a retry or a rerun of the date leaves the same files.
    """
    from mlinfra.config import load_config
    from mlinfra.train import run_training

    cfg = load_config(config or default_config(), [*default_overrides(epochs), *overrides])
    result = run_training(cfg, runs_dir=partition(base, "models", ds), progress=False)
    return {
        "ds": ds,
        "run_id": result.run_id,
        "run_dir": str(result.run_dir),
        "checkpoint": str(result.checkpoint),
        "test_accuracy": float(result.test_accuracy),
        "reused": bool(result.reused),
    }


def default_config() -> str:
    """The reference CNN's packaged config (mlinfra/configs/baseline.yaml)."""
    return "baseline"


def default_overrides(epochs: int) -> list[str]:
    # Keep the DAG's training to seconds: the lab is about orchestration, not accuracy. The offline digits
    # always, so a learner's MNIST download does not change what the DAG trains on.
    return ["model.name=cnn", "data.source=sklearn-digits", f"training.epochs={epochs}"]


# -- 5. evaluate ---------------------------------------------------------------------------------------------
def evaluate(base: Path | str, ds: str, checkpoint: Path | str, min_accuracy: float = 0.5) -> dict[str, Any]:
    """Score the trained checkpoint on the features' test split and write reports/<ds>/evaluation.json.

    Raises ValueError when accuracy is under ``min_accuracy``: the pipeline stops before a bad model ships.
    """
    import numpy as np
    import torch

    from mlinfra.train import load_checkpoint, model_from_checkpoint

    feats = partition(base, "features", ds)
    x, y = np.load(feats / "test_x.npy"), np.load(feats / "test_y.npy")
    # The model expects what it was trained on: inputs normalised with the training set's mean and std.
    # Checkpoints record torch.__version__, a TorchVersion (a str subclass) that weights-only loading refuses
    # unless allowed; allowing that one harmless type keeps loading weights-only.
    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        ckpt = load_checkpoint(checkpoint)
        model = model_from_checkpoint(checkpoint)
    norm = ckpt["normalization"]
    with torch.no_grad():
        inputs = (torch.from_numpy(x) - norm["mean"][0]) / norm["std"][0]
        predicted = model(inputs).argmax(dim=1).numpy()
    accuracy = float((predicted == y).mean())
    per_class = {
        str(c): round(float((predicted[y == c] == c).mean()), 4) for c in range(10) if (y == c).any()
    }
    report = {
        "ds": ds,
        "checkpoint": Path(checkpoint).name,
        "test_images": len(y),
        "accuracy": round(accuracy, 4),
        "trainer_test_accuracy": ckpt.get("test_accuracy"),
        "per_class_accuracy": per_class,
        "min_accuracy": min_accuracy,
        "passed": accuracy >= min_accuracy,
    }
    _write_json(partition(base, "reports", ds) / "evaluation.json", report)
    if not report["passed"]:
        raise ValueError(
            f"test accuracy {accuracy:.3f} is under the bar {min_accuracy}: not promoting this model"
        )
    return {"ds": ds, "accuracy": report["accuracy"], "passed": True}


# -- helpers: atomic, deterministic writes -------------------------------------------------------------------
def _save_npy(path: Path, array: np.ndarray) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open(
        "wb"
    ) as fh:  # np.save to a handle: .npy has no timestamp, so the same array gives the same bytes
        np.save(fh, np.ascontiguousarray(array))
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
