"""mlinfra.pipeline, the computation the DAG lab orchestrates: date partitions, validation, idempotence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autograder.dag.snapshot import diff, snapshot
from mlinfra import pipeline

DS = "2024-01-01"


def test_partition_is_base_stage_date(tmp_path: Path):
    assert pipeline.partition(tmp_path, "raw", DS) == tmp_path / "raw" / DS
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        pipeline.partition(tmp_path, "raw", "2024-1-1")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        pipeline.partition(tmp_path, "raw", None)
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.partition(tmp_path, "scratch", DS)


def test_data_dir_comes_from_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.delenv(pipeline.DATA_DIR_ENV, raising=False)
    assert pipeline.data_dir(tmp_path / "d") == tmp_path / "d"
    monkeypatch.setenv(pipeline.DATA_DIR_ENV, str(tmp_path / "elsewhere"))
    assert pipeline.data_dir(tmp_path / "d") == tmp_path / "elsewhere"


def test_first_three_steps_are_idempotent_and_date_partitioned(tmp_path: Path):
    def steps() -> None:
        pipeline.ingest(tmp_path, DS)
        pipeline.validate(tmp_path, DS)
        pipeline.engineer_features(tmp_path, DS)

    steps()
    first = snapshot(tmp_path)
    assert {p.split("/")[1] for p in first} == {DS}
    assert {p.split("/")[0] for p in first} == {"raw", "validated", "features"}
    steps()
    assert diff(first, snapshot(tmp_path)).same
    sizes = {s: len(np.load(tmp_path / "features" / DS / f"{s}_y.npy")) for s in pipeline.SPLITS}
    assert sum(sizes.values()) == 1797 and sizes["test"] > sizes["val"] > 0
    x = np.load(tmp_path / "features" / DS / "train_x.npy")
    assert x.shape[1:] == (1, 28, 28) and x.min() >= 0.0 and x.max() <= 1.0


def test_validation_fails_loudly_and_leaves_its_report(tmp_path: Path):
    raw = Path(pipeline.ingest(tmp_path, DS))
    labels = np.load(raw / "labels.npy")
    labels[:5] = 11
    np.save(raw / "labels.npy", labels)
    with pytest.raises(pipeline.DataValidationError, match="labels_in_0_9"):
        pipeline.validate(tmp_path, DS)
    report = (tmp_path / "validated" / DS / "report.json").read_text()
    assert '"ok": false' in report


# ---------------------------------------------------------------------------------------------- the DAG's contract
CHAIN = {"ingest": [], "validate": ["ingest"], "engineer_features": ["validate"], "train": ["engineer_features"],
         "evaluate": ["train"]}
FAN = {"ingest": [], "validate": ["ingest"], "engineer_features": ["ingest"], "train": ["engineer_features", "validate"],
       "evaluate": ["train"]}


@pytest.mark.parametrize("shape", [CHAIN, FAN, {**FAN, "notify": ["evaluate"]}, {**CHAIN, "report": ["validate"]}],
                         ids=["chain", "fan-out-fan-in", "extra-task-after", "extra-branch"])
def test_any_shape_that_keeps_the_contract_is_accepted(shape):
    from mlinfra.pipeline import order_problems

    assert order_problems(shape) == []


@pytest.mark.parametrize(
    ("shape", "says"),
    [
        ({**FAN, "train": ["engineer_features"]}, "train can start before validate has finished"),
        ({**CHAIN, "evaluate": []}, "evaluate can start before train"),
        ({k: v for k, v in CHAIN.items() if k != "validate"} | {"engineer_features": ["ingest"]},
         "there is no task 'validate'"),
        ({**FAN, "ingest": ["evaluate"], "validate": []}, "validate can start before ingest"),
    ],
    ids=["train-not-gated", "evaluate-unwired", "missing-task", "ingest-last"],
)
def test_each_broken_wiring_is_named_with_a_fix(shape, says):
    from mlinfra.pipeline import order_problems

    problems = order_problems(shape)
    assert any(says in p for p in problems), problems
    assert all("upstream of" in p or "add a @task" in p for p in problems), problems
