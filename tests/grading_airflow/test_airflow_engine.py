"""Issue #12, class scale: `grade --engine airflow` gives the same grades.csv as the local engine on the same class,
under Airflow's own executor (dag.test) and under CeleryExecutor with two real workers (Redis broker, PostgreSQL
metadata database), and the DAG has the shape the docs promise (docs/grading-at-scale.md).

The class: the lab01-environment reference and two known-bad samples (tests/samples/lab01-environment), whose
points per grade_id are asserted too, so a run that merged nothing or everything cannot pass; and, graded beside
them, attackers from tests/samples/_hostile (a kernel that lies about its results, one that leaks hidden tests
through its exceptions), which must gain nothing and be flagged under Airflow's executors as under the local engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from graded_samples import build_hostile, build_submission, lab_source, load_hostile, load_samples

from autograder.errors import UsageError
from autograder.grading import airflow as ae

# tests/ is on sys.path already: tests/conftest.py sits there (pytest puts a conftest's folder first)
ROOT = Path(__file__).resolve().parents[2]

LAB = "lab01-environment"
BAD = ("boundary-off-by-one", "partly-done")  # each loses a known set of points
ATTACKERS = ("lying-kernel", "leaks-hidden-tests")  # tests/samples/_hostile: each gains nothing, and is flagged
PG_SERVER = os.environ.get("AUTOGRADER_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("AUTOGRADER_TEST_BROKER", ae.DEFAULT_BROKER)


def _sandbox() -> str:
    from autograder.grading.sandbox import bwrap_works

    return "none" if bwrap_works() else "bwrap"


# ---------------------------------------------------------------------------------------------- cheap checks


def test_celery_without_postgres_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="PostgreSQL"):
        ae.deployment("celery", home=tmp_path, database="sqlite:///x.db")
    with pytest.raises(UsageError, match="unknown"):
        ae.deployment("kubernetes", home=tmp_path)


def test_env_is_isolated_and_names_the_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")  # must not leak into the grading run
    dep = ae.deployment("celery", home=tmp_path, database="postgresql://u@127.0.0.1:5432/db", queue="q1")
    env = ae.airflow_env(dep)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg2://u@127.0.0.1:5432/db"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://u@127.0.0.1:5432/db"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://127.0.0.1:")
    assert env["AUTOGRADER_GRADING_QUEUE"] == "q1"
    local = ae.airflow_env(ae.deployment("local", home=tmp_path))
    assert local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path.resolve() / 'airflow.db'}"
    assert "AIRFLOW__CORE__EXECUTOR" not in local


def test_missing_submissions_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        ae.grade_on_airflow(LAB, tmp_path / "nope", tmp_path / "out", airflow_home=tmp_path / "home")


def test_dag_shape(tmp_path: Path) -> None:
    """Airflow's own DagBag loads the installed DAG: prepare -> grade (mapped, retried) -> merge (all_done)."""
    dep = ae.deployment("local", home=tmp_path)
    dag_file = ae.install_dag(dep)
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)\n"
        "dag = bag.dags['autograder_grade_class']\n"
        "t = dag.task_dict\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "  'tasks': sorted(t), 'mapped': type(t['grade']).__name__,\n"
        "  'retries': t['grade'].retries,\n"
        "  'merge_rule': getattr(t['merge'].trigger_rule, 'value', t['merge'].trigger_rule),\n"
        "  'up': {k: sorted(v.upstream_task_ids) for k, v in t.items()}, 'schedule': dag.schedule}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(dag_file)], env=ae.airflow_env(dep),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-800:]
    shape = json.loads(done.stdout.strip().splitlines()[-1])
    assert shape["errors"] == {}
    assert shape["tasks"] == ["grade", "merge", "prepare"]
    assert shape["mapped"].endswith("MappedOperator")  # dynamic task mapping: one instance per student
    assert shape["retries"] == 2
    assert shape["merge_rule"] == "all_done"
    assert shape["up"] == {"prepare": [], "grade": ["prepare"], "merge": ["grade"]}
    assert shape["schedule"] is None


# ---------------------------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def klass(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference and two known-bad samples, as student folders."""
    lab = lab_source(LAB)
    subs = tmp_path_factory.mktemp("class")
    build_submission(None, lab, subs / "reference")
    samples = {s.name: s for s in load_samples(LAB)}
    for name in BAD:
        build_submission(samples[name], lab, subs / name)
    for sample in load_hostile():
        if sample.name in ATTACKERS:
            assert build_hostile(sample, lab, subs) == sample.name
    return subs


@pytest.fixture(scope="module")
def local_grades(klass: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """grades.csv from the local engine: what the Airflow runs must equal."""
    from autograder.grading.engine import grade_class

    out = tmp_path_factory.mktemp("local-engine")
    batch = grade_class(LAB, klass, out, workers=2, sandbox=_sandbox())
    _assert_expected_points(batch)
    return (out / "grades.csv").read_text()


def _assert_expected_points(batch: object) -> None:
    lab = lab_source(LAB)
    samples = {s.name: s for s in load_samples(LAB)}
    parts = {p.subject: p for p in batch.parts}  # type: ignore[attr-defined]
    assert sorted(parts) == sorted(["reference", *BAD, *ATTACKERS])
    tests = {c.name: c.max_points for c in parts["reference"].checks}
    assert tests, "the reference has no graded checks"
    assert parts["reference"].score == parts["reference"].max_score == sum(tests.values())
    hostile = {s.name: s for s in load_hostile()}
    for name in (*BAD, *ATTACKERS):
        sample = samples.get(name) or hostile[name]
        want = sample.expected_points(tests)
        got = {c.name: c.points for c in parts[name].checks if c.name in tests}
        assert got == want, f"{name}: {got} != {want} ({lab.name})"
    for name in ATTACKERS:
        assert parts[name].status == "flagged", (name, parts[name].status, parts[name].notes)


@pytest.mark.slow
def test_local_executor_matches_local_engine(klass: Path, local_grades: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    batch = ae.grade_on_airflow(LAB, klass, out, executor="local", airflow_home=tmp_path / "airflow",
                                sandbox=_sandbox())
    assert (out / "grades.csv").read_text() == local_grades
    _assert_expected_points(batch)
    run = batch.data["airflow"]
    assert run["state"] == "success"
    grade_tasks = [t for t in run["tasks"] if t["task_id"] == "grade"]
    assert sorted(t["student"] for t in grade_tasks) == sorted(["reference", *BAD, *ATTACKERS])  # one each
    scores = {p.subject: f"{p.score:g}/{p.max_score:g} ({p.status})" for p in batch.parts}
    assert {t["label"] for t in grade_tasks} == {f"{s}: {scores[s]}" for s in scores}, "score and status shown"
    assert all(t["state"] == "success" for t in run["tasks"]), "failed only for grader errors: none here"
    log = (Path(run["run_dir"]) / "airflow.log").read_text()
    assert "Unwritable directory" not in log and "Attribute 'checksum'" not in log, "no nbgrader chatter"
    assert json.loads((out / "summary.json").read_text())["students"] == 3 + len(ATTACKERS)
    assert sorted(p.name for p in (out / "feedback").glob("*.html")) == sorted(f"{s}.html" for s in
                                                                               ["reference", *BAD, *ATTACKERS])


@pytest.mark.slow
def test_celery_two_workers_match_local_engine(klass: Path, local_grades: str, tmp_path: Path) -> None:
    why = ae.services_answer(PG_SERVER, BROKER)
    if why:
        pytest.skip(f"CeleryExecutor needs PostgreSQL and Redis: {why}")
    name = f"autograder_airflow_test_{uuid.uuid4().hex[:8]}"
    home = tmp_path / "airflow"
    db = ae.create_scratch_database(PG_SERVER, name, home)
    queue = f"autograder-test-{uuid.uuid4().hex[:8]}"  # this run's queue: no other Celery user gets its tasks
    dep = ae.deployment("celery", home=home, database=db, broker=BROKER, queue=queue)
    workers = []
    try:
        for i in (1, 2):  # two workers, each a separate process (and process group), stopped by pid below
            log = tmp_path / f"worker{i}.log"
            workers.append((ae.start_celery_worker(dep, f"grader{i}", log), log))
        for proc, log in workers:
            ae.wait_for_worker(proc, log)
        out = tmp_path / "out"
        batch = ae.grade_on_airflow(LAB, klass, out, executor="celery", airflow_home=home, airflow_db=db,
                                    broker=BROKER, queue=queue, api_port=dep.api_port, jwt_secret=dep.jwt_secret,
                                    sandbox=_sandbox())
    finally:
        for proc, _ in workers:
            ae.stop_group(proc)
        ae.drop_database(PG_SERVER, name)
        ae.forget_queue(BROKER, queue)
    assert (out / "grades.csv").read_text() == local_grades
    _assert_expected_points(batch)
    run = batch.data["airflow"]
    assert run["state"] == "success"
    assert run["executor"] == "celery"
    # The grade tasks really ran on the workers, and on both of them.
    assert run["workers"] == ["grader1", "grader2"], run["workers"]
    assert all(proc.poll() is not None for proc, _ in workers)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AIRFLOW_STANDALONE_TEST") != "1",
    reason="starts a whole Airflow (`make airflow`, ~60 s on a busy machine): AIRFLOW_STANDALONE_TEST=1",
)
def test_standalone_matches_local_engine(klass: Path, local_grades: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """--executor standalone: the run is triggered on the grading Airflow (`airflow_local start --grading`), and its
    UI lists it."""
    from mlinfra import airflow_local as al

    if any(al.port_busy("127.0.0.1", p) for p in al.LOG_SERVER_PORTS):
        pytest.skip("Airflow's log-server ports 8793/8794 are taken (another Airflow is running)")
    port = ae.free_port()
    monkeypatch.setenv("AUTOGRADER_AIRFLOW_PORT", str(port))
    local = al.resolve(root=ROOT, home=tmp_path / "home", port=port, grading=True)  # the grading Airflow
    try:
        assert al.start(local, wait=400) == 0
        out = tmp_path / "out"
        batch = ae.grade_on_airflow(LAB, klass, out, executor="standalone", airflow_home=local.home,
                                    sandbox=_sandbox())
        users = json.loads(local.password_file.read_text())
        token = ae.api_request(f"{local.url}/auth/token", "POST", {"username": "admin", "password": users["admin"]})
        runs = ae.api_request(f"{local.url}/api/v2/dags/{ae.DAG_ID}/dagRuns", token=token["access_token"])
    finally:
        al.stop(local)
    assert (out / "grades.csv").read_text() == local_grades
    _assert_expected_points(batch)
    assert batch.data["airflow"]["state"] == "success"
    assert [r["dag_run_id"] for r in runs["dag_runs"]] == [batch.data["airflow"]["run_id"]]  # the UI has it


@pytest.mark.slow
def test_a_failed_prepare_is_one_line_naming_why(klass: Path, tmp_path: Path) -> None:
    """No such lab: the prepare task fails once (no retries: it would fail again) and the engine says why."""
    with pytest.raises(UsageError) as caught:
        ae.grade_on_airflow("lab99-no-such-lab", klass, tmp_path / "out", executor="local",
                            airflow_home=tmp_path / "airflow")
    message = str(caught.value)
    assert "\n" not in message
    assert "task prepare failed: UsageError:" in message and "lab99-no-such-lab" in message
    assert not (tmp_path / "out" / "grades.csv").exists()
