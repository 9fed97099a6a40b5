"""`make model`: train the course's digit classifier and write it where the serving labs look for it.

    python -m mlinfra.make_model [--out models/digits-resnet18] [--config resnet18-digits] [--set KEY=VALUE]

Trains ResNet-18 on the offline digits through ``run_training`` (a finished run with the same config is
reused, not retrained), traces it to TorchScript, and writes ``model.pt``, ``labels.json`` and
``model_card.json`` through ``mlinfra.modelstore.save_model``. It then loads the folder back the way a service
does and checks that the TorchScript model scores what the checkpoint scored.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlinfra.base import runner
from mlinfra.base.errors import UsageError
from mlinfra.base.output import add_json_option
from mlinfra.base.runner import Done
from mlinfra.config import TrainConfig, load_config
from mlinfra.modelstore import DEFAULT_MODEL_DIR, MODEL_DIR_ENV, ModelCard, load_model, save_model
from mlinfra.train import RunResult, run_training

DEFAULT_CONFIG = "resnet18-digits"


@dataclass
class MadeModel:
    folder: Path
    run: RunResult
    card: ModelCard
    served_accuracy: float  # the saved TorchScript model on the test split, through load_model


def make_model(
    cfg: TrainConfig,
    out: Path | str = DEFAULT_MODEL_DIR,
    runs_dir: Path | str | None = None,
    *,
    progress: bool | None = None,
    name: str | None = None,
) -> MadeModel:
    import torch

    from mlinfra.train import evaluate, load_checkpoint, model_from_checkpoint, prepare_data, versions

    out = Path(out)
    run = run_training(cfg, runs_dir, progress=progress)
    ckpt = load_checkpoint(run.checkpoint)
    model = model_from_checkpoint(run.checkpoint)
    size = cfg.model.input_size
    example = torch.zeros(1, 1, size, size)
    with torch.no_grad(), _quiet_jit():
        scripted = torch.jit.trace(model, example)
    dataset = dict(ckpt["dataset"])
    last = ckpt["metrics"][-1]
    card = ModelCard(
        name=name or out.name,
        architecture=cfg.model.name,
        input_size=size,
        channels=1,
        mean=list(ckpt["normalization"]["mean"]),
        std=list(ckpt["normalization"]["std"]),
        dataset={k: dataset[k] for k in ("name", "n_train", "n_val", "n_test", "image_size", "detail")},
        metrics={
            "test_accuracy": ckpt["test_accuracy"],
            "val_accuracy": last["val_accuracy"],
            "epochs": len(ckpt["metrics"]),
            "run_id": run.run_id,
        },
        versions=versions(),
        notes=(
            f"Trained by `python -m mlinfra.make_model` from run {run.run_id} (config in {run.run_dir}). "
            f"Input: N x 1 x {size} x {size} greyscale, light digit on a dark background, scaled to [0, 1] "
            "then normalised with mean/std; output: logits over labels.json."
        ),
    )
    with _quiet_jit():
        save_model(out, scripted, list(dataset["classes"]), card)
        # Check the saved folder as a service loads it: the checkpoint's accuracy, or the export is wrong.
        loaded = load_model(out)
    data = prepare_data(cfg)
    _loss, served = evaluate(loaded.module, data.x_test, data.y_test)
    if abs(served - ckpt["test_accuracy"]) * len(data.y_test) > 1.5:  # one borderline image may flip
        raise UsageError(
            f"{out / 'model.pt'} scores {served:.4f} on the test split but the checkpoint scored "
            f"{ckpt['test_accuracy']:.4f}: the TorchScript export is wrong; delete {out} and rerun"
        )
    return MadeModel(out, run, card, served)


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """torch 2.14 marks torch.jit as deprecated; TorchScript is still the format the serving labs load."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
        yield


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="python -m mlinfra.make_model",
        description="Train the course's ResNet-18 digit classifier offline (a few minutes on 2 CPU cores) "
        "and write model.pt, labels.json and model_card.json for the serving labs.",
        epilog="Then serve it: make serve  (the service reads $MLINFRA_MODEL_DIR, "
        "default models/digits-resnet18)",
    )
    parser.add_argument(
        "--out",
        default=str(DEFAULT_MODEL_DIR),
        metavar="DIR",
        help=f"the model folder to write (default: {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"training config: a YAML file or a packaged name (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set training.epochs=2",
    )
    parser.add_argument("--runs-dir", metavar="DIR", help="where the training run goes (default: runs/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    add_json_option(parser)
    return parser


def run(args: argparse.Namespace) -> Done:
    import logging

    log = logging.getLogger("mlinfra.train")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    try:
        cfg = load_config(args.config, args.overrides)
        print(f"make model: training {cfg.model.name} for {cfg.training.epochs} epochs (a line per epoch, and "
              "one every 15 s within an epoch when there is no progress bar)", flush=True)
        made = make_model(cfg, args.out, args.runs_dir, progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        print("rerun to resume training from the last finished epoch", file=sys.stderr)
        raise
    finally:
        log.removeHandler(handler)
    card = made.card
    how = "reused the finished run" if made.run.reused else "trained run"
    print(f"{how} {made.run.run_id} in {made.run.run_dir}")
    print(f"wrote {made.folder}/: model.pt (TorchScript), labels.json, model_card.json")
    ds = card.dataset
    print(
        f"  {card.architecture} on {ds['name']} ({ds['n_train']} train / {ds['n_val']} val / {ds['n_test']} "
        f"test images), test accuracy {made.served_accuracy:.4f}"
    )
    print(f"  input 1 x {card.input_size} x {card.input_size}, mean {card.mean}, std {card.std}")
    default = Path(args.out).resolve() == DEFAULT_MODEL_DIR.resolve()
    env = "" if default else f"{MODEL_DIR_ENV}={args.out} "
    print(f"serve it: {env}make serve   (then: curl -F file=@digit.png http://127.0.0.1:8000/predict)")
    return Done(0, {"folder": made.folder, "run_id": made.run.run_id, "reused": made.run.reused,
                    "served_accuracy": made.served_accuracy, "card": card})


def main(argv: Sequence[str] | None = None) -> int:
    return runner.main("mlinfra.make_model", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
