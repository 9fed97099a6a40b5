"""A batch's plan: what `prepare_batch` staged and every grading process reads (`work_dir/plan.json`)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.errors import UsageError
from mlinfra.base.results import COMPLETED, FLAGGED, NOT_RUN, Check, Outcome

if TYPE_CHECKING:
    from autograder.labs import Lab

PLAN_NAME = "plan.json"


@dataclass
class BatchPlan:
    lab_name: str
    lab_folder: str
    work_dir: str
    sandbox: str  # "bwrap" or "none" (resolved; never "auto")
    tests: dict[str, float]  # grade_id -> max points, in notebook order
    students: list[str] = field(default_factory=list)
    # student -> {"files": str | None, "notes": [...], "flags": [...], "entry": str, "unreadable": str,
    #             "received": seconds since the epoch the instructor received it, or None}
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # about the batch (entries that are not submissions)
    file_mb: int = 256  # largest file a kernel may write
    keep_work: bool = False
    manual: dict[str, float] = field(default_factory=dict)  # manually graded cells: grade_id -> points
    course: dict[str, Any] | None = None  # the course file's due times and late rule (late.Course.to_dict)

    @functools.cached_property
    def lab(self) -> Lab:
        """The lab, parsed once per plan (`prepare_batch` hands over the one it parsed; a plan read from
        plan.json parses its folder on first use). Not part of plan.json."""
        from autograder.labs import load_lab

        return load_lab(Path(self.lab_folder))

    def with_lab(self, lab: Lab) -> BatchPlan:
        """This plan, carrying `lab` (already parsed from `lab_folder`) instead of parsing it again."""
        self.__dict__["lab"] = lab  # functools.cached_property's own slot
        return self

    @property
    def max_score(self) -> float:
        return sum(self.tests.values()) + sum(self.manual.values())

    def save(self) -> Path:
        from autograder.reports import write_text

        path = Path(self.work_dir) / PLAN_NAME
        write_text(path, json.dumps(dataclasses.asdict(self), indent=1))
        return path


def load_plan(work_dir: Path) -> BatchPlan:
    path = Path(work_dir) / PLAN_NAME
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no batch plan here; run prepare_batch first") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not a readable plan ({exc})") from None
    names = {f.name for f in dataclasses.fields(BatchPlan)}
    return BatchPlan(**{k: v for k, v in raw.items() if k in names})


def zero_outcome(plan: BatchPlan, student: str, status: str, reason: str, notes: list[str], flags: list[str],
                 started: float) -> Outcome:
    """A student's outcome when nothing of theirs was scored: every test not run, for `reason`."""
    checks = [Check(gid, NOT_RUN, 0.0, mp, reason[:200]) for gid, mp in plan.tests.items()]
    return Outcome(student, checks, notes=[*notes, reason] if reason else list(notes),
                   status=FLAGGED if flags and status == COMPLETED else status,
                   data={"flags": flags, "seconds": round(time.monotonic() - started, 3)})
