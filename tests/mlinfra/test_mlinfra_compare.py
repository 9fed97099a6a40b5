from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlinfra_support import tiny_config

from autograder.errors import UsageError
from mlinfra.compare import find_runs, main, summarize, table
from mlinfra.train import run_training

pytestmark = pytest.mark.slow  # trains two one-epoch MLPs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("cmp") / "runs"
    for lr in (0.01, 0.001):
        run_training(
            tiny_config(model={"name": "mlp"}, training={"epochs": 1, "lr": lr}), runs_dir, progress=False
        )
    return runs_dir


def test_table_shows_what_differs_and_the_results(runs: Path) -> None:
    summaries = summarize(find_runs([runs]))
    assert len(summaries) == 2
    assert all(set(s.differs) == {"training.lr"} for s in summaries)
    text = table(summaries)
    header = text.splitlines()[0]
    assert "training.lr" in header and "test acc" in header
    assert "0.01" in text and "0.001" in text and "training.epochs" not in header


def test_cli_plots_and_writes_json(runs: Path, tmp_path: Path, capsys) -> None:
    one = next(runs.iterdir())
    png, out = tmp_path / "curves.png", tmp_path / "cmp.json"
    assert main([str(runs), str(one), "--plot", str(png), "--json", str(out)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(out.read_text())
    assert len(data) == 2, "a run named twice (directly and through its runs folder) is listed once"
    assert "curves:" in capsys.readouterr().out


def test_no_runs_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(UsageError, match="no runs in"):
        find_runs([tmp_path])
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
