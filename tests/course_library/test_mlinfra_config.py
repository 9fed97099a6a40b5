from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autograder.errors import BadConfig, UsageError
from mlinfra.config import (
    NOT_IDENTITY,
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    flatten,
    load_config,
    packaged_configs,
    resolve,
    run_id,
)


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_packaged_configs_load_and_are_valid() -> None:
    names = packaged_configs()
    assert {"baseline", "resnet18-digits"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), TrainConfig)
    assert load_config("baseline") == TrainConfig(), "baseline.yaml lists every key with its default"
    assert load_config("resnet18-digits").model.name == "resnet18"


def test_a_partial_file_takes_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "training:\n  lr: 0.5\nmodel:\n"))
    assert cfg.training.lr == 0.5 and cfg.training.epochs == TrainConfig().training.epochs
    assert load_config(write(tmp_path, "", "empty.yaml")) == TrainConfig()


def test_unknown_key_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  lrr: 0.1\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}: training.lrr: unknown key")
    assert "did you mean 'lr'" in msg and "\n" not in msg
    assert "unknown section" in error_of(write(tmp_path, "trainig:\n  lr: 0.1\n", "s.yaml"))


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("training:\n  lr: fast\n", "training.lr", "expected a number > 0"),
        ("training:\n  epochs: 2.5\n", "training.epochs", "expected an integer"),
        ("training:\n  epochs: true\n", "training.epochs", "expected an integer"),
        ("data:\n  download: 'yes'\n", "data.download", "expected true or false"),
        ("model:\n  name: vgg\n", "model.name", "expected one of mlp, cnn, resnet18"),
        ("training: [1, 2]\n", "training", "expected a mapping"),
    ],
)
def test_wrong_type_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert expected in msg


@pytest.mark.parametrize(
    "text, key",
    [
        ("training:\n  epochs: 0\n", "training.epochs"),
        ("training:\n  lr: 0\n", "training.lr"),
        ("training:\n  lr: -1\n", "training.lr"),
        ("data:\n  val_fraction: 0.5\n", "data.val_fraction"),
        ("data:\n  limit_train: 0\n", "data.limit_train"),
        ("training:\n  momentum: 1.0\n", "training.momentum"),
    ],
)
def test_out_of_range_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    msg = error_of(write(tmp_path, text))
    assert f": {key}: expected " in msg and ", got " in msg


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "model:\n  name: cnn\ntraining:\n  lr: 0.1\n   epochs: 3\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}: line 5: not valid YAML"), msg
    assert error_of(write(tmp_path, "- a\n- b\n", "list.yaml")).endswith("got list")


def test_missing_file_lists_the_packaged_configs(tmp_path: Path) -> None:
    msg = error_of(tmp_path / "nope.yaml")
    assert "no such file" in msg and "baseline" in msg


def test_errors_are_usage_errors() -> None:
    assert issubclass(ConfigError, BadConfig) and issubclass(ConfigError, UsageError)


def test_overrides_are_yaml_scalars(tmp_path: Path) -> None:
    path = write(tmp_path, "training:\n  lr: 0.1\n")
    cfg = load_config(
        path,
        [
            "training.lr=0.003",
            "training.epochs=3",
            "data.download=true",
            "data.limit_train=null",
            "model.name=mlp",
            "data.limit_train=50",
        ],
    )
    assert (cfg.training.lr, cfg.training.epochs, cfg.data.download) == (0.003, 3, True)
    assert (cfg.model.name, cfg.data.limit_train) == ("mlp", 50)
    assert isinstance(load_config(path, ["training.lr=1"]).training.lr, float)


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("training.lr=fast", "(--set training.lr=fast): training.lr: expected a number > 0"),
        ("training.lrr=1", "(--set training.lrr=1): training.lrr: unknown key"),
        ("trainng.lr=1", "(--set trainng.lr=1): trainng.lr: unknown section"),
        ("training.lr", "override is section.key=value"),
        ("lr=1", "override is section.key=value"),
        ("training.lr=[1, 2]", "expected a single value"),
    ],
)
def test_bad_override_names_file_and_override(tmp_path: Path, override: str, fragment: str) -> None:
    path = write(tmp_path, "training:\n  lr: 0.1\n")
    msg = error_of(path, (override,))
    assert msg.startswith(str(path)) and fragment in msg, msg


def _other_value(key: str, value: Any) -> Any:
    choices = {
        "data.source": "mnist",
        "model.name": "mlp",
        "training.optimizer": "sgd",
        "training.schedule": "cosine",
    }
    if key in choices:
        return choices[key]
    if isinstance(value, bool):
        return not value
    if value is None:
        return 10
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.05
    return value + "-elsewhere"


def test_run_id_is_sensitive_to_every_key_that_changes_the_result() -> None:
    # An explicit data set: with "auto", data.download=true would (rightly) switch the data to MNIST.
    start = config_from_dict({"data": {"source": "sklearn-digits"}})
    base = config_to_dict(start)
    flat = flatten(base)
    seen = {run_id(start)}
    for key, value in flat.items():
        section, name = key.split(".")
        changed = {s: dict(v) for s, v in base.items()}
        changed[section][name] = _other_value(key, value)
        rid = run_id(config_from_dict(changed))
        if key in NOT_IDENTITY:
            assert rid == run_id(start), f"{key} says where files live; it must not change the run id"
        else:
            assert rid not in seen, f"changing {key} did not change the run id"
            seen.add(rid)
    assert len(seen) == len(flat) - len(NOT_IDENTITY) + 1


def test_run_id_is_stable_across_processes_and_names_the_resolved_data(tmp_path: Path) -> None:
    cfg = config_from_dict({"training": {"lr": 0.02}, "model": {"name": "mlp"}})
    code = (
        "from mlinfra.config import config_from_dict, run_id; "
        "print(run_id(config_from_dict({'training': {'lr': 0.02}, 'model': {'name': 'mlp'}})))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert other.stdout.strip() == run_id(cfg)
    assert run_id(cfg).startswith("mlp-") and len(run_id(cfg)) == len("mlp-") + 10
    # "auto" means the offline digits here (no MNIST under data/): the same run as saying so.
    explicit = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": "sklearn-digits"})})
    assert resolve(cfg).data.source == "sklearn-digits" and run_id(cfg) == run_id(explicit)


def test_train_cli_reports_config_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlinfra.train import main

    path = write(tmp_path, "training:\n  lr: fast\n")
    assert main(["--config", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mlinfra.train: {path}: training.lr: expected a number > 0 and <= 10, got 'fast'"
    assert (
        main(
            [
                "--config",
                str(path),
                "--set",
                "training.lr=0.1",
                "--set",
                "training.epochs=0",
                "--runs-dir",
                str(tmp_path / "runs"),
            ]
        )
        == 2
    )
    assert "training.epochs" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
