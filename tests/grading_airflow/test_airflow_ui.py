"""What an operator sees of `grade --engine airflow` (docs/grading-at-scale.md): grade tasks labelled with the
student, score and status; nbgrader's exchange and checksum chatter kept out of task logs; and the grading
Airflow never the one that loads the learners' DAG lab."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading import airflow as ae
from autograder.grading.airflow import environment
from mlinfra import airflow_local as al

ROOT = Path(__file__).resolve().parents[2]


def _bundles(env: dict[str, str]) -> list[tuple[str, str]]:
    return [(b["name"], b["kwargs"].get("path", "")) for b in
            json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])]


def test_learners_dags_and_grading_never_share_an_airflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / ".state" / "airflow"))  # what `make` exports
    monkeypatch.delenv("AUTOGRADER_AIRFLOW_HOME", raising=False)
    course = al.resolve(root=tmp_path, dags=tmp_path / "workspace" / "dag-lab")
    env = al.airflow_env(course)
    assert _bundles(env) == [("dags-folder", "")] and env["AIRFLOW__CORE__DAGS_FOLDER"] == course.dags.as_posix()
    grading = al.resolve(root=tmp_path, grading=True)
    assert grading.home == (tmp_path / ".state" / "airflow-grading" / "home").resolve() != course.home
    assert grading.port == al.GRADING_PORT != course.port
    assert _bundles(al.airflow_env(grading)) == [("grading", str(grading.home / al.GRADING_DAGS))]
    assert al.stop_command(grading).endswith("stop --grading") and al.stop_command(course) == "make airflow-stop"
    monkeypatch.chdir(ROOT)
    assert environment.default_home() == al.grading_home(ROOT), "the engine's home is the grading one"
    assert environment.default_home() != Path(str(tmp_path / ".state" / "airflow")).resolve()
    monkeypatch.setenv("AUTOGRADER_AIRFLOW_HOME", str(tmp_path / "elsewhere"))
    assert environment.default_home() == (tmp_path / "elsewhere").resolve()


PROBE = """
import importlib.util, json, logging, sys
spec = importlib.util.spec_from_file_location("grading_dag", sys.argv[1])
dag_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dag_module)
from mlinfra.base.results import Outcome, Check
dag_module._quiet_nbgrader()
seen = []
class Keep(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())
log = logging.getLogger("traitlets")
log.addHandler(Keep())
log.critical("Unwritable directory, please contact your instructor: %s", "/x/exchange")
log.warning("Attribute '%s' for cell %s has changed! (should be: %s, got: %s)", "checksum", "t", "a", "b")
log.warning("Attribute '%s' for cell %s has changed! (should be: %s, got: %s)", "source", "t", "a", "b")
o = Outcome("ada", [Check("t", "failed", 3.0, 10.0)], status="kernel died")
grade = dag_module.dag.task_dict["grade"]
print(json.dumps({"seen": seen, "label": dag_module.label("ada", o), "template": grade.map_index_template}))
"""


def test_grade_tasks_are_labelled_and_nbgrader_chatter_is_dropped(tmp_path: Path) -> None:
    dep = ae.deployment("local", home=tmp_path)
    dag_file = ae.install_dag(dep)
    done = subprocess.run([sys.executable, "-c", PROBE, str(dag_file)], env=ae.airflow_env(dep),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-800:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["template"] == "{{ grade_label }}", "the label is rendered from the task's context after it ran"
    assert got["label"] == "ada: 3/10 (kernel died)"
    assert got["seen"] == ["Attribute 'source' for cell t has changed! (should be: a, got: b)"], \
        "exchange and checksum chatter dropped; a changed locked cell's source is still said"


GRADE_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("grading_dag", sys.argv[1])
dag_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dag_module)
from autograder.grading import engine
from mlinfra.base.results import Check, Outcome
status = {"ada": "completed", "bob": "grader error"}
engine.load_plan = lambda work_dir: None
engine.grade_student = lambda plan, student: Outcome(
    student, [Check("t", "failed", 0.0, 10.0)], notes=["the kernel never started"] if student == "bob" else [],
    status=status[student])
class TI:
    try_number = 1
class Task:
    retries = 2
context = {"params": {"work_dir": sys.argv[2]}, "ti": TI(), "task": Task()}
dag_module.get_current_context = lambda: context
report = {}
for student, tries in (("ada", [1]), ("bob", [1, 3])):
    for n in tries:
        TI.try_number = n
        try:
            result = dag_module.grade.function(student)
            report[f"{student}-{n}"] = ["returned", result["status"], context["grade_label"]]
        except RuntimeError as exc:
            report[f"{student}-{n}"] = ["failed", str(exc), context["grade_label"]]
print(json.dumps(report))
"""


def test_a_grade_task_fails_only_when_the_grader_failed(tmp_path: Path) -> None:
    """A student's 0/10 is a successful task; a grader error fails it (retried first), its result kept for merge."""
    dep = ae.deployment("local", home=tmp_path / "home")
    dag_file = ae.install_dag(dep)
    work = tmp_path / "work"
    done = subprocess.run([sys.executable, "-c", GRADE_PROBE, str(dag_file), str(work)], env=ae.airflow_env(dep),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-800:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["ada-1"] == ["returned", "completed", "ada: 0/10 (completed)"], "0/10 is the student's: success"
    assert got["bob-1"][0] == "failed" and "(try 1)" in got["bob-1"][1], "a grader error is retried"
    assert got["bob-3"][0] == "failed" and "on every try: the kernel never started" in got["bob-3"][1]
    assert got["bob-3"][2] == "bob: 0/10 (grader error)"
    saved = json.loads((work / "airflow-results" / "bob.json").read_text())
    assert saved["subject"] == "bob" and saved["status"] == "grader error", "merge records it with the reason"
    assert not (work / "airflow-results" / "ada.json").exists()
