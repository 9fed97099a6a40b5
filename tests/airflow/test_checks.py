"""The pure parts of `autograder dag`: findings, ordering, snapshots, composing a worker result."""

from __future__ import annotations

from pathlib import Path

from autograder.dag.checker import compose
from autograder.dag.checks import import_error_finding, structure_findings
from autograder.dag.cli import render
from autograder.dag.report import DagReport, DagShape, TaskInfo, topological_order
from autograder.dag.snapshot import diff, snapshot


def _task(tid: str, up=(), down=(), retries=2) -> TaskInfo:
    return TaskInfo(tid, "_PythonDecoratedOperator", retries, list(up), list(down))


def _chain(*ids: str, retries: int = 2) -> list[TaskInfo]:
    return [_task(t, ids[i - 1 : i] if i else (), ids[i + 1 : i + 2], retries) for i, t in enumerate(ids)]


def _shape(tasks, schedule="@daily", catchup=False) -> DagShape:
    return DagShape("p", schedule, catchup, "2024-01-01T00:00:00+00:00", tasks, topological_order(tasks))


def checks_of(shape: DagShape) -> set[str]:
    return {f.rule for f in structure_findings(shape, "dag.py")}


def test_a_good_chain_has_no_findings():
    assert checks_of(_shape(_chain("a", "b", "c"))) == set()


def test_each_structural_problem_is_found_with_a_fix():
    assert checks_of(_shape(_chain("a", "b"))) == {"too-few-tasks"}
    assert checks_of(_shape([_task("a"), _task("b"), _task("c")])) == {"no-dependencies"}
    assert checks_of(_shape(_chain("a", "b", "c") + [_task("d")])) == {"isolated-task"}
    assert checks_of(_shape(_chain("a", "b", "c"), schedule=None)) == {"no-schedule"}
    assert checks_of(_shape(_chain("a", "b", "c"), catchup=True)) == {"catchup-on"}
    findings = structure_findings(_shape(_chain("a", "b", "c", retries=0)), "dag.py")
    assert [f.rule for f in findings] == ["no-retries"]
    assert "a, b, c" in findings[0].message and "retries" in findings[0].fix


def test_topological_order_follows_edges_not_declaration():
    tasks = [
        _task("train", up=["prep"]),
        _task("prep", up=["load"], down=["train"]),
        _task("load", down=["prep"]),
    ]
    assert topological_order(tasks) == ["load", "prep", "train"]


def test_syntax_error_finding_names_the_line():
    text = (
        'Traceback (most recent call last):\n  File "<frozen importlib._bootstrap>", line 241, in _call\n'
        '  File "/x/lab/dag.py", line 4\n    def broken(:\n    ^^^\nSyntaxError: invalid syntax\n'
    )
    f = import_error_finding("lab/dag.py", text)
    assert (f.rule, f.line) == ("import-error", 4)
    assert "SyntaxError" in f.message and "lab/dag.py:4" in f.fix


def test_a_stub_left_in_place_says_what_to_fill_in():
    text = 'Traceback (most recent call last):\n  File "/x/lab/dag.py", line 30, in <module>\n'
    text += "NotImplementedError\n"
    f = import_error_finding("lab/dag.py", text)
    assert f.line == 30 and "YOUR CODE HERE" in f.fix


def test_cycle_error_becomes_a_cycle_finding():
    f = import_error_finding("dag.py", "AirflowDagCycleException: Cycle detected in Dag: p. Faulty task: c")
    assert (f.rule, f.about) == ("cycle", "c")


def test_snapshot_diff_sees_content_not_time(tmp_path: Path):
    (tmp_path / "raw" / "2024-01-01").mkdir(parents=True)
    f = tmp_path / "raw" / "2024-01-01" / "x.txt"
    f.write_text("a\n")
    first = snapshot(tmp_path)
    f.write_text("a\n")  # rewritten, same bytes
    assert diff(first, snapshot(tmp_path)).same
    f.write_text("a\na\n")  # appended
    (tmp_path / "raw" / "2024-01-01" / "y.txt").write_text("new")
    d = diff(first, snapshot(tmp_path))
    assert (d.changed, d.added, d.removed) == (["raw/2024-01-01/x.txt"], ["raw/2024-01-01/y.txt"], [])


def _raw(run_state="success", rerun_diff=None, **task_extra):
    tasks = [
        {"task_id": t, "operator": "X", "retries": 1, "upstream": u, "downstream": d}
        for t, u, d in (("a", [], ["b"]), ("b", ["a"], ["c"]), ("c", ["b"], []))
    ]
    run = {
        "logical_date": "2024-01-01",
        "state": run_state,
        "seconds": 1.0,
        "error": None,
        "tasks": [{"task_id": t, "state": "success"} for t in "abc"],
    }
    if task_extra:
        run["tasks"][1] = {"task_id": "b", "state": "failed", **task_extra}
        run["tasks"][2]["state"] = "upstream_failed"
    raw = {
        "dags": [{"dag_id": "p", "schedule": "@daily", "catchup": False, "start_date": None, "tasks": tasks}],
        "import_errors": {},
        "run": run,
        "outputs": {"raw/2024-01-01/x": "h"},
        "written": ["raw/2024-01-01/x"],
    }
    if rerun_diff is not None:
        raw["rerun"] = {**run, "seconds": 0.5}
        raw["rerun_diff"] = rerun_diff
    return raw


def test_compose_passes_a_clean_idempotent_run():
    report = DagReport("dag.py", "data")
    compose(
        report,
        _raw(rerun_diff={"changed": [], "added": [], "removed": []}),
        dag_id=None,
        run=True,
        min_tasks=3,
    )
    assert report.findings == [] and report.idempotency.same is True
    assert report.shape.order == ["a", "b", "c"]
    assert "idempotent" in render(report)


def test_compose_reports_a_failed_task_with_its_line():
    report = DagReport("dag.py", "data")
    compose(
        report,
        _raw("failed", error="ValueError: bad rows", file="dag.py", line=13),
        dag_id=None,
        run=True,
        min_tasks=3,
    )
    [finding] = report.findings
    assert (finding.rule, finding.about, finding.line) == ("task-failed", "b", 13)
    assert "ValueError: bad rows" in finding.message and "dag.py:13" in finding.fix
    assert report.idempotency.checked is False


def test_compose_reports_changed_outputs_as_not_idempotent():
    report = DagReport("dag.py", "data")
    compose(
        report,
        _raw(rerun_diff={"changed": ["raw/2024-01-01/x"], "added": [], "removed": []}),
        dag_id=None,
        run=True,
        min_tasks=3,
    )
    assert [f.rule for f in report.findings] == ["not-idempotent"]
    assert "raw/2024-01-01/x" in report.findings[0].message


def test_compose_says_when_no_dag_was_found():
    report = DagReport("dag.py", "data")
    compose(report, {"dags": [], "import_errors": {}, "seconds": {}}, dag_id=None, run=False, min_tasks=3)
    assert [f.rule for f in report.findings] == ["no-dag"]


def test_the_json_keeps_each_findings_published_keys():
    """The lab notebook reads `check`, `message` and `fix` from `autograder dag --json`: the course's one Finding
    (rule, where, about) is written under those names, in that order, and the Check list speaks the common
    vocabulary beside it."""
    from autograder.dag.cli import to_outcome
    from mlinfra.base.output import to_jsonable

    report = DagReport("dag.py", "data")
    compose(report, _raw("failed", error="ValueError: bad rows", file="dag.py", line=13), dag_id=None, run=True,
            min_tasks=3)
    report.findings += structure_findings(_shape(_chain("a", "b"), schedule=None), "dag.py")
    data = to_jsonable(to_outcome(report))
    first, few, _ = data["findings"]
    assert list(first) == ["check", "message", "fix", "file", "line", "task_id"]
    assert (first["check"], first["file"], first["line"], first["task_id"]) == ("task-failed", "dag.py", 13, "b")
    assert (few["check"], few["file"], few["line"], few["task_id"]) == ("too-few-tasks", "dag.py", None, None)
    assert [c["where"] for c in data["checks"]] == ["dag.py:13", "", ""]
    assert [c["name"] for c in data["checks"]] == ["task-failed", "too-few-tasks", "no-schedule"]
    assert "dag.py:13" in render(report) and "[too-few-tasks]" in render(report)
