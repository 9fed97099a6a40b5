"""Grade ONE student: nbgrader autograde in a course folder of the student's own, the kernel in its sandbox.

`grade_one(plan, student)` is the trusted side: it runs outside the sandbox, reads scores only from nbgrader's
gradebook and the notebook nbgrader wrote after the kernel was killed (what the executor observed over the
Jupyter protocol), never from a file in the kernel's work folder. The local engine runs it in long-lived worker
processes (`pool.py`); the Airflow engine runs it in its tasks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autograder.grading.manual import answers_of, is_manual
from autograder.grading.plan import zero_outcome
from autograder.grading.run import StudentRun, WorkerState, kill_leftovers, new_spec
from mlinfra.base.results import (
    COMPLETED,
    ERROR,
    FAILED,
    FLAGGED,
    GRADER_ERROR,
    KERNEL_DIED,
    MISSING,
    NOT_RUN,
    PASSED,
    SKIPPED,
    STOPPED,
    TIMEOUT,
    UNREADABLE,
    Check,
    Outcome,
)

if TYPE_CHECKING:
    from autograder.grading.plan import BatchPlan
    from autograder.labs import Lab

COURSE_ID = "mlinfra-workbook"


def read_bounded(path: Path, limit: int) -> bytes:
    """At most `limit` bytes of a file a sandbox could write, never through a symbolic link (b'' when missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, limit)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Any:
    """These environment variables set for the block, as they were after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _read_autograded(autograded: Path) -> Any:
    """The notebook nbgrader wrote after execution (read once for the checks and the timeouts), or None."""
    import nbformat

    return nbformat.read(autograded, as_version=4) if autograded.is_file() else None


def _cell_results(nb: Any, scores: dict[str, tuple[float, float]], lab: Lab,
                  leaks: list[str]) -> dict[str, Check]:
    """One check per graded code cell, from the notebook nbgrader wrote after execution. A message that quotes
    the cell's hidden tests is replaced, and the cell's id added to `leaks` (redact.py)."""
    from autograder.grading.redact import HiddenText
    from autograder.notebooks import cell_outcome

    checks: dict[str, Check] = {}
    if nb is None:
        return checks
    # the graded test cells' text (a manually graded code answer is the learner's own, not a hidden test)
    hidden = HiddenText.of_notebook([c.source for c in nb.cells if c.cell_type == "code"
                                     and c.get("metadata", {}).get("nbgrader", {}).get("grade")
                                     and not is_manual(c.get("metadata", {}).get("nbgrader", {}))])
    for index, cell in enumerate(nb.cells, start=1):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("grade_id") not in scores:
            continue
        gid = meta["grade_id"]
        score, max_points = scores[gid]
        status, message = cell_outcome(cell, lab.cell_timeout)
        message = message[:300]
        where = f"cell {index}"
        if status == PASSED and score < max_points:  # nbgrader gave it less, though it raised nothing
            stderr = any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in cell.outputs)
            status = FAILED
            message = ("wrote to stderr: nbgrader gives no points to a test cell that writes to stderr" if stderr
                       else "no points")
        message, leaked = hidden.clean(message)
        if leaked:
            leaks.append(gid)
        checks[gid] = Check(gid, status, score, max_points, message, where)
    return checks


def _timeouts(nb: Any) -> list[str]:
    from autograder.notebooks import TIMEOUT_ERRORS, cell_error

    if nb is None:
        return []
    out = []
    for index, cell in enumerate(nb.cells, start=1):
        error = cell_error(cell) if cell.cell_type == "code" else None
        if error and error[0] in TIMEOUT_ERRORS:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            out.append(f"cell {index}" + (f" ({gid})" if gid else ""))
    return out


def _root_cause(log: str) -> str:
    import re

    pattern = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Timeout\w*)): (.*)$")
    for line in log.splitlines():
        match = pattern.match(line)
        if match and not match.group(1).endswith("NbGraderException"):
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(3)}"[:300]
    return "see nbgrader.log in the student's work folder (--keep-work keeps it)"


def run_deploy_checks(lab: Lab, files: Path, work: Path) -> tuple[list[Check], list[str]]:
    """The lab's `deploy_checks` (module:function), on the trusted side, each given a copy of the student's files."""
    import importlib

    checks: list[Check] = []
    notes: list[str] = []
    for ref in getattr(lab, "deploy_checks", ()) or ():
        module_name, _, func_name = ref.partition(":")
        copy = work / "deploy" / func_name
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(files, copy, symlinks=True)
        try:
            func = getattr(importlib.import_module(module_name), func_name)
            result = list(func(lab, copy, work / "deploy"))
            bad = [c for c in result if not isinstance(c, Check)]
            if bad:
                raise TypeError(f"returned {type(bad[0]).__name__}, not Check")
            checks += result
        except Exception as exc:  # noqa: BLE001 - a broken check is the course's fault: recorded, never fatal
            checks.append(Check(func_name, SKIPPED, 0.0, 0.0, f"the deploy check {ref} failed to run: "
                                f"{type(exc).__name__}: {str(exc)[:150]}"))
            notes.append(f"deploy check {ref} could not run ({type(exc).__name__}: {str(exc)[:120]})")
            (work / "deploy" / f"{func_name}.traceback").write_text(traceback.format_exc())
    return checks, notes


_LIMIT_OF = {"memory limit": lambda spec: f"{spec.limits.memory_mb} MB",
             "process limit": lambda spec: f"{spec.limits.processes} tasks",
             "disk limit": lambda spec: f"{spec.limits.disk_mb} MB"}


def _limits_reached(spec: Any) -> list[str]:
    """The sandbox limits the student's code reached (its sandbox is torn down by now; `teardown` recorded them)."""
    from autograder.grading import sandbox

    sandbox.teardown(spec)  # normally done already by the kernel's reaper; records what was hit either way
    return [limit for limit in ("memory limit", "process limit", "disk limit") if limit in spec.hit]


def _unfinished(plan: BatchPlan, student: str, log: str, limits: list[str], notes: list[str], flags: list[str],
                started: float) -> Outcome:
    """The outcome of a notebook nbgrader could not finish: nothing scores; the status says why."""
    cause = _root_cause(log)
    if "DeadKernelError" in cause or "Kernel died" in log or "kernel died" in log.lower():
        status = limits[0] if limits else KERNEL_DIED
        return zero_outcome(plan, student, status, "the kernel died while running the notebook (os._exit, a crash "
                            "in native code, or a limit); nbgrader scores nothing once that happens", notes, flags,
                            started)
    if "CellTimeoutError" in cause:
        # the student's cell ran past its limit and did not answer the interrupt (busy in native code, or
        # flooding the grader with output): the student's outcome, not the machinery's
        return zero_outcome(plan, student, STOPPED, f"a cell ran past its {plan.lab.cell_timeout} s and could not "
                            "be interrupted; nbgrader scores nothing once that happens", notes, flags, started)
    return zero_outcome(plan, student, GRADER_ERROR, f"nbgrader could not grade it: {cause}", notes, flags, started)


def _gradebook_scores(config: Any, lab: Lab, student: str) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max score) of each graded code cell, from the student's own gradebook."""
    from nbgrader.api import Gradebook

    from autograder.nbgrader_course import fast_bookkeeping

    scores: dict[str, tuple[float, float]] = {}
    with fast_bookkeeping(), Gradebook(config.CourseDirectory.db_url, COURSE_ID) as gb:
        submission = gb.find_submission_notebook(Path(lab.notebook).stem, lab.name, student)
        for grade in submission.grades:
            if grade.cell_type == "code" and grade.max_score:
                scores[grade.name] = (float(grade.score), float(grade.max_score))
    return scores


def _plan_checks(plan: BatchPlan, by_id: dict[str, Check], scores: dict[str, tuple[float, float]]) -> list[Check]:
    """One check per test of the plan, in its order: the cell's own, else the gradebook's score, else not run."""
    checks = []
    for gid, max_points in plan.tests.items():
        if gid in by_id:
            checks.append(by_id[gid])
        elif gid in scores:
            score, mp = scores[gid]
            checks.append(Check(gid, PASSED if score >= mp else FAILED, score, mp))
        else:
            checks.append(Check(gid, NOT_RUN, 0.0, max_points, "not in the graded notebook"))
    return checks


def grade_one(plan: BatchPlan, student: str, state: WorkerState | None = None) -> Outcome:
    """One student, graded in their own course folder with a fresh sandboxed kernel. Never raises for the
    student's faults (a grader fault becomes status 'grader error' with the reason). `state`: the grading
    process's own (its zygote, its kernel started ahead); without one, a fresh state that keeps nothing."""
    import warnings

    started = time.monotonic()
    cpu = time.process_time()
    try:
        with warnings.catch_warnings():
            # nbgrader's gradebook warns about its own SQLAlchemy sessions on every submission
            warnings.simplefilter("ignore")
            outcome = _grade_one(plan, student, state or WorkerState(), started)
            # this process's CPU for the student (the kernel's is its own): the grader's part of the fixed cost
            outcome.data["cpu"] = round(time.process_time() - cpu, 3)
            return outcome
    except Exception as exc:  # noqa: BLE001 - recorded as this student's reason; the batch goes on
        detail = traceback.format_exc(limit=3)
        sub = plan.submissions.get(student, {})
        outcome = zero_outcome(plan, student, GRADER_ERROR,
                               f"the grader failed: {type(exc).__name__}: {str(exc)[:200]}",
                               list(sub.get("notes", [])), list(sub.get("flags", [])), started)
        outcome.data["traceback"] = detail
        return outcome


def _grade_one(plan: BatchPlan, student: str, state: WorkerState, started: float) -> Outcome:
    from nbgrader.apps import NbGraderAPI

    from autograder.errors import UsageError
    from autograder.grading import execute, kernels, sandbox, tamper
    from autograder.nbgrader_course import course_config, fast_bookkeeping, quiet_nbgrader
    from autograder.notebooks import read_notebook
    from autograder.submissions import sanitize_notebook

    lab = plan.lab
    sub = plan.submissions[student]
    notes: list[str] = list(sub.get("notes", []))
    flags: list[str] = list(sub.get("flags", []))
    if not sub.get("files"):
        if sub.get("unreadable"):
            return zero_outcome(plan, student, UNREADABLE, sub["unreadable"], notes, flags, started)
        return zero_outcome(plan, student, MISSING, "nothing was handed in", notes, flags, started)
    files = Path(sub["files"])
    nb_path = files / lab.notebook
    if not nb_path.is_file() or nb_path.is_symlink():
        return zero_outcome(plan, student, MISSING, f"no {lab.notebook} in the submission", notes, flags, started)
    try:
        nb = read_notebook(nb_path)
    except UsageError as exc:
        return zero_outcome(plan, student, UNREADABLE, str(exc).replace(str(files) + "/", ""), notes, flags, started)
    findings = tamper.scan_submission(nb, files, lab.editable)
    flags += [f"tampering? {f}" for f in findings]

    work = Path(plan.work_dir)
    course = work / "courses" / student
    if course.exists():
        shutil.rmtree(course)
    shutil.copytree(work / "template", course)
    target = course / "submitted" / student / lab.name
    shutil.copytree(files, target, symlinks=True)
    notes += sanitize_notebook(nb)
    import nbformat

    nbformat.write(nb, target / lab.notebook)

    warm = kernels.take_warm(state) if state.prestart else None
    run = StudentRun(warm[1], state, warm_km=warm[0]) if warm is not None else StudentRun(new_spec(plan, lab), state)
    spec = run.spec
    box, conn = spec.work.parent, spec.conn
    if state.prestart:
        kernels.prestart(state, new_spec(plan, lab))  # the next student's kernel boots while this one is graded
    first_kernel = len(state.launched)
    warm_id = str(getattr(warm[0], "kernel_id", "")) if warm is not None else None
    config = course_config(course, lab)
    config.Autograde.autograde_preprocessors = execute.autograde_preprocessors(run)
    # nbconvert validates the whole notebook after each of autograde's twelve preprocessors; once after the last
    # of each pass is enough (an invalid notebook still fails the same way, only later)
    config.Exporter.optimistic_validation = True
    setup_seconds = time.monotonic() - started
    t_exec = time.monotonic()
    try:
        with quiet_nbgrader(), fast_bookkeeping():
            api = NbGraderAPI(config=config)
            result = api.autograde(lab.name, student, force=True, create=True)
    finally:
        t_reap = time.monotonic()
        late = execute.join_reapers(run)  # the kernel was killed at the notebook's end; its reaping overlapped
        run.timing["kernel reaped"] = round(time.monotonic() - t_reap, 4)
        mine = [e for e in state.launched if e[0] == warm_id] + state.launched[first_kernel:]
        killed = kill_leftovers(mine)
        if box.is_dir():  # a log only, never read as a result; the kernel may have swapped it for a link
            (box / "kernel.log").write_bytes(read_bounded(conn / "kernel.log", 1_000_000))
        sandbox.release_connection(conn)
    exec_seconds = time.monotonic() - t_exec
    kernel_ids = [kid for kid, _pid, _w in mine]
    if late:
        notes.append(f"the kernel's clean-up did not finish in time ({', '.join(late)}); its processes were killed")
    if killed:
        notes.append(f"{len(killed)} process(es) of the submission were still alive after grading and were killed")
    log = (result.get("log") or "") + (result.get("error") or "")
    (course / "nbgrader.log").write_text(log)
    data: dict[str, Any] = {"kernels": kernel_ids, "warm": warm is not None, "course": str(course),
                            "sandbox": plan.sandbox, "forked": bool(kernel_ids) and kernel_ids[-1] in state.forked}
    if state.zygote_failed:
        data["zygote failed"] = state.zygote_failed[-1]
    if plan.manual:  # the answers a person grades, from the trusted side's copy (finish_batch writes them out)
        data["answers"] = answers_of(nb, plan.manual)
    notes += run.output_log
    limits = _limits_reached(spec)
    notes += [f"the notebook reached the sandbox's {limit} ({_LIMIT_OF[limit](spec)})" for limit in limits]
    if not result.get("success"):
        outcome = _unfinished(plan, student, log, limits, notes, flags, started)
        outcome.data.update(data)
        return outcome

    scores = _gradebook_scores(config, lab, student)
    autograded = course / "autograded" / student / lab.name / lab.notebook
    graded_nb = _read_autograded(autograded)
    leaks: list[str] = []
    by_id = _cell_results(graded_nb, scores, lab, leaks)
    if leaks:
        flags.append(f"tampering? the kernel's messages for {', '.join(leaks)} quoted hidden tests or carried "
                     "encoded data (removed)")
    checks = _plan_checks(plan, by_id, scores)
    timeouts = _timeouts(graded_nb)
    if timeouts:
        notes.append(f"timeout: {', '.join(timeouts)} ran past {lab.cell_timeout} s and were interrupted")
    notes += [f"{c.name}: {c.message}" for c in checks if c.status in (ERROR, FAILED, TIMEOUT) and c.message
              and c.status != FAILED]
    for label, restored in run.guard_log:
        flags.append(f"tampering? before {label} the grader had to restore: {', '.join(restored)}")
    if run.seal_log:
        # The kernel said a cell ran cleanly while its sealed hidden checks never ran: its other replies cannot be
        # believed either, so nothing it reported scores.
        lies = "; ".join(f"{label}: {why}" for label, why in run.seal_log)
        flags.append(f"tampering? the kernel's results cannot be trusted ({lies[:300]}): scored 0 for review")
        checks = [Check(c.name, FAILED, 0.0, c.max_points, "not scored: the kernel's replies were not the results "
                        "of running the tests", c.where) for c in checks]
    # --keep-work: lab06's check keeps each student's image for a look
    with _environ({"AUTOGRADER_KEEP_WORK": "1"} if plan.keep_work else {}):
        deploy, deploy_notes = run_deploy_checks(lab, files, box)
    checks += deploy
    notes += deploy_notes
    data.update({"flags": flags, "autograded": str(autograded),
                 "seconds": round(time.monotonic() - started, 3),
                 "timing": {"stage": round(setup_seconds, 3), **run.timing,
                            "nbgrader other": round(exec_seconds - sum(run.timing.values()), 3),
                            "after": round(time.monotonic() - t_exec - exec_seconds, 3)}})
    return Outcome(student, checks, notes=notes, status=FLAGGED if flags else COMPLETED, data=data)
