"""The on-disk form of a served model, shared by `make model`, the serving labs and the assessment.

A model folder holds three files:

- ``model.pt``: TorchScript; takes a float tensor ``N x C x S x S`` already normalised, returns logits ``N x K``;
- ``labels.json``: the K class labels, in output order (a JSON list of strings);
- ``model_card.json``: what a person or a service needs to use it: input size and channels, normalisation,
  the data set it was trained on, its metrics, the library versions.

The service finds the folder through ``$MLINFRA_MODEL_DIR`` (default ``models/digits-resnet18``).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and PIL load only when a model is really used
    import torch
    from PIL import Image

MODEL_DIR_ENV = "MLINFRA_MODEL_DIR"
DEFAULT_MODEL_DIR = Path("models") / "digits-resnet18"
MODEL_FILE, LABELS_FILE, CARD_FILE = "model.pt", "labels.json", "model_card.json"


@dataclass
class ModelCard:
    name: str
    architecture: str
    input_size: int
    channels: int
    mean: list[float]
    std: list[float]
    dataset: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""


@dataclass
class LoadedModel:
    module: torch.jit.ScriptModule
    labels: list[str]
    card: ModelCard
    folder: Path


class ModelNotFound(FileNotFoundError):
    pass


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    # torch 2.14 warns on every torch.jit.save/load that TorchScript is deprecated; on stderr that notice would
    # cost a learner the points of the graded cell that loads a model (nbgrader zeroes cells writing to stderr).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def model_dir_from_env(default: Path | None = None) -> Path:
    return Path(os.environ.get(MODEL_DIR_ENV) or (default or DEFAULT_MODEL_DIR))


def save_model(folder: Path, scripted: torch.jit.ScriptModule, labels: list[str], card: ModelCard) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with _quiet_jit():
        torch.jit.save(scripted, str(folder / MODEL_FILE))
    (folder / LABELS_FILE).write_text(json.dumps(labels, indent=2) + "\n")
    (folder / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n")
    return folder


def load_model(folder: Path | None = None) -> LoadedModel:
    import torch

    folder = Path(folder) if folder is not None else model_dir_from_env()
    missing = [n for n in (MODEL_FILE, LABELS_FILE, CARD_FILE) if not (folder / n).is_file()]
    if missing:
        raise ModelNotFound(
            f"model folder {folder} lacks {', '.join(missing)}: run `make model` to train the course's model, "
            f"or point ${MODEL_DIR_ENV} at a folder holding {MODEL_FILE}, {LABELS_FILE} and {CARD_FILE}"
        )
    with _quiet_jit():
        module = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
    module.eval()
    labels = json.loads((folder / LABELS_FILE).read_text())
    card = ModelCard(**json.loads((folder / CARD_FILE).read_text()))
    return LoadedModel(module=module, labels=labels, card=card, folder=folder)


def preprocess(image: Image.Image, card: ModelCard) -> torch.Tensor:
    """Any PIL image (any size, any mode) -> a normalised ``1 x C x S x S`` tensor the model accepts."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    mode = "L" if card.channels == 1 else "RGB"
    img = image.convert(mode).resize((card.input_size, card.input_size), PILImage.BILINEAR)
    array = np.asarray(img, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[None, :, :]
    else:
        array = array.transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    mean = torch.tensor(card.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).view(-1, 1, 1)
    return ((tensor - mean) / std).unsqueeze(0)


def top_k(logits: torch.Tensor, labels: list[str], k: int = 5) -> list[dict[str, Any]]:
    """Softmax over one row of logits -> ``[{"label", "confidence"}]``, most confident first, k = min(k, classes)."""
    import torch

    probs = torch.softmax(logits.detach().reshape(-1).float(), dim=0)
    k = min(k, probs.numel())
    values, indices = torch.topk(probs, k)
    return [{"label": labels[int(i)], "confidence": float(v)} for v, i in zip(values, indices)]
