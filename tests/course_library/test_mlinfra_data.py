from __future__ import annotations

import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from autograder.errors import UsageError
from mlinfra.data import load_dataset, mnist_present, resolve_source, stratified_split


def test_offline_digits_shape_range_and_counts(tmp_path: Path) -> None:
    splits = load_dataset(root=tmp_path)
    info = splits.info
    assert (
        info.name == "sklearn-digits"
        and info.image_size == 28
        and info.classes == [str(d) for d in range(10)]
    )
    assert info.n_train + info.n_val + info.n_test == 1797
    assert (info.n_train, info.n_val, info.n_test) == (len(splits.train), len(splits.val), len(splits.test))
    for ds in (splits.train, splits.val, splits.test):
        x, y = ds.tensors
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert abs(info.n_test - 0.2 * 1797) < 6 and abs(info.n_val - 0.1 * 1797) < 6
    assert "load_digits" in info.detail and "28x28" in info.detail
    assert not any(tmp_path.iterdir()), "loading the offline digits must cache nothing"


def test_split_is_deterministic_and_seed_dependent() -> None:
    a, b, c = load_dataset(seed=3), load_dataset(seed=3), load_dataset(seed=4)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(a, name).tensors[0], getattr(b, name).tensors[0])
        assert torch.equal(getattr(a, name).tensors[1], getattr(b, name).tensors[1])
    assert not torch.equal(a.test.tensors[0], c.test.tensors[0])


def test_stratified_split_is_disjoint_complete_and_balanced() -> None:
    labels = np.repeat(np.arange(10), [170, 180, 175, 183, 181, 182, 181, 179, 174, 172])
    test, val, train = stratified_split(labels, (0.2, 0.1), seed=0)
    assert not set(test) & set(val) and not set(test) & set(train) and not set(val) & set(train)
    assert sorted(np.concatenate([test, val, train]).tolist()) == list(range(len(labels)))
    for cls in range(10):
        n = int((labels == cls).sum())
        assert abs(int((labels[test] == cls).sum()) - 0.2 * n) <= 1
        assert abs(int((labels[val] == cls).sum()) - 0.1 * n) <= 1


def test_fast_csv_path_matches_load_digits() -> None:
    from sklearn.datasets import load_digits

    from mlinfra.data import digits_array

    images, labels = digits_array()
    reference = load_digits()
    assert np.array_equal(images, reference.images) and np.array_equal(labels, reference.target)


def test_default_path_never_touches_the_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the default data path opened a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    splits = load_dataset("auto", root=tmp_path / "data")
    assert splits.info.name == "sklearn-digits"


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0800 + array.ndim  # unsigned bytes, N dimensions (the MNIST file format)
    path.write_bytes(
        struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    )


def _fake_mnist(root: Path, n_train: int = 200, n_test: int = 50) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))


def test_auto_uses_mnist_when_its_files_are_present(tmp_path: Path) -> None:
    assert resolve_source("auto", tmp_path) == "sklearn-digits"
    _fake_mnist(tmp_path)
    assert mnist_present(tmp_path) and resolve_source("auto", tmp_path) == "mnist"
    splits = load_dataset("auto", root=tmp_path, val_fraction=0.1)
    assert splits.info.name == "mnist"
    assert (splits.info.n_train, splits.info.n_val, splits.info.n_test) == (180, 20, 50)
    x, y = splits.train.tensors
    assert x.shape[1:] == (1, 28, 28) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert y.dtype == torch.int64


def test_asking_for_missing_mnist_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="sklearn-digits"):
        load_dataset("mnist", root=tmp_path)
    with pytest.raises(UsageError, match="not one of"):
        load_dataset("cifar", root=tmp_path)
    with pytest.raises(UsageError, match="val_fraction"):
        load_dataset(val_fraction=0.6, test_fraction=0.5)
