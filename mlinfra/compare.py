"""Compare training runs: a table of what differed and what it scored, and their learning curves.

    python -m mlinfra.compare runs/                         # every run under runs/
    python -m mlinfra.compare runs/cnn-1a2b runs/mlp-3c4d --plot curves.png

The table shows the model and data set of each run, every config key whose value differs between the runs
(what the comparison is about), and the results: epochs done, best validation accuracy, test accuracy, time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfra.base import runner
from mlinfra.base.errors import UsageError, unwritable
from mlinfra.config import NOT_IDENTITY, flatten
from mlinfra.runs import CONFIG_FILE, METRICS_FILE, read_metrics


@dataclass
class RunSummary:
    run_id: str
    run_dir: Path
    config: dict[str, Any]  # flattened: "training.lr" -> 0.01
    epochs: list[dict[str, float]]
    complete: bool
    test_accuracy: float | None
    best_val_accuracy: float | None
    seconds: float
    differs: dict[str, Any] = field(default_factory=dict)  # the config keys that differ between compared runs


def find_runs(paths: Sequence[Path | str]) -> list[Path]:
    """Run folders named directly, or found one level under a runs folder; each folder once, in order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UsageError(
                f"{path} is not a folder: give run folders (runs/<run-id>) or a runs folder (runs/)"
            )
        if (path / METRICS_FILE).is_file():
            candidates = [path]
        else:
            candidates = sorted(p for p in path.iterdir() if (p / METRICS_FILE).is_file())
            if not candidates:
                raise UsageError(
                    f"no runs in {path} (no */{METRICS_FILE}): train one with "
                    "`make train CONFIG=baseline`"
                )
        found.extend(c for c in candidates if c.resolve() not in {f.resolve() for f in found})
    return found


def summarize(run_dirs: Sequence[Path]) -> list[RunSummary]:
    import yaml

    out = []
    for run_dir in run_dirs:
        m = read_metrics(run_dir)
        if m is None:
            raise UsageError(f"{run_dir / METRICS_FILE} is unreadable: rerun that training to rewrite it")
        try:
            cfg = flatten(yaml.safe_load((run_dir / CONFIG_FILE).read_text()) or {})
        except (OSError, yaml.YAMLError):
            cfg = {}
        epochs = m.get("epochs", [])
        vals = [e["val_accuracy"] for e in epochs]
        out.append(
            RunSummary(
                m.get("run_id", run_dir.name),
                run_dir,
                cfg,
                epochs,
                bool(m.get("complete")),
                m.get("test_accuracy"),
                max(vals) if vals else None,
                round(sum(e.get("seconds", 0.0) for e in epochs), 1),
            )
        )
    keys = sorted({k for s in out for k in s.config} - set(NOT_IDENTITY))
    for key in keys:
        values = {repr(s.config.get(key)) for s in out}
        if len(values) > 1:
            for s in out:
                s.differs[key] = s.config.get(key)
    return out


def table(summaries: Sequence[RunSummary]) -> str:
    from mlinfra.base.output import format_table

    differing = (
        [k for k in summaries[0].differs if k not in ("model.name", "data.source")] if summaries else []
    )
    headers = ["run", "model", "data", *differing, "epochs", "best val acc", "test acc", "seconds"]
    rows = []
    for s in summaries:
        total = s.config.get("training.epochs", "?")
        rows.append(
            [
                s.run_id,
                s.config.get("model.name", "?"),
                s.config.get("data.source", "?"),
                *[s.differs.get(k) for k in differing],
                f"{len(s.epochs)}/{total}",
                _pct(s.best_val_accuracy),
                _pct(s.test_accuracy) if s.complete else "(unfinished)",
                s.seconds,
            ]
        )
    return format_table(headers, rows)


def legend_label(s: RunSummary) -> str:
    """What tells this run apart: the config values that differ ("lr=0.003, optimizer=adam"), named by their last
    key part unless two differing keys share it; the run id only when nothing differs (or as a tie-breaker)."""
    if not s.differs:
        return s.run_id
    tails = [k.rsplit(".", 1)[-1] for k in s.differs]
    names = [tail if tails.count(tail) == 1 else key for key, tail in zip(s.differs, tails, strict=False)]
    return ", ".join(f"{name}={_short(value)}" for name, value in zip(names, s.differs.values(), strict=False))


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plot(summaries: Sequence[RunSummary], dest: Path | str) -> Path:
    import matplotlib.pyplot as plt

    fig = figure(summaries)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(dest, dpi=110)
    except OSError as exc:
        raise unwritable(dest, exc) from None
    finally:
        plt.close(fig)
    return dest


def figure(summaries: Sequence[RunSummary]):  # -> matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, works in CI
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [legend_label(s) for s in summaries]
    if len(set(labels)) < len(labels):  # the same differing values twice (e.g. one run unfinished): add the id
        labels = [f"{label} ({s.run_id})" for label, s in zip(labels, summaries, strict=False)]
    for s, label in zip(summaries, labels, strict=False):
        ep = [e["epoch"] for e in s.epochs]
        (line,) = ax_loss.plot(ep, [e["train_loss"] for e in s.epochs], marker=".", label=f"{label} train")
        ax_loss.plot(
            ep,
            [e["val_loss"] for e in s.epochs],
            linestyle="--",
            marker=".",
            color=line.get_color(),
            label=f"{label} val",
        )
        ax_acc.plot(ep, [e["val_accuracy"] for e in s.epochs], color=line.get_color(), marker="o", label=label)
    ax_loss.set(title="loss (solid: train, dashed: validation)", xlabel="epoch", ylabel="cross-entropy")
    ax_loss.set_yscale("log")
    ax_acc.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy")
    ax_acc.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}%"


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="python -m mlinfra.compare",
        description="Compare training runs: the config keys that differ, their accuracies, their curves.",
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="RUN_DIR_OR_RUNS_DIR",
        help="run folders (runs/<run-id>) or folders holding runs (runs/)",
    )
    parser.add_argument("--plot", metavar="PNG", help="also draw the loss and accuracy curves into this file")
    parser.add_argument(
        "--json", metavar="FILE", dest="json_out", help="also write the summaries as JSON ('-': stdout)"
    )
    return parser


def run(args: argparse.Namespace) -> runner.Done:
    summaries = summarize(find_runs(args.paths))
    print(table(summaries))
    if args.plot:
        print(f"curves: {plot(summaries, args.plot)} (legend: the config values that differ)")
    return runner.Done(0, summaries)


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.compare", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
