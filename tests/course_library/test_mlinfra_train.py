from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from mlinfra_support import tiny_config

from autograder.errors import UsageError
from mlinfra.config import TrainConfig, run_id
from mlinfra.train import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOCK_FILE,
    LOG_FILE,
    METRICS_FILE,
    load_checkpoint,
    model_from_checkpoint,
    prepare_data,
    run_training,
)

pytestmark = pytest.mark.slow  # each test trains a small model for real (about a second of CPU each)


def without_time(metrics: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in metrics]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """One finished tiny run that several tests compare against."""
    return run_training(tiny_config(), tmp_path_factory.mktemp("ref") / "runs", progress=False)


def test_a_run_writes_its_folder(reference) -> None:
    run_dir = reference.run_dir
    assert run_dir.name == reference.run_id == run_id(tiny_config())
    assert {p.name for p in run_dir.iterdir()} == {CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, LOG_FILE}
    assert not reference.reused and reference.checkpoint == run_dir / CHECKPOINT_FILE
    assert [r["epoch"] for r in reference.metrics] == [1, 2]
    assert set(reference.metrics[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "seconds"}
    assert 0.0 <= reference.test_accuracy <= 1.0
    # The resolved config names the data set really used, not "auto".
    assert "source: sklearn-digits" in (run_dir / CONFIG_FILE).read_text()
    metrics = json.loads((run_dir / METRICS_FILE).read_text())
    assert metrics["complete"] and metrics["test_accuracy"] == reference.test_accuracy
    assert metrics["dataset"]["name"] == "sklearn-digits" and metrics["dataset"]["n_train"] == 96
    log = (run_dir / LOG_FILE).read_text()
    assert "epoch 2/2" in log and "test_accuracy" in log and "load_digits" in log


def test_same_config_in_two_folders_gives_identical_results(reference, tmp_path: Path) -> None:
    again = run_training(tiny_config(), tmp_path / "elsewhere", progress=False)
    assert again.run_id == reference.run_id and not again.reused
    assert without_time(again.metrics) == without_time(reference.metrics)
    assert again.test_accuracy == reference.test_accuracy
    a, b = load_checkpoint(reference.run_dir), load_checkpoint(again.run_dir)
    assert a["model_state"].keys() == b["model_state"].keys()
    assert all(torch.equal(a["model_state"][k], b["model_state"][k]) for k in a["model_state"])


def test_a_different_seed_gives_a_different_run(reference, tmp_path: Path) -> None:
    other = run_training(tiny_config(training={"seed": 1}), tmp_path, progress=False)
    assert other.run_id != reference.run_id
    assert without_time(other.metrics) != without_time(reference.metrics)


def test_rerun_reuses_the_finished_run(reference) -> None:
    runs_dir = reference.run_dir.parent
    before = (reference.run_dir / METRICS_FILE).stat().st_mtime_ns
    again = run_training(tiny_config(), runs_dir, progress=False)
    assert again.reused and again.run_dir == reference.run_dir
    assert again.metrics == reference.metrics and again.test_accuracy == reference.test_accuracy
    assert [p.name for p in runs_dir.iterdir()] == [reference.run_id]
    assert (reference.run_dir / METRICS_FILE).stat().st_mtime_ns == before


def test_interrupted_run_resumes_to_the_same_result(reference, tmp_path: Path) -> None:
    half = run_training(tiny_config(), tmp_path, progress=False, max_epochs=1)
    assert len(half.metrics) == 1 and half.test_accuracy != half.test_accuracy  # NaN: not finished
    assert not json.loads((half.run_dir / METRICS_FILE).read_text())["complete"]
    assert load_checkpoint(half.run_dir)["epoch"] == 1
    resumed = run_training(tiny_config(), tmp_path, progress=False)
    assert not resumed.reused and resumed.run_dir == half.run_dir
    assert without_time(resumed.metrics) == without_time(reference.metrics)
    assert resumed.test_accuracy == reference.test_accuracy
    assert "resuming" in (half.run_dir / LOG_FILE).read_text()


def test_checkpoint_loads_back_into_a_model_that_scores_the_same(reference) -> None:
    ckpt = load_checkpoint(reference.checkpoint)
    assert ckpt["epoch"] == 2 and ckpt["test_accuracy"] == reference.test_accuracy
    assert {"model_state", "optimizer_state", "config", "metrics", "versions", "normalization"} <= set(ckpt)
    assert ckpt["versions"]["torch"] == str(torch.__version__)
    model = model_from_checkpoint(reference.run_dir)
    data = prepare_data(tiny_config())
    with torch.no_grad():
        accuracy = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert accuracy == pytest.approx(reference.test_accuracy, abs=1e-6)


def test_runs_from_a_read_only_cwd_and_writes_nothing_there(tmp_path: Path, monkeypatch) -> None:
    cwd = tmp_path / "readonly"
    cwd.mkdir()
    cwd.chmod(0o555)
    monkeypatch.chdir(cwd)
    try:
        result = run_training(tiny_config(model={"name": "mlp"}), tmp_path / "runs", progress=False)
        assert result.run_dir.is_relative_to(tmp_path / "runs")
        assert list(cwd.iterdir()) == []
    finally:
        cwd.chmod(0o755)


def test_progress_is_quiet_off_a_terminal_and_shown_on_request(tmp_path: Path, capfd, monkeypatch) -> None:
    cfg = tiny_config(model={"name": "mlp"}, training={"epochs": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_training(cfg, tmp_path / "a")  # pytest captures stderr: not a terminal
    assert capfd.readouterr().err == ""
    noisy = [w for w in caught if issubclass(w.category, (UserWarning, FutureWarning))]
    assert not noisy, f"training must not warn (nbgrader zeroes cells writing to stderr): {noisy[0].message}"
    monkeypatch.setenv("CI", "1")
    run_training(cfg, tmp_path / "b")
    assert capfd.readouterr().err == ""
    run_training(cfg, tmp_path / "c", progress=True)
    assert "epoch 1/1" in capfd.readouterr().err


def test_a_folder_holding_another_config_is_refused(reference, tmp_path: Path) -> None:
    cfg = tiny_config()
    foreign = tmp_path / run_id(cfg)
    foreign.mkdir()
    (foreign / CONFIG_FILE).write_text("model:\n  name: mlp\n")
    with pytest.raises(UsageError, match="describes a different run"):
        run_training(cfg, tmp_path, progress=False)


def test_a_live_lock_is_refused_and_a_stale_one_taken_over(tmp_path: Path) -> None:
    cfg = tiny_config(model={"name": "mlp"}, training={"epochs": 1})
    run_dir = tmp_path / run_id(cfg)
    run_dir.mkdir()
    (run_dir / LOCK_FILE).write_text(str(os.getppid()))  # a process that is alive
    with pytest.raises(UsageError, match="being trained by process"):
        run_training(cfg, tmp_path, progress=False)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    (run_dir / LOCK_FILE).write_text(dead.stdout.strip())
    assert run_training(cfg, tmp_path, progress=False).metrics
    assert not (run_dir / LOCK_FILE).exists()


def test_cli_trains_then_reuses(tmp_path: Path, capsys) -> None:
    from mlinfra.train import main

    config = tmp_path / "c.yaml"
    config.write_text("data:\n  limit_train: 64\nmodel:\n  name: mlp\ntraining:\n  epochs: 1\n")
    args = [
        "--config",
        str(config),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
        "--json",
        str(tmp_path / "r.json"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "run folder:" in out and "test accuracy:" in out and "epoch 1/1" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["reused"] is False and Path(result["run_dir"]).is_dir()
    assert main(args) == 0
    assert "reused the finished run" in capsys.readouterr().out


def test_unwritable_runs_dir_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UsageError, match="--runs-dir"):
        run_training(tiny_config(), blocker / "runs", progress=False)


def test_default_config_values_are_the_dataclass_defaults() -> None:
    assert TrainConfig().model.name == "cnn" and TrainConfig().data.source == "auto"


def test_a_long_epoch_logs_progress_lines_without_a_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Output to a log (no terminal): lines within an epoch, not silence until it ends (issue: make model was
    silent for minutes)."""
    from mlinfra import train

    monkeypatch.setattr(train, "PROGRESS_EVERY", 0.0)  # every batch; the real interval is 15 s
    result = run_training(tiny_config(training={"epochs": 1}), tmp_path / "runs", progress=False)
    text = (result.run_dir / LOG_FILE).read_text()
    within = [line for line in text.splitlines() if "epoch 1/1: batch" in line]
    assert within and "s to go" in within[0], text
    assert "epoch 1/1  train_loss" in text, "the end-of-epoch line is still there"


def test_cli_json_stdout_is_only_json_and_bad_config_is_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "mlinfra.train", "--config", "baseline", "--set", "data.limit_train=64",
           "--set", "training.epochs=1", "--set", "model.name=mlp", "--runs-dir", str(tmp_path), "--no-progress"]
    done = subprocess.run([*cmd, "--json", "-"], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run_id"], "stdout holds only the JSON"
    assert "test accuracy" in done.stderr
    bad = subprocess.run([*cmd, "--set", "training.lr=fast"], capture_output=True, text=True, timeout=300,
                         check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "training.lr" in bad.stderr
