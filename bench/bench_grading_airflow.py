"""Per-student cost of `grade --engine airflow` next to the local engine, on the same class, in one run.

    python bench/bench_grading_airflow.py [--students N] [--lab LAB] [--no-celery]

The class: N submissions of the lab (default 6 of lab01-environment), cycling through the reference and the lab's
known-bad samples from tests/samples/. Graded three ways, one after another:

- local engine: `grade_class` with 2 workers (one per core here);
- Airflow, local executor: `dag.test()` in a fresh Airflow home (SQLite), tasks one after another;
- Airflow, CeleryExecutor: two Celery workers (separate processes) on a Redis broker and a scratch PostgreSQL
  database cloned from a migrated template (skipped, with the reason, when neither answers).

For each it prints the wall time, seconds per student, and for the Airflow runs where the time went: start-up
(child process, Airflow's imports, database check/migration, the execution API server for Celery), the prepare
task, the grade tasks (Airflow's task duration against the grading inside it, the difference being Airflow's own
per-task cost), and the merge. It also checks the three grades.csv are identical and says so. Figures only:
nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def build_class(lab_name: str, n: int, dest: Path) -> None:
    from graded_samples import build_submission, lab_source, load_samples

    lab = lab_source(lab_name)
    # Samples that finish quickly (no infinite loops or memory hogs: those measure the limits, not the engine).
    quick = [s for s in load_samples(lab_name) if s.name not in ("infinite-loop", "memory-hog", "kernel-crash")]
    cycle = [None, *quick]
    for i in range(n):
        sample = cycle[i % len(cycle)]
        build_submission(sample, lab, dest / f"s{i:02d}-{sample.name if sample else 'reference'}")


def sandbox() -> str:
    from autograder.grading.sandbox import bwrap_works

    return "none" if bwrap_works() else "bwrap"


def airflow_breakdown(batch, wall: float) -> str:
    run = batch.data["airflow"]
    tasks = run["tasks"]
    grade = [t for t in tasks if t["task_id"] == "grade"]
    inside = {p.subject: float(p.data.get("airflow", {}).get("seconds") or p.data.get("seconds", 0.0))
              for p in batch.parts}
    task_overhead = [float(t["duration"] or 0.0) - inside.get(t["student"], 0.0) for t in grade]
    prepare = next((float(t["duration"] or 0.0) for t in tasks if t["task_id"] == "prepare"), 0.0)
    merge = next((float(t["duration"] or 0.0) for t in tasks if t["task_id"] == "merge"), 0.0)
    startup = wall - float(run.get("dag_test_seconds") or 0.0)
    return (f"    start-up (child, imports, database, API server): {startup:.1f} s; DAG run {run['dag_test_seconds']} s\n"
            f"    prepare task {prepare:.1f} s; merge task {merge:.1f} s\n"
            f"    grade tasks: median {statistics.median(float(t['duration'] or 0) for t in grade):.2f} s each, "
            f"of which grading {statistics.median(inside.values()):.2f} s; Airflow's own cost per task "
            f"(task duration minus the grading inside it): median {statistics.median(task_overhead):.2f} s\n"
            f"    workers that ran grade tasks: {', '.join(run.get('workers') or run.get('hosts') or ['-'])}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=6, help="class size (default 6)")
    parser.add_argument("--lab", default="lab01-environment", help="the lab (default lab01-environment)")
    parser.add_argument("--no-celery", action="store_true", help="skip the CeleryExecutor run")
    parser.add_argument("--postgres", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server (the scratch database is created there and dropped after)")
    args = parser.parse_args(argv)

    from autograder.grading import airflow as ae
    from autograder.grading.engine import grade_class

    rows: list[tuple[str, float, str]] = []
    grades: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-grading-airflow-") as tmp:
        work = Path(tmp)
        klass = work / "class"
        build_class(args.lab, args.students, klass)
        kind = sandbox()
        print(f"class: {args.students} submissions of {args.lab}; sandbox {kind}", flush=True)

        start = time.perf_counter()
        batch = grade_class(args.lab, klass, work / "local", workers=2, sandbox=kind)
        wall = time.perf_counter() - start
        grades["local engine"] = (work / "local" / "grades.csv").read_text()
        rows.append(("local engine (2 workers)", wall, ""))
        print(f"local engine: {wall:.1f} s", flush=True)

        start = time.perf_counter()
        batch = ae.grade_on_airflow(args.lab, klass, work / "af-local", executor="local",
                                    airflow_home=work / "af-local-home", sandbox=kind)
        wall = time.perf_counter() - start
        grades["airflow local"] = (work / "af-local" / "grades.csv").read_text()
        rows.append(("airflow, local executor (dag.test)", wall, airflow_breakdown(batch, wall)))
        print(f"airflow local executor: {wall:.1f} s", flush=True)

        why = "--no-celery" if args.no_celery else ae.services_answer(args.postgres)
        if why:
            rows.append(("airflow, CeleryExecutor", float("nan"), f"    skipped: {why}"))
        else:
            name = f"autograder_airflow_bench_{uuid.uuid4().hex[:8]}"
            queue = f"autograder-bench-{uuid.uuid4().hex[:8]}"
            home = work / "af-celery-home"
            t0 = time.perf_counter()
            db = ae.create_scratch_database(args.postgres, name, home)
            clone = time.perf_counter() - t0
            try:
                start = time.perf_counter()
                batch = ae.grade_on_airflow(args.lab, klass, work / "af-celery", executor="celery",
                                            airflow_home=home, airflow_db=db, celery_workers=2,
                                            queue=queue, sandbox=kind)
                wall = time.perf_counter() - start
            finally:
                ae.drop_database(args.postgres, name)
                ae.forget_queue(ae.DEFAULT_BROKER, queue)
            grades["airflow celery"] = (work / "af-celery" / "grades.csv").read_text()
            rows.append(("airflow, CeleryExecutor (2 workers started for the run)", wall,
                         f"    scratch database from the template: {clone:.1f} s (not in the wall time)\n"
                         + airflow_breakdown(batch, wall)))
            print(f"airflow celery: {wall:.1f} s", flush=True)

    n = args.students
    print(f"\n{'engine':58} {'wall s':>8} {'s/student':>10}")
    for label, wall, detail in rows:
        print(f"{label:58} {wall:8.1f} {wall / n:10.2f}")
        if detail:
            print(detail)
    same = len(set(grades.values())) == 1
    print(f"\ngrades.csv identical across {', '.join(grades)}: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
