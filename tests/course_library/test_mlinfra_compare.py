from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlinfra_support import tiny_config

from autograder.errors import UsageError
from mlinfra.compare import RunSummary, figure, find_runs, legend_label, main, summarize, table
from mlinfra.train import run_training

# The tests that train (two one-epoch MLPs) are slow; the legend and error tests need no training.


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs_dir = tmp_path_factory.mktemp("cmp") / "runs"
    for lr in (0.01, 0.001):
        run_training(
            tiny_config(model={"name": "mlp"}, training={"epochs": 1, "lr": lr}), runs_dir, progress=False
        )
    return runs_dir


@pytest.mark.slow
def test_table_shows_what_differs_and_the_results(runs: Path) -> None:
    summaries = summarize(find_runs([runs]))
    assert len(summaries) == 2
    assert all(set(s.differs) == {"training.lr"} for s in summaries)
    text = table(summaries)
    header = text.splitlines()[0]
    assert "training.lr" in header and "test acc" in header
    assert "0.01" in text and "0.001" in text and "training.epochs" not in header


@pytest.mark.slow
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


def _summary(run_id: str, **differs) -> RunSummary:
    epochs = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.5, "seconds": 1.0}]
    return RunSummary(run_id, Path(run_id), {}, epochs, True, 0.5, 0.5, 1.0, differs=differs)


def test_legend_names_what_differs_not_only_the_hash() -> None:
    assert legend_label(_summary("cnn-1a2b", **{"training.lr": 0.003})) == "lr=0.003"
    assert legend_label(_summary("cnn-1a2b", **{"training.lr": 0.01, "training.optimizer": "adam"})) == \
        "lr=0.01, optimizer=adam"
    same_tail = _summary("x", **{"data.seed": 1, "training.seed": 2})
    assert legend_label(same_tail) == "data.seed=1, training.seed=2"
    assert legend_label(_summary("cnn-1a2b")) == "cnn-1a2b", "a lone run is named by its id"
    fig = figure([_summary("a1", **{"training.lr": 0.01}), _summary("b2", **{"training.lr": 0.001})])
    texts = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert texts == ["lr=0.01", "lr=0.001"]
    twins = figure([_summary("a1", **{"training.lr": 0.01}), _summary("b2", **{"training.lr": 0.01})])
    assert [t.get_text() for t in twins.axes[1].get_legend().get_texts()] == ["lr=0.01 (a1)", "lr=0.01 (b2)"]


def test_unwritable_plot_path_is_one_line(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs" / "r1"
    runs.mkdir(parents=True)
    (runs / "metrics.json").write_text(json.dumps({"run_id": "r1", "complete": True, "test_accuracy": 0.5,
                                                   "epochs": _summary("r1").epochs}))
    (tmp_path / "file").write_text("")
    assert main([str(tmp_path / "runs"), "--plot", str(tmp_path / "file" / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write" in err and "Traceback" not in err
