"""What Airflow costs in the DAG lab: loading a DAG file, migrating a database, and dag.test() runs.

    python bench/bench_airflow.py

Measures, through `autograder dag` (each check is a fresh worker process with its own AIRFLOW_HOME):
- a 3-task DAG with no heavy imports: Airflow import, DagBag parse, database migration (first run only: the
  migrated empty database is then kept as a template), first dag.test(), second dag.test() of the same date;
- the lab's reference DAG (five tasks, a 1-epoch CNN): the same figures, with the template already made;
- the wall time of each whole check. Prints figures only: nothing here passes or fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TINY = textwrap.dedent("""
    from pathlib import Path
    import pendulum
    from airflow.sdk import dag, task

    DATA = Path(__file__).resolve().parent / "data"

    @dag(schedule="@daily", start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False,
         default_args={"retries": 1})
    def tiny():
        @task
        def a(ds=None):
            out = DATA / "a" / ds
            out.mkdir(parents=True, exist_ok=True)
            (out / "x.txt").write_text("x\\n")
            return str(out)
        @task
        def b(path):
            return len(Path(path, "x.txt").read_text())
        @task
        def c(n):
            return n + 1
        c(b(a()))

    tiny()
""")


def measure(label: str, dag_text: str, work: Path) -> None:
    from autograder.dag.checker import check_dag

    lab = work / label
    lab.mkdir()
    (lab / "dag.py").write_text(dag_text)
    start = time.perf_counter()
    report = check_dag(lab / "dag.py", run=True, logical_date="2024-01-01", timeout=900)
    wall = time.perf_counter() - start
    s = report.seconds
    run = report.run.seconds if report.run else float("nan")
    rerun = report.rerun.seconds if report.rerun else float("nan")
    print(
        f"{label:<10} import airflow {s.get('import_airflow', float('nan')):5.1f} s | parse "
        f"{s.get('parse', float('nan')):5.2f} s | migrate {s.get('migrate', 0.0):4.1f} s | dag.test first "
        f"{run:5.1f} s, again {rerun:4.1f} s | whole check {wall:5.1f} s | "
        f"{'passed' if report.passed else [f.rule for f in report.findings]}"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-airflow-") as tmp:
        work = Path(tmp)
        os.environ["AUTOGRADER_AIRFLOW_TEMPLATE"] = str(work / "template")  # cold: the first check migrates
        print(f"bench_airflow: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        measure("tiny", TINY, work)
        measure("tiny-warm", TINY, work)
        measure("reference", (ROOT / "solutions" / "phase1-lab1-airflow-dag" / "dag.py").read_text(), work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
