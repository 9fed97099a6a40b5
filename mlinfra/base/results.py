"""The result vocabulary every command speaks: a `Check` is one thing tested, an `Outcome` is what one subject got,
a `Finding` is one problem found in a file (a learner's or the course's).

Every verb returns an Outcome (or a batch of them); the runner turns it into an exit code and `--json`. The grade
worker sends the same type across its process boundary (`Outcome.to_dict` / `Outcome.from_dict`). A checker that
reads files (the Dockerfile and DAG checkers, quiz lint, the tamper scan) lists Findings; where its published JSON
names their fields otherwise (a DAG finding's `check`, a quiz finding's `problem`), the verb converts at its edge.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# A check's status: each value means exactly one thing.
PASSED = "passed"      # ran and met its requirement: full points
FAILED = "failed"      # ran and did not meet it (an assertion, a wrong answer, a probe that got the wrong reply)
ERROR = "error"        # the learner's code raised something other than an assertion
TIMEOUT = "timeout"    # interrupted at its own time limit: no points, the rest still ran
NOT_RUN = "not run"    # never executed: something before it stopped the run
SKIPPED = "skipped"    # deliberately not run (a tool or engine is missing): the message says which and why
INFO = "info"          # a figure reported for information; never scored
PENDING = "pending"    # waits for a person (a manually graded cell): no points until they are entered
CHECK_STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, NOT_RUN, SKIPPED, INFO, PENDING)

# An outcome's status: how far checking the subject got.
COMPLETED = "completed"      # every check ran to a result (some may have failed or timed out)
FLAGGED = "flagged"          # completed, score kept, but signs of tampering need a person's review (see notes)
MISSING = "missing"          # nothing to check: no submission, no notebook
UNREADABLE = "unreadable"    # the subject could not be read (corrupt notebook, bad archive)
STOPPED = "stopped"          # killed at the overall time limit: scores nothing
KERNEL_DIED = "kernel died"  # the process running the learner's code died (os._exit, a native crash, memory)
GRADER_ERROR = "grader error"  # the grading machinery failed, not the learner's code (the notes say where)
NEEDS_MANUAL = "needs manual grading"  # completed, but cells that need a person have points pending
# The learner's code reached a limit of its sandbox and was stopped there (scores what ran before, as kernel died):
MEMORY_LIMIT = "memory limit"    # the sandbox's memory as a whole
PROCESS_LIMIT = "process limit"  # the sandbox's tasks (processes and threads)
DISK_LIMIT = "disk limit"        # the sandbox's writable folders are full
OUTCOME_STATUSES = (COMPLETED, FLAGGED, MISSING, UNREADABLE, STOPPED, KERNEL_DIED, MEMORY_LIMIT, PROCESS_LIMIT,
                    DISK_LIMIT, GRADER_ERROR, NEEDS_MANUAL)

# A finding's severity (hadolint's four levels, which the Dockerfile checker publishes): the failing ones are
# defined here once; the rest are advice, shown and never a failure.
SEVERITIES = ("error", "warning", "info", "style")
FAILING_SEVERITIES = ("error", "warning")


@dataclass
class Check:
    name: str
    status: str
    points: float = 0.0
    max_points: float = 0.0
    message: str = ""
    where: str = ""  # "cell 4", "app.py:12", "Dockerfile:3", a URL: where a person looks to fix it

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"check {self.name!r}: unknown status {self.status!r} (one of {CHECK_STATUSES})")

    @property
    def passed(self) -> bool:
        return self.status in (PASSED, INFO)


@dataclass
class Finding:
    """One problem found in a file: what a checker of a learner's (or the course's) file reports, with the fix."""

    rule: str  # a stable id a notebook, test or CI matches: root-user, DL3008, import-error, all-none-of-the-above
    message: str  # what is wrong, in words a learner reads
    where: str = ""  # Check's convention: "Dockerfile:3", "dag.py" (the whole file), "cell 4 line 2"; see at()
    fix: str = ""  # the next step
    severity: str = "error"  # one of SEVERITIES
    about: str = ""  # the named thing in the file it is about, if any: a DAG's task id, a quiz question's id

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"finding {self.rule!r}: unknown severity {self.severity!r} (one of {SEVERITIES})")

    @property
    def failing(self) -> bool:
        return self.severity in FAILING_SEVERITIES

    @property
    def file(self) -> str:
        return split_where(self.where)[0]

    @property
    def line(self) -> int | None:
        return split_where(self.where)[1]

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def at(file: str, line: int | None = None) -> str:
    """A `where` for a line of a file ("app.py:12"), or for the whole file when there is no line."""
    return file if line is None else f"{file}:{line}"


def split_where(where: str) -> tuple[str, int | None]:
    """at() read back: "app.py:12" -> ("app.py", 12); "Dockerfile" and "cell 4 line 2" have no line (None)."""
    head, colon, tail = where.rpartition(":")
    if colon and head and tail.isdigit():
        return head, int(tail)
    return where, None


@dataclass
class Outcome:
    subject: str  # what was checked: a notebook, a student, a service URL, a quiz bank
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = COMPLETED
    data: dict[str, Any] = field(default_factory=dict)  # the verb's own figures, for --json (latencies, ...)
    parts: list[Outcome] = field(default_factory=list)  # a batch: one outcome per student, per bank, ...

    def __post_init__(self) -> None:
        if self.status not in OUTCOME_STATUSES:
            raise ValueError(f"outcome {self.subject!r}: unknown status {self.status!r} (one of {OUTCOME_STATUSES})")

    @property
    def score(self) -> float:
        return sum(c.points for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.checks)

    @property
    def passed(self) -> bool:
        """Every check passed (and there was something to check); a batch passes when every part does."""
        if self.status not in (COMPLETED, FLAGGED, NEEDS_MANUAL):
            return False
        if self.parts:
            return all(p.passed for p in self.parts) and all(c.passed for c in self.checks)
        return bool(self.checks) and all(c.passed for c in self.checks)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["score"] = self.score
        out["max_score"] = self.max_score
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Outcome:
        """Read an outcome back (the grade worker's reply). Unknown keys are ignored; bad shapes raise ValueError."""
        if not isinstance(raw, dict) or not isinstance(raw.get("subject"), str):
            raise ValueError("not an outcome: expected an object with a 'subject' string")  # noqa: TRY004 - bad data
        checks = [Check(**{k: v for k, v in c.items() if k in _CHECK_FIELDS}) for c in raw.get("checks", [])]
        return cls(
            subject=raw["subject"],
            checks=checks,
            notes=[str(n) for n in raw.get("notes", [])],
            status=raw.get("status", COMPLETED),
            data=dict(raw.get("data", {})),
            parts=[cls.from_dict(p) for p in raw.get("parts", [])],
        )


class ReportOutcome(Outcome):
    """An Outcome whose JSON carries its `data` keys at the top level instead of under "data".

    For a verb whose JSON readers (lab notebooks, scripts) rely on its earlier keys (`findings`, `criteria`, ...):
    it speaks the common vocabulary (subject, checks, status, score, passed) and keeps those keys too.
    """

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        data = out.pop("data")
        for key, value in data.items():
            out.setdefault(key, value)
        return out


_CHECK_FIELDS = {f.name for f in dataclasses.fields(Check)}
