"""The phase1-lab1 deploy check's verdict, on the trusted side, from what the sandboxed Airflow left behind once every
process in it has ended: the run's DagRun and TaskInstance rows read from Airflow's own metadata database, and the
date partition the run wrote. Everything here is read as hostile data (the learner's DAG ran in the same sandbox and
could write both): each file is opened without following a link, by descriptor from the sandbox's folder down,
only if it is a regular file under a size cap; the database is a private copy opened with SQLite's schema trust off
and a step budget. `run_problems` and `output_problems` are pure and say, one sentence each, why the run does not
count (docs/deploy-checks.md, "phase1-lab1").
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

DB_CAP = 64 * 1024 * 1024  # a migrated Airflow 3 database with one run is ~1.5 MB
FILE_CAP = 32 * 1024 * 1024  # the largest partition file (features/train_x.npy) is ~4 MB
ROWS_CAP = 200
SQL_STEPS = 2_000_000  # SQLite virtual-machine steps before a query is abandoned (a hostile schema's loop)
OK_STATES = ("success",)
STAGES_WRITTEN = ("raw", "validated", "features", "models", "reports")


@dataclass
class Observed:
    """What the grader itself saw of the run: the nonce it chose and when (UTC), as the API answered."""

    run_id: str
    logical_date: str  # YYYY-MM-DD
    triggered_at: datetime
    finished_at: datetime
    api_state: str = ""
    api_tasks: dict[str, str] = field(default_factory=dict)


def read_bounded(root: Path, rel: str, cap: int) -> bytes | None:
    """The bytes of root/rel, or None when a component is missing, is a link, or is not a regular file of at most
    `cap` bytes. Each component is opened with O_NOFOLLOW relative to its parent's descriptor, so a link planted
    anywhere on the way (to /etc, a FIFO, another student's folder) is refused, not followed."""
    parts = [p for p in rel.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        return None
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, flags_dir)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                       dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    os.close(fd)
    try:
        info = os.fstat(leaf)
        if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
            return None
        chunks, size = [], 0
        while chunk := os.read(leaf, 1 << 20):
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(leaf)


def list_bounded(root: Path, rel: str, cap: int = 50) -> list[str]:
    """The names in the folder root/rel (opened without following links), at most `cap` of them, sorted."""
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(root, flags_dir)
    except OSError:
        return []
    try:
        for part in [p for p in rel.split("/") if p]:
            if part in (".", ".."):
                return []
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        names = []
        with os.scandir(fd) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) >= cap:
                    break
        return sorted(names)
    except OSError:
        return []
    finally:
        os.close(fd)


def read_metadata(home: Path, private: Path, dag_id: str, run_id: str) -> tuple[dict[str, Any] | None,
                                                                               list[dict[str, Any]], str]:
    """The DagRun row of `run_id` and its TaskInstance rows, from a private copy of home/airflow.db (and its
    write-ahead log). Returns (run or None, task instances, a problem sentence or '')."""
    import sqlite3

    data = read_bounded(home, "airflow.db", DB_CAP)
    if data is None:
        return None, [], "Airflow's metadata database was missing, a link, or over 64 MB after the run"
    private.mkdir(parents=True, exist_ok=True)
    copy = private / "airflow.db"
    copy.write_bytes(data)
    wal = read_bounded(home, "airflow.db-wal", DB_CAP)
    if wal:
        copy.with_name("airflow.db-wal").write_bytes(wal)
    steps = {"n": 0}

    def budget() -> int:
        steps["n"] += 1
        return 1 if steps["n"] > SQL_STEPS // 1000 else 0

    try:
        db = sqlite3.connect(str(copy), timeout=1)
    except sqlite3.Error as exc:
        return None, [], f"Airflow's metadata database could not be opened ({exc})"
    try:
        db.set_progress_handler(budget, 1000)
        for pragma in ("trusted_schema=OFF", "cell_size_check=ON", "mmap_size=0"):
            db.execute(f"PRAGMA {pragma}")
        kinds = dict(db.execute("SELECT name, type FROM sqlite_master WHERE name IN ('dag_run', 'task_instance')"))
        if kinds != {"dag_run": "table", "task_instance": "table"}:
            return None, [], "Airflow's metadata database does not hold its dag_run and task_instance tables"
        db.row_factory = lambda cursor, row: {col[0]: _plain(v) for col, v in zip(cursor.description, row, strict=True)}
        run = db.execute("SELECT run_id, state, run_type, logical_date, start_date, end_date, triggered_by "
                         "FROM dag_run WHERE dag_id = ? AND run_id = ? LIMIT 2", (dag_id, run_id)).fetchall()
        runs = db.execute("SELECT count(*) AS n FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchone()
        tis = db.execute("SELECT task_id, map_index, state, start_date, end_date, try_number FROM task_instance "
                         "WHERE dag_id = ? AND run_id = ? LIMIT ?", (dag_id, run_id, ROWS_CAP)).fetchall()
    except sqlite3.Error as exc:
        return None, [], f"Airflow's metadata database could not be read ({str(exc)[:120]})"
    finally:
        db.close()
    if len(run) != 1:
        return None, [], f"Airflow's metadata database holds no run {run_id} of {dag_id}"
    found = dict(run[0])
    found["runs_of_dag"] = runs.get("n") if isinstance(runs, dict) else None
    return found, tis, ""


def _plain(value: Any) -> Any:
    """A cell as a short plain value (a hostile database can put any type and size in any column)."""
    if isinstance(value, bytes):
        value = value[:200].decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value[:200]
    return value if isinstance(value, (int, float)) or value is None else str(value)[:200]


def _when(value: Any) -> datetime | None:
    """A timestamp column as an aware UTC datetime (SQLite holds Airflow's as text: '2026-12-06 05:13:32.670301')."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def run_problems(seen: Observed, run: dict[str, Any] | None, tis: list[dict[str, Any]], why: str = "") -> list[str]:
    """Why the metadata does not show the grader's own run succeeding, every task in order, inside the window in
    which the grader watched it ([] when it does)."""
    from mlinfra.pipeline import MUST_FOLLOW

    if run is None:
        return [why or f"no run {seen.run_id} in Airflow's metadata"]
    problems = []
    not_ok = sorted({str(t.get("task_id")) for t in tis if t.get("state") not in OK_STATES})
    if not_ok:
        states = {str(t.get("task_id")): t.get("state") for t in tis if t.get("state") not in OK_STATES}
        failed = {k: v for k, v in states.items() if v in ("failed", "upstream_failed", "up_for_retry")}
        problems.append("in the grader's run, " + ", ".join(f"{k} ended {v!r}" for k, v in
                                                            sorted((failed or states).items()))
                        + ": run the DAG (`make airflow`, trigger it) and read the failed task's log")
    if run.get("state") != "success":
        problems.append(f"the grader's run of course_pipeline ended {run.get('state')!r}, not success")
    if run.get("run_type") != "manual":
        problems.append(f"the run in the metadata is of type {run.get('run_type')!r}, not the manual run the "
                        "grader triggered")
    logical = _when(run.get("logical_date"))
    if logical is None or logical.date().isoformat() != seen.logical_date:
        problems.append(f"the run's logical date {run.get('logical_date')!r} is not the {seen.logical_date} the "
                        "grader chose")
    slack = 2.0  # seconds: the grader's clock and the sandbox's are the same clock; SQLite rounds nothing
    lo, hi = seen.triggered_at.timestamp() - slack, seen.finished_at.timestamp() + slack

    def inside(moment: datetime | None) -> bool:
        return moment is not None and lo <= moment.timestamp() <= hi

    if not (inside(_when(run.get("start_date"))) and inside(_when(run.get("end_date")))):
        problems.append("the run's start or end time lies outside the time the grader watched it run")
    by_task: dict[str, dict[str, Any]] = {}
    for ti in tis:
        if ti.get("map_index") not in (-1, None):
            continue  # a mapped task's instances: judged by their states below
        by_task[str(ti.get("task_id"))] = ti
    missing = [t for t in MUST_FOLLOW if t not in by_task]
    if missing:
        problems.append(f"the run has no task instance for {', '.join(missing)}")
    for ti in tis:
        start, end = _when(ti.get("start_date")), _when(ti.get("end_date"))
        if not (inside(start) and inside(end)) or (start and end and end < start):
            problems.append(f"task {ti.get('task_id')}'s start/end times lie outside the grader's run")
            break
    for task, before in MUST_FOLLOW.items():
        for first in before:
            a, b = by_task.get(first), by_task.get(task)
            if not a or not b:
                continue
            ended, began = _when(a.get("end_date")), _when(b.get("start_date"))
            if ended and began and began < ended:
                problems.append(f"task {task} started before {first} had ended in the grader's run")
    db_states = {str(t.get("task_id")): t.get("state") for t in tis}
    changed = sorted(t for t, st in seen.api_tasks.items()
                     if st in ("success", "failed", "upstream_failed") and db_states.get(t) != st)
    if changed:
        problems.append(f"the metadata's state of {', '.join(changed)} differs from what Airflow's API told the "
                        "grader during the run")
    if seen.api_state and seen.api_state != run.get("state"):
        problems.append(f"the metadata says the run ended {run.get('state')!r}, while Airflow's API told the grader "
                        f"{seen.api_state!r}")
    return problems


@lru_cache(maxsize=1)
def expected_digests() -> dict[str, str]:
    """The SHA-256 of each file the lab's pipeline writes that the grader can recompute without training: the raw
    partition (the digits scikit-learn ships) and the features (a fixed, seeded split), for any date."""
    import tempfile

    from mlinfra import pipeline

    with tempfile.TemporaryDirectory(prefix="ag-airflow-expect-") as tmp:
        ds = "2024-01-01"
        pipeline.ingest(tmp, ds)
        pipeline.engineer_features(tmp, ds)
        out = {}
        for stage, names in (("raw", ("images.npy", "labels.npy")),
                             ("features", tuple(f"{s}_{xy}.npy" for s in pipeline.SPLITS for xy in "xy"))):
            for name in names:
                out[f"{stage}/{name}"] = hashlib.sha256((Path(tmp) / stage / ds / name).read_bytes()).hexdigest()
    return out


def output_problems(home: Path, ds: str, data: str = "dags/data") -> list[str]:
    """Why home/<data>/<stage>/<ds>/ does not hold what the lab's pipeline writes for the grader's date ([] when it
    does): every stage's partition exists, the raw data and features match what the grader recomputes byte for byte,
    and the evaluation report is for that date and passed. Every component below `home` is opened without following
    links (`data` too: a DAG could make dags/ a link)."""
    problems = []
    missing = [s for s in STAGES_WRITTEN if not list_bounded(home, f"{data}/{s}/{ds}")]
    if missing:
        where = ", ".join(f"{s}/{ds}/" for s in missing)
        return [(f"the run wrote no {where} under the DAG's data folder: each task must write the run's date "
                 "partition (pipeline.<step>(DATA_DIR, ds))")]
    for rel, digest in expected_digests().items():
        stage, name = rel.split("/")
        blob = read_bounded(home, f"{data}/{stage}/{ds}/{name}", FILE_CAP)
        if blob is None or hashlib.sha256(blob).hexdigest() != digest:
            problems.append(f"{stage}/{ds}/{name} is not what pipeline.{_STEP[stage]} writes for {ds}")
            break
    report = read_bounded(home, f"{data}/reports/{ds}/evaluation.json", 1 << 20)
    try:
        parsed = json.loads(report) if report is not None else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("ds") != ds or parsed.get("passed") is not True:
        problems.append(f"reports/{ds}/evaluation.json is missing or is not a passed evaluation of {ds}")
    if not list_bounded(home, f"{data}/models/{ds}"):
        problems.append(f"models/{ds}/ holds no trained run")
    return problems


_STEP = {"raw": "ingest", "features": "engineer_features"}
