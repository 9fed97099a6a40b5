"""The local engine's workers: long-lived processes, one per core, that import nbgrader and the grading code once.

The parent forks them after importing nbgrader itself, so a worker is ready at once; each grades one student at
a time (a fresh sandboxed kernel per student, killed after) and sends the Outcome back over a pipe. The kernel
never sees that pipe: it is not inherited (subprocesses close every other descriptor), and the kernel lives in
its own pid and mount namespaces, so it can neither signal the worker nor open its descriptors through /proc.
A worker that hangs past the student's deadline or dies is killed (its sandboxes die with it:
--die-with-parent) and replaced; that student is recorded with the reason, and the batch goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from typing import Any

from autograder.grading.plan import BatchPlan, zero_outcome
from autograder.grading.run import Options
from mlinfra.base.results import GRADER_ERROR, STOPPED, Outcome


def _warm_imports() -> None:
    import nbclient  # noqa: F401 - imported to be loaded
    import nbformat  # noqa: F401 - imported to be loaded
    from nbgrader.api import Gradebook  # noqa: F401 - imported to be loaded
    from nbgrader.apps import NbGraderAPI  # noqa: F401 - imported to be loaded
    from nbgrader.converters.autograde import Autograde  # noqa: F401 - imported to be loaded

    from autograder.grading import execute, worker  # noqa: F401 - imported to be loaded


def _worker_main(conn: Connection, plan: BatchPlan, options: Options, ready: Any = None,
                 others: tuple[Any, ...] = ()) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for z in others:  # the other workers' zygotes: each must end with its own worker
        z.hand_over()
    os.setpgrp()  # the parent kills this worker's whole group on a deadline
    from autograder.grading import kernels, worker
    from autograder.grading.run import WorkerState

    # `plan` is the parent's (this process is forked), its lab parsed already. This worker keeps one kernel
    # started ahead (killed with the worker at the end).
    state = WorkerState(options, prestart=True)
    if plan.sandbox == "bwrap":  # its kernels are forked already imported (zygote.py)
        kernels.start_zygote(state, ready, () if ready else preimports(plan.lab))
    try:
        while True:
            try:
                student = conn.recv()
            except EOFError:
                return
            if student is None:
                while (warm := kernels.take_warm(state)) is not None:  # the kernel started ahead that nobody needed
                    kernels.discard(warm[0])
                    shutil.rmtree(warm[1].conn, ignore_errors=True)
                return
            outcome = worker.grade_one(plan, student, state)
            conn.send(outcome.to_dict())
    finally:
        state.stop_zygote()


class _Worker:
    def __init__(self, ctx: Any, plan: BatchPlan, options: Options, ready: Any = None,
                 others: tuple[Any, ...] = ()) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, plan, options, ready, others), daemon=True)
        self.proc.start()
        child.close()
        if ready is not None:
            ready.hand_over()
        self.student: str | None = None
        self.deadline = 0.0
        self.started = 0.0

    def give(self, student: str, seconds: float) -> None:
        self.student = student
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.conn.send(student)

    def kill(self) -> None:
        from autograder.grading.sandbox import kill_tree

        kill_tree(self.proc.pid, timeout=10)
        self.proc.join(timeout=5)
        self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.kill()


def preimports(lab: Any) -> tuple[str, ...]:
    """What the zygotes of a batch of this lab import ahead (zygote.preimports_for its reference notebook and its
    lab.yaml's warm_imports)."""
    from autograder.grading import zygote

    return zygote.preimports_for(lab.notebook_path, tuple(getattr(lab, "warm_imports", ())))


def start_zygotes(workers: int, lab: Any) -> list[Any]:
    """One zygote per worker (zygote.py), started now so their imports overlap building the batch."""
    from autograder.grading import kernels

    return [kernels.new_zygote(preimports(lab)) for _ in range(workers)]


def grade_all(plan: BatchPlan, students: Iterable[str], *, workers: int, deadline_s: float,
              on_done: Callable[[Outcome], None] | None = None, zygotes: list[Any] | None = None,
              options: Options | None = None) -> list[Outcome]:
    """Grade `students` with `workers` forked workers; `deadline_s` bounds one student's wall time. `zygotes`,
    started ahead for a bubblewrap batch, go one to a worker (a worker without one starts its own)."""
    _warm_imports()
    options = options or Options()
    plan.lab  # noqa: B018 - parsed once here, before the workers are forked (each inherits it)
    spare = list(zygotes or [])
    ctx = multiprocessing.get_context("fork")
    queue = list(students)
    queue.reverse()
    pool: list[_Worker] = []
    outcomes: list[Outcome] = []

    def finished(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)

    def stopped(w: _Worker, status: str, reason: str) -> Outcome:
        assert w.student is not None
        sub = plan.submissions.get(w.student, {})
        return zero_outcome(plan, w.student, status, reason, list(sub.get("notes", [])),
                            list(sub.get("flags", [])), w.started)

    try:
        for _ in range(max(1, min(workers, len(queue)))):
            ready = spare.pop() if spare else None
            pool.append(_Worker(ctx, plan, options, ready, tuple(spare)))
        for w in pool:
            if queue:
                w.give(queue.pop(), deadline_s)
        while any(w.student for w in pool):
            busy = [w for w in pool if w.student]
            timeout = max(0.05, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for w in list(busy):
                outcome = None
                if w.conn in ready:
                    try:
                        outcome = Outcome.from_dict(w.conn.recv())
                    except (EOFError, OSError, ValueError):
                        outcome = stopped(w, GRADER_ERROR, f"the grading process died (exit {w.proc.exitcode}); "
                                          "regrade this student alone to see why")
                elif time.monotonic() > w.deadline:
                    outcome = stopped(w, STOPPED, f"grading ran past {deadline_s:.0f} s and was stopped")
                if outcome is None:
                    continue
                healthy = w.conn in ready and w.proc.is_alive() and outcome.status != GRADER_ERROR
                w.student = None
                finished(outcome)
                if not healthy:
                    w.kill()
                    pool[pool.index(w)] = w = _Worker(ctx, plan, options, None, tuple(spare))
                if queue:
                    w.give(queue.pop(), deadline_s)
    finally:
        for w in pool:
            if w.student:
                w.kill()
            else:
                w.stop()
        for z in zygotes or []:
            if z in spare:
                z.close()
            else:
                z.reap()  # its worker has ended: it ended with it
    return outcomes
