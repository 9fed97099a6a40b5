"""The result of `autograder dag`: what was found in a DAG file and what happened when it ran.

Plain dataclasses: the worker (inside the isolated Airflow process) fills the raw parts, the parent adds the
findings (the course's one `Finding`: rule, message, where, fix, and the task it is about), and
`autograder.reports.write_json` turns the whole into the `--json` document. That document is published: the DAG lab's
notebook reads each finding's `check`, `message` and `fix`, so `DagReport.to_dict` writes a finding under the
names it always had (`finding_dict`), converting at the edge rather than keeping a class of its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mlinfra.base.results import Finding

__all__ = ["DagReport", "DagShape", "Idempotency", "RunReport", "TaskInfo", "TaskRun", "finding_dict",
           "topological_order"]


def finding_dict(f: Finding) -> dict[str, Any]:
    """A finding as `autograder dag --json` has always written it (the lab notebook's keys, in their order)."""
    return {"check": f.rule, "message": f.message, "fix": f.fix, "file": f.file, "line": f.line,
            "task_id": f.about or None}


@dataclass
class TaskInfo:
    task_id: str
    operator: str
    retries: int
    upstream: list[str]
    downstream: list[str]


@dataclass
class DagShape:
    dag_id: str
    schedule: str | None  # None: no schedule (runs only when triggered)
    catchup: bool
    start_date: str | None
    tasks: list[TaskInfo]
    order: list[str] = field(default_factory=list)  # a topological order of the task ids

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DagShape:
        shape = cls(**{**raw, "tasks": [TaskInfo(**t) for t in raw["tasks"]]})
        shape.order = topological_order(shape.tasks)
        return shape


@dataclass
class TaskRun:
    task_id: str
    state: str  # Airflow's task-instance state: success, failed, upstream_failed, skipped, ...
    error: str | None = None  # "ValueError: ..." for a task that raised
    file: str | None = None  # where it raised: the DAG file's line when the DAG file is on the stack
    line: int | None = None


@dataclass
class RunReport:
    logical_date: str
    state: str  # the DAG run's state, or "error" when dag.test itself raised
    seconds: float
    tasks: list[TaskRun]
    error: str | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunReport:
        return cls(**{**raw, "tasks": [TaskRun(**t) for t in raw["tasks"]]})


@dataclass
class Idempotency:
    checked: bool
    same: bool | None  # None when not checked
    outputs: dict[str, str] = field(default_factory=dict)  # data-relative path -> sha256 after the first run
    written: list[str] = field(default_factory=list)  # files the first run created or changed
    changed: list[str] = field(default_factory=list)  # ... that the second run changed again
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass
class DagReport:
    dag_file: str
    data_dir: str
    passed: bool = False
    dag_id: str | None = None
    shape: DagShape | None = None
    findings: list[Finding] = field(default_factory=list)
    run: RunReport | None = None
    rerun: RunReport | None = None
    idempotency: Idempotency | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["findings"] = [finding_dict(f) for f in self.findings]
        return out


def topological_order(tasks: list[TaskInfo]) -> list[str]:
    """Kahn's order, ties broken by declaration order, so `a >> b >> c` reads back as a, b, c."""
    position = {t.task_id: i for i, t in enumerate(tasks)}
    waiting = {t.task_id: len([u for u in t.upstream if u in position]) for t in tasks}
    downstream = {t.task_id: [d for d in t.downstream if d in position] for t in tasks}
    ready = sorted((tid for tid, n in waiting.items() if n == 0), key=position.__getitem__)
    order: list[str] = []
    while ready:
        tid = ready.pop(0)
        order.append(tid)
        for d in downstream[tid]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
        ready.sort(key=position.__getitem__)
    return order
