"""The course's image data: MNIST when on disk (or asked for), else the handwritten digits scikit-learn ships.

Both arrive in the same form, so every later step is the same whichever was used: 28 x 28 greyscale images as
float32 tensors in [0, 1], labels as int64, split into train / validation / test. The default path never
touches the network and caches nothing: the scikit-learn digits live inside its wheel.

    from mlinfra.data import load_dataset
    splits = load_dataset()            # "auto": MNIST if under data/, else the offline digits
    splits.info.detail                 # one line saying which data set it was and how it was prepared
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlinfra.base.errors import UsageError

if TYPE_CHECKING:  # torch loads only when data is really loaded
    import numpy as np
    from torch.utils.data import TensorDataset

IMAGE_SIZE = 28
CLASSES = [str(d) for d in range(10)]
SOURCES = ("auto", "mnist", "sklearn-digits")
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass
class DatasetInfo:
    name: str  # "mnist" or "sklearn-digits"
    image_size: int
    classes: list[str]
    n_train: int
    n_val: int
    n_test: int
    detail: str  # one line a person reads: where it came from, how it was prepared


@dataclass
class DataSplits:
    train: TensorDataset  # x float32 N x 1 x 28 x 28 in [0, 1], y int64
    val: TensorDataset
    test: TensorDataset
    info: DatasetInfo


def mnist_present(root: Path | str) -> bool:
    """True when torchvision's MNIST files are already unpacked under ``root/MNIST/raw``."""
    raw = Path(root) / "MNIST" / "raw"
    return all((raw / name).is_file() for name in MNIST_FILES)


def resolve_source(source: str = "auto", root: Path | str = "data", download: bool = False) -> str:
    """Which data set ``source`` means here and now, without loading anything: "mnist" or "sklearn-digits"."""
    if source not in SOURCES:
        raise UsageError(f"data source {source!r} is not one of {', '.join(SOURCES)}")
    if source == "auto":
        return "mnist" if (download or mnist_present(root)) else "sklearn-digits"
    return source


def load_dataset(
    source: str = "auto",
    root: Path | str = "data",
    download: bool = False,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Load the digits, split them with a fixed seed, and say which data set was used.

    ``source``: "auto" (MNIST if its files are under ``root`` or ``download`` asks for it, else the offline
    digits), "mnist" or "sklearn-digits". MNIST keeps its official 10,000-image test set, so ``test_fraction``
    applies to the offline digits only; ``val_fraction`` is carved from the training images in both cases.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UsageError(
            f"val_fraction {val_fraction} and test_fraction {test_fraction} must be in [0, 1) and "
            "leave some images to train on"
        )
    resolved = resolve_source(source, root, download)
    if resolved == "mnist":
        return _load_mnist(Path(root), download, seed, val_fraction)
    return _load_sklearn_digits(seed, val_fraction, test_fraction)


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Indices for each split, the same class mix in each, fixed by ``seed``; the last split takes the rest.

    Written out rather than borrowed from scikit-learn so the split of a given seed never changes with a
    library upgrade: the run id promises the same data.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for k, frac in enumerate(fractions):
            n = round(len(idx) * frac)
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [np.sort(np.concatenate(p)) for p in parts]


def digits_array() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits (grey levels 0..16) and their labels.

    Read straight from the CSV inside scikit-learn's wheel when it is where load_digits reads it: importing
    sklearn.datasets costs ~2 s, the file itself 30 ms. Any other layout goes through load_digits.
    """
    import numpy as np

    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        with gzip.open(csv, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
        if table.shape == (1797, 65):
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def _load_sklearn_digits(seed: int, val_fraction: float, test_fraction: float) -> DataSplits:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import TensorDataset

    images, labels = digits_array()
    x = torch.from_numpy(images).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    y = torch.from_numpy(labels)
    test_idx, val_idx, train_idx = stratified_split(labels, (test_fraction, val_fraction), seed)
    splits = [
        TensorDataset(x[torch.from_numpy(i)].contiguous(), y[torch.from_numpy(i)])
        for i in (train_idx, val_idx, test_idx)
    ]
    info = DatasetInfo(
        name="sklearn-digits",
        image_size=IMAGE_SIZE,
        classes=list(CLASSES),
        n_train=len(train_idx),
        n_val=len(val_idx),
        n_test=len(test_idx),
        detail=(
            f"scikit-learn's handwritten digits (load_digits: {len(labels)} images, 8x8, 16 grey levels), "
            f"resized to {IMAGE_SIZE}x{IMAGE_SIZE} (bilinear), scaled to [0, 1], stratified split "
            f"{len(train_idx)}/{len(val_idx)}/{len(test_idx)} with seed {seed}"
        ),
    )
    return DataSplits(*splits, info=info)


def _load_mnist(root: Path, download: bool, seed: int, val_fraction: float) -> DataSplits:
    import torch
    from torch.utils.data import TensorDataset

    try:
        from torchvision.datasets import MNIST

        train_set = MNIST(str(root), train=True, download=download)
        test_set = MNIST(str(root), train=False, download=download)
    except (RuntimeError, OSError) as exc:  # missing files, or a download with no network
        how = "downloading it failed" if download else f"its files are not under {root / 'MNIST' / 'raw'}"
        raise UsageError(
            f"MNIST could not be loaded ({how}: {str(exc).splitlines()[0]}); use data source "
            "'sklearn-digits' (offline) or 'auto', or download MNIST where the network allows"
        ) from exc
    train_x = train_set.data.unsqueeze(1).float().div_(255.0)
    train_y = train_set.targets.long()
    val_idx, train_idx = stratified_split(train_y.numpy(), (val_fraction,), seed)
    test_x = test_set.data.unsqueeze(1).float().div_(255.0)
    splits = [
        TensorDataset(train_x[torch.from_numpy(i)], train_y[torch.from_numpy(i)])
        for i in (train_idx, val_idx)
    ]
    splits.append(TensorDataset(test_x, test_set.targets.long()))
    info = DatasetInfo(
        name="mnist",
        image_size=IMAGE_SIZE,
        classes=list(CLASSES),
        n_train=len(train_idx),
        n_val=len(val_idx),
        n_test=len(test_set),
        detail=(
            f"MNIST from {root} (torchvision; 28x28, scaled to [0, 1]); validation = {len(val_idx)} of the "
            f"{len(train_set)} training images (stratified, seed {seed}); the official "
            f"{len(test_set)}-image test set"
        ),
    )
    return DataSplits(*splits, info=info)
