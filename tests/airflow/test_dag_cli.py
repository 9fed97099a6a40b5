"""`autograder dag` against real Airflow: known-bad DAGs each get their finding; a good one passes.

Each case runs Airflow in its own isolated home (a worker process): a load costs ~5 s, a --run 15-25 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.cli import main

pytestmark = pytest.mark.slow

GOOD = """
@dag(schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
     default_args={"retries": 1})
def good():
    @task
    def extract(ds: str | None = None) -> str:
        out = DATA / "raw" / ds
        out.mkdir(parents=True, exist_ok=True)
        (out / "rows.csv").write_text("id,value\\n1,10\\n2,20\\n")
        return str(out)

    @task
    def transform(raw: str, ds: str | None = None) -> str:
        rows = (Path(raw) / "rows.csv").read_text().splitlines()[1:]
        out = DATA / "clean" / ds
        out.mkdir(parents=True, exist_ok=True)
        (out / "total.txt").write_text(str(sum(int(r.split(",")[1]) for r in rows)) + "\\n")
        return str(out)

    @task
    def report(clean: str) -> None:
        print("total", (Path(clean) / "total.txt").read_text())

    report(transform(extract()))

good()
"""


def check(path: Path, tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    code = main(["dag", str(path), *args, "--json", str(out)])
    return code, json.loads(out.read_text())


def checks(report: dict) -> list[str]:
    return [f["check"] for f in report["findings"]]


def test_good_dag_runs_twice_and_is_idempotent(write_dag, tmp_path):
    path = write_dag("good", GOOD)
    code, report = check(path, tmp_path, "--run", "--date", "2024-03-05")
    assert checks(report) == [] and code == 0
    assert report["shape"]["order"] == ["extract", "transform", "report"]
    assert [t["state"] for t in report["run"]["tasks"]] == ["success"] * 3
    assert report["rerun"]["state"] == "success"
    idem = report["idempotency"]
    assert idem["same"] is True
    assert sorted(idem["outputs"]) == ["clean/2024-03-05/total.txt", "raw/2024-03-05/rows.csv"]
    assert (path.parent / "data" / "clean" / "2024-03-05" / "total.txt").read_text() == "30\n"


def test_syntax_error_is_reported_with_its_line(write_dag, tmp_path):
    path = write_dag(
        "syntax",
        'from airflow.sdk import dag\n\n\n@dag(schedule="@daily"\ndef broken(:\n    pass\n',
        header=False,
    )
    code, report = check(path, tmp_path)
    [finding] = report["findings"]
    assert code == 1 and finding["check"] == "import-error"
    assert finding["line"] == 5 and "SyntaxError" in finding["message"]


def test_cycle_is_reported(write_dag, tmp_path):
    path = write_dag(
        "cycle",
        """
    @dag(schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         default_args={"retries": 1})
    def loop():
        @task
        def a(): return 1
        @task
        def b(): return 1
        @task
        def c(): return 1
        x, y, z = a(), b(), c()
        x >> y >> z >> x

    loop()
    """,
    )
    code, report = check(path, tmp_path)
    assert code == 1 and checks(report) == ["cycle"]


def test_two_tasks_and_missing_settings_are_reported(write_dag, tmp_path):
    path = write_dag(
        "small",
        """
    @dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=True)
    def small():
        @task
        def a(): return 1
        @task
        def b(x): return x

        b(a())

    small()
    """,
    )
    code, report = check(path, tmp_path)
    assert code == 1
    assert sorted(checks(report)) == ["catchup-on", "no-retries", "no-schedule", "too-few-tasks"]
    assert report["run"] is None  # no --run: nothing executed


def test_task_that_raises_is_reported_with_its_line(write_dag, tmp_path):
    body = GOOD.replace(
        "rows = (Path(raw)", 'raise ValueError("3 rows have no value")\n        rows = (Path(raw)'
    )
    path = write_dag("raises", body)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "raise ValueError" in text)
    code, report = check(path, tmp_path, "--run", "--date", "2024-03-05")
    assert code == 1 and checks(report) == ["task-failed"]
    states = {t["task_id"]: t for t in report["run"]["tasks"]}
    assert states["extract"]["state"] == "success"
    assert states["transform"]["state"] == "failed" and states["report"]["state"] == "upstream_failed"
    assert states["transform"]["error"] == "ValueError: 3 rows have no value"
    assert Path(states["transform"]["file"]).name == "dag.py" and states["transform"]["line"] == line
    assert report["rerun"] is None  # a failed first run is not repeated


def test_task_that_appends_is_not_idempotent(write_dag, tmp_path):
    body = GOOD.replace(
        "return str(out)\n\n    @task\n    def transform",
        'with (out / "audit.log").open("a") as fh:  # appends: one more line per run\n'
        '            fh.write(f"extracted {ds}\\n")\n'
        "        return str(out)\n\n    @task\n    def transform",
    )
    path = write_dag("appends", body)
    assert "audit.log" in path.read_text()
    code, report = check(path, tmp_path, "--run", "--date", "2024-03-05")
    assert code == 1 and checks(report) == ["not-idempotent"]
    assert report["idempotency"]["changed"] == ["raw/2024-03-05/audit.log"]
    assert report["rerun"]["state"] == "success"


def test_missing_file_cannot_run(tmp_path, capsys):
    assert main(["dag", str(tmp_path / "nope.py")]) == 2
    assert "no such file" in capsys.readouterr().err


REFERENCE = Path(__file__).resolve().parents[2] / "solutions" / "phase1-lab1-airflow-dag" / "dag.py"


def test_reference_lab_dag_passes(tmp_path):
    """The lab's reference DAG: the five course steps in order, trained for real (1 epoch), idempotent."""
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "dag.py").write_text(REFERENCE.read_text())
    code, report = check(lab / "dag.py", tmp_path, "--run", "--date", "2024-01-01")
    assert checks(report) == [] and code == 0
    assert report["shape"]["order"] == ["ingest", "validate", "engineer_features", "train", "evaluate"]
    assert report["idempotency"]["same"] is True
    outputs = report["idempotency"]["outputs"]
    assert {p.split("/")[0] for p in outputs} == {"raw", "validated", "features", "models", "reports"}
    assert all(p.split("/")[1] == "2024-01-01" for p in outputs)
    evaluation = json.loads((lab / "data" / "reports" / "2024-01-01" / "evaluation.json").read_text())
    assert evaluation["passed"] and evaluation["accuracy"] == pytest.approx(
        evaluation["trainer_test_accuracy"], abs=1e-3
    )


def test_a_check_that_runs_too_long_becomes_a_timeout_finding(write_dag, tmp_path):
    path = write_dag("slow", GOOD)
    code, report = check(path, tmp_path, "--run", "--timeout", "2")
    assert code == 1 and checks(report) == ["timeout"]
    assert report["run"] is None
