"""Run folders: what a training run leaves on disk, and how it is read back, reused, resumed and locked.

``runs/<run-id>/`` holds ``config.yaml`` (the resolved config), ``metrics.json`` (per-epoch figures and, once
finished, ``"complete": true`` and the test accuracy), ``checkpoint.pt`` (see ``load_checkpoint``) and
``train.log``. A run counts as finished only when both the checkpoint and a complete metrics.json are on disk;
both are written to a temporary name and renamed, so an interrupted write never leaves a half file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfra.base.errors import UsageError
from mlinfra.config import TrainConfig, config_from_dict, dump_config, run_id

CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, LOG_FILE, LOCK_FILE = (
    "config.yaml",
    "metrics.json",
    "checkpoint.pt",
    "train.log",
    ".lock",
)
CHECKPOINT_FORMAT = 1
log = logging.getLogger("mlinfra.train")


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    metrics: list[dict[str, float]]  # per epoch: epoch, train_loss, val_loss, val_accuracy, seconds
    test_accuracy: float  # NaN while the run is unfinished
    checkpoint: Path
    reused: bool
    dataset: dict[str, Any] = field(default_factory=dict)  # DatasetInfo as a dict
    normalization: dict[str, list[float]] = field(default_factory=dict)  # {"mean": [...], "std": [...]}


def versions() -> dict[str, str]:
    """The library versions a checkpoint or model card records."""
    import platform

    import numpy
    import torch

    from mlinfra import __version__

    out = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
    }
    try:
        import torchvision

        out["torchvision"] = str(torchvision.__version__)
    except ImportError:
        pass
    out["mlinfra"] = __version__
    return out


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """A run's checkpoint (a run folder or the file) as a dict, loaded weights-only (no code runs).

    Keys: format, run_id, epoch, config, model_state, optimizer_state, scheduler_state, rng, metrics,
    test_accuracy (None until finished), dataset, normalization, versions.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise UsageError(
            f"no checkpoint at {path}: train the run first (`make train CONFIG=...`)"
        )
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} is not an mlinfra checkpoint (format {CHECKPOINT_FORMAT}): retrain the run")
    return ckpt


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None


def finished_run(run_dir: Path) -> RunResult | None:
    """The result of a complete run already in ``run_dir``, or None if it must (still) be trained."""
    m = read_metrics(run_dir)
    if not m or not m.get("complete") or not (run_dir / CHECKPOINT_FILE).is_file():
        return None
    return RunResult(
        m["run_id"],
        run_dir,
        m["epochs"],
        m["test_accuracy"],
        run_dir / CHECKPOINT_FILE,
        reused=True,
        dataset=m.get("dataset", {}),
        normalization=m.get("normalization", {}),
    )


def write_metrics(run_dir: Path, body: dict[str, Any]) -> None:
    tmp = run_dir / f".{METRICS_FILE}.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(run_dir / METRICS_FILE)


def save_checkpoint(state: dict[str, Any], run_dir: Path) -> None:
    import torch

    tmp = run_dir / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, str(tmp))
    tmp.replace(run_dir / CHECKPOINT_FILE)


def check_same_config(run_dir: Path, cfg: TrainConfig) -> None:
    """Refuse a folder whose config.yaml describes another run (a renamed folder, a hand edit)."""
    existing = run_dir / CONFIG_FILE
    if not existing.is_file() or existing.read_text() == dump_config(cfg):
        return
    import yaml

    try:
        same = run_id(config_from_dict(yaml.safe_load(existing.read_text()))) == run_id(cfg)
    except (UsageError, yaml.YAMLError):  # unreadable: not this run's
        same = False
    if not same:
        raise UsageError(
            f"{existing} describes a different run: move {run_dir} away or delete it, then rerun"
        )


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """One trainer per run folder: a second process training the same run would corrupt its checkpoint."""
    path = run_dir / LOCK_FILE
    for _attempt in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if not _holder_alive(path):
                path.unlink(missing_ok=True)  # left by a process that died: take over
                continue
            raise UsageError(
                f"{run_dir} is being trained by process {path.read_text().strip()}: wait for it to finish, "
                f"or remove {path} if no such process is running"
            ) from None
    else:
        raise UsageError(f"cannot take the lock {path}: remove it if no training is running, then rerun")
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _holder_alive(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextmanager
def file_log(path: Path) -> Iterator[None]:
    """Copy the trainer's log lines into ``path`` (train.log) for the duration of a run."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    previous = log.level
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)
        handler.close()
