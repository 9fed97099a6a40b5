"""What one grading process keeps across students (`WorkerState`) and what one student's run gathers
(`StudentRun`): created by the worker and passed down the grading path as arguments, so nothing of a student's run
travels sideways in module globals.

    state = WorkerState(options)            # one per grading process (a pool worker, an Airflow task, a test)
    run = StudentRun(spec, state)           # one per student: worker.grade_one makes it
    execute.autograde_preprocessors(run)    # the executor, and through it the kernel manager, get `run`

Light: imports nothing heavy (a kernel manager lives in kernels.py, imported only by grading workers).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autograder.grading.plan import BatchPlan
    from autograder.grading.sandbox import Spec
    from autograder.grading.zygote import Zygote
    from autograder.labs import Lab


@dataclass(frozen=True)
class Options:
    """How a batch is graded, beyond its plan; bench/bench_grading.py turns each off to measure what it costs."""

    fork_kernels: bool = True  # a bubblewrap batch's kernels are forked from the worker's zygote (zygote.py)
    seal_hidden_tests: bool = True  # graded cells are sealed (seals.py); off only to measure the seals' cost


# A kernel launched by this process: (kernel id, pid of its sandbox, work folder).
Launched = tuple[str, int, str]


@dataclass
class WorkerState:
    """One grading process's own: its zygote, the kernel it started ahead for the next student, and every kernel
    it launched (the end-of-student check kills what is left of them)."""

    options: Options = field(default_factory=Options)
    # Start the next student's kernel ahead while one is graded (the local engine's workers do; a caller that
    # grades one student and returns, as an Airflow task does, must not leave a kernel behind).
    prestart: bool = False
    zygote: Zygote | None = None  # bubblewrap kernels are forked from it when there is one
    zygote_failed: list[str] = field(default_factory=list)  # why the zygote was given up, if it was
    launched: list[Launched] = field(default_factory=list)
    forked: set[str] = field(default_factory=set)  # the ids of the launched kernels forked from the zygote
    # Kernels started ahead, each in a fresh sandbox no student has touched; each is taken ONCE
    # (`kernels.take_warm`), used for one student and killed, never handed to a second student.
    warm: list[tuple[Any, Spec]] = field(default_factory=list)

    def stop_zygote(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def give_up_zygote(self, why: str) -> None:
        """The zygote failed: kernels are started the usual way from now on in this process."""
        self.zygote_failed.append(why)
        self.stop_zygote()


@dataclass
class StudentRun:
    """One student's run: the sandbox the kernel gets, the kernel started ahead for it (if any), and what the
    executor observed. A non-empty guard or seal log flags the submission; the seal log scores it 0."""

    spec: Spec
    worker: WorkerState
    warm_km: Any = None  # a kernel started ahead in `spec` (kernels.take_warm), taken once by the executor
    # What the guard had to put back in the kernel: (cell label, [what]).
    guard_log: list[tuple[str, list[str]]] = field(default_factory=list)
    # Graded cells the kernel reported as run without error although their sealed hidden checks were never
    # recorded, or whose recorded values could not be read: (cell label, why). The kernel lied about its results.
    seal_log: list[tuple[str, str]] = field(default_factory=list)
    output_log: list[str] = field(default_factory=list)  # why outputs were dropped or the kernel stopped for them
    timing: dict[str, float] = field(default_factory=dict)  # where the time went inside nbgrader's execution (s)
    # Threads finishing the clean-up of killed kernels (reaping, the sandbox's teardown): joined
    # (`execute.join_reapers`) before the student is reported, so every kernel is dead and torn down by then.
    reapers: list[threading.Thread] = field(default_factory=list)

    @property
    def seal_hidden_tests(self) -> bool:
        return self.worker.options.seal_hidden_tests

    def add_time(self, key: str, seconds: float) -> None:
        self.timing[key] = round(self.timing.get(key, 0.0) + seconds, 4)


def kill_leftovers(entries: list[Launched]) -> list[int]:
    """Kill every process of these sandboxes that is still alive (normally none: the kernel is killed after its
    notebook, and the sandbox's pid namespace takes everything the kernel started with it)."""
    from autograder.grading.sandbox import kill_tree

    killed = []
    for _kid, pid, _work in entries:
        killed += kill_tree(pid, timeout=5)
    return killed


def new_spec(plan: BatchPlan, lab: Lab) -> Spec:
    """A student's sandbox: a fresh folder nobody has used; ipc socket paths must fit in 107 bytes (sun_path), so the
    connection folder gets a short name of its own under /tmp."""
    import uuid

    from autograder.grading import sandbox

    box = Path(plan.work_dir) / "sandboxes" / uuid.uuid4().hex[:12]
    # under the batch's own folder of connection folders, which the batch's end removes whatever happened
    conns = sandbox.connection_root(Path(plan.work_dir) / "sandboxes")
    conns.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = Path(tempfile.mkdtemp(prefix="", dir=conns))
    readonly, env = airflow_template_bind()
    # the sandbox's own passwd, group and hosts (bubblewrap): the host's would name its accounts and machines
    identity = sandbox.identity_files(box / "etc", box / "home") if plan.sandbox == "bwrap" else ()
    return sandbox.Spec(work=box / "home", conn=conn, kind=plan.sandbox, tmpfs_home=True, readonly=readonly, env=env,
                        moved=identity,
                        limits=sandbox.Limits(memory_mb=lab.memory_mb, cpu_seconds=lab.notebook_timeout,
                                              file_mb=plan.file_mb))


def airflow_template_bind() -> tuple[tuple[str, ...], dict[str, str]]:
    """The migrated empty Airflow database, read-only, for a kernel that runs `autograder dag --run` (Lab 1.1's
    notebook does): without it each kernel migrates a database of its own first, 5-10 s a student. Made on this
    side with no DAG loaded, so it holds nothing of anyone's; nothing when it was not made."""
    from mlinfra import airflow_home

    template = airflow_home.existing_template()
    if template is None:
        return (), {}
    return (str(template),), {airflow_home.TEMPLATE_ENV: str(template.parent)}
