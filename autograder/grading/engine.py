"""`autograder grade`: batch-grade a class with nbgrader, hidden tests restored, one isolated process a student.

Layout of OUT (default .grading/<lab>/): grades.csv, summary.json, feedback/<student>.html, and work/ (the
throwaway nbgrader course folders, kept for inspection).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import NOT_LAB_FILES, Lab
from autograder.nbgrader_course import course_config, ensure_venv_tools_on_path, quiet_nbgrader
from autograder.reports import write_json
from autograder.submissions import MANIFEST_NAME, Submission, collect, sanitize_notebook

# Room for nbgrader's own start-up and feedback on top of the notebook's time limit.
WORKER_OVERHEAD_S = 60


@dataclass
class StudentGrade:
    student: str
    status: str  # "graded", "missing", "unreadable", "timeout", "kernel died", "crashed", "error"
    score: float
    max_score: float
    tests: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    feedback: str | None = None
    seconds: float = 0.0


@dataclass
class GradeBatch:
    lab: str
    out_dir: str
    max_score: float
    tests: dict[str, float]  # grade_id -> max points
    students: list[StudentGrade] = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- one student


def _kill_tree(pid: int) -> None:
    """The worker and every kernel it started (kernels run in their own session, so a process-group kill
    would miss them)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def _prepare_course(template: Path, work: Path, lab: Lab, sub: Submission) -> tuple[Path, list[str]]:
    import nbformat

    course = work / sub.student
    if course.exists():
        shutil.rmtree(course)
    shutil.copytree(template, course)
    target = course / "submitted" / sub.student / lab.name
    assert sub.files is not None
    shutil.copytree(sub.files, target, ignore=shutil.ignore_patterns(MANIFEST_NAME, *NOT_LAB_FILES))
    nb_path = target / lab.notebook
    nb = nbformat.read(nb_path, as_version=4)
    notes = sanitize_notebook(nb)
    if notes:
        nbformat.write(nb, nb_path)
    return course, notes


def grade_student(lab: Lab, template: Path, work: Path, sub: Submission, tests: dict[str, float]) -> StudentGrade:
    from autograder.notebooks import read_notebook

    started = time.monotonic()
    zero = {gid: 0.0 for gid in tests}
    max_score = sum(tests.values())

    def failed(status: str, reason: str) -> StudentGrade:
        return StudentGrade(sub.student, status, 0.0, max_score, dict(zero), "; ".join([*sub.notes, reason]),
                            seconds=round(time.monotonic() - started, 2))

    if sub.files is None or not (sub.files / lab.notebook).is_file():
        return failed("missing", f"no {lab.notebook} in the submission")
    try:
        read_notebook(sub.files / lab.notebook)
    except UsageError as exc:
        return failed("unreadable", str(exc).replace(str(sub.files) + "/", ""))
    course, notes = _prepare_course(template, work, lab, sub)
    result_path = course / "result.json"
    cmd = [sys.executable, "-m", "autograder.grade_worker", str(course), str(lab.folder), sub.student,
           str(result_path)]
    with open(course / "worker.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=course, start_new_session=True)
        try:
            proc.wait(timeout=lab.notebook_timeout + WORKER_OVERHEAD_S)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            return failed("timeout", f"grading ran past {lab.notebook_timeout} s and was stopped")
        finally:
            _kill_tree(proc.pid)
    if not result_path.is_file():
        return failed("crashed", f"the grading process died (exit {proc.returncode}); see {course}/worker.log")
    result = json.loads(result_path.read_text())
    if result["status"] != "graded":
        return failed(result["status"], result["reason"])
    scores = {gid: float(result["tests"].get(gid, 0.0)) for gid in tests}
    reasons = [*sub.notes, *notes]
    timeouts = result.get("timeouts", [])
    if timeouts:
        reasons.append(f"timeout: {', '.join(timeouts)} ran past {lab.cell_timeout} s and were interrupted")
    reasons += [f"{gid}: {msg}" for gid, msg in result.get("errors", {}).items()]
    timed_out = bool(timeouts)
    return StudentGrade(
        sub.student, "timeout" if timed_out else "graded", sum(scores.values()), max_score, scores,
        "; ".join(reasons), result.get("feedback"), round(time.monotonic() - started, 2),
    )


# ---------------------------------------------------------------------------------------------- the batch


def _build_template(lab: Lab, template: Path) -> dict[str, float]:
    """A course folder with the lab's source and a gradebook that knows its graded cells (hidden tests
    included); every student's course folder starts as a copy of it."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    if template.exists():
        shutil.rmtree(template)
    shutil.copytree(lab.folder, template / "source" / lab.name, ignore=shutil.ignore_patterns(*NOT_LAB_FILES))
    config = course_config(template, lab)
    with quiet_nbgrader():
        outcome = NbGraderAPI(config=config).generate_assignment(lab.name, force=True, create=True)
    if not outcome.get("success"):
        raise UsageError(f"solutions/{lab.name} could not be generated by nbgrader; run `autograder release "
                         f"{lab.name}` to see why")
    with Gradebook(config.CourseDirectory.db_url, "mlinfra-workbook") as gb:
        notebook = gb.find_notebook(Path(lab.notebook).stem, lab.name)
        return {cell.name: float(cell.max_score) for cell in notebook.grade_cells if cell.cell_type == "code"}


def grade_class(lab: Lab, submissions_dir: Path, out_dir: Path, *, workers: int = 2,
                progress: bool = False) -> GradeBatch:
    ensure_venv_tools_on_path()
    started = time.monotonic()
    work = out_dir / "work"
    if work.exists():
        shutil.rmtree(work)  # regrading starts clean, so the same submissions get the same grades
    work.mkdir(parents=True)
    tests = _build_template(lab, work / "_template")
    submissions = collect(submissions_dir, lab, work / "_staging")
    batch = GradeBatch(lab.name, str(out_dir), sum(tests.values()), tests)
    if not submissions:
        return batch

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(submissions), desc=f"grading {lab.name}", unit="student", file=sys.stderr)

    def one(sub: Submission) -> StudentGrade:
        try:
            grade = grade_student(lab, work / "_template", work, sub, tests)
            if grade.status == "error":
                # nbgrader itself failed (kernel start-up, ZMQ, a lost output), not the student's code, which runs
                # with errors allowed: try once more before recording it.
                grade = grade_student(lab, work / "_template", work, sub, tests)
            return grade
        except Exception as exc:  # noqa: BLE001 - never let one student stop the batch
            return StudentGrade(sub.student, "error", 0.0, batch.max_score, {g: 0.0 for g in tests},
                                f"{type(exc).__name__}: {exc}")
        finally:
            if bar is not None:
                bar.update(1)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        batch.students = sorted(pool.map(one, submissions), key=lambda s: s.student)
    if bar is not None:
        bar.close()
    batch.seconds = round(time.monotonic() - started, 2)
    write_outputs(batch, out_dir)
    return batch


def write_outputs(batch: GradeBatch, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    feedback_dir = out_dir / "feedback"
    feedback_dir.mkdir(exist_ok=True)
    for student in batch.students:
        if student.feedback and Path(student.feedback).is_file():
            dest = feedback_dir / f"{student.student}.html"
            shutil.copyfile(student.feedback, dest)
            student.feedback = str(dest)
    with open(out_dir / "grades.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "status", "score", "max_score", *batch.tests, "reason"])
        for s in batch.students:
            writer.writerow([s.student, s.status, f"{s.score:g}", f"{s.max_score:g}",
                             *(f"{s.tests.get(g, 0.0):g}" for g in batch.tests), s.reason])
    scores = [s.score for s in batch.students]
    summary = {
        "lab": batch.lab,
        "students": len(batch.students),
        "max_score": batch.max_score,
        "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
        "statuses": {st: sum(1 for s in batch.students if s.status == st) for st in
                     sorted({s.status for s in batch.students})},
        "tests": {gid: {"max_points": mp,
                        "full_marks": sum(1 for s in batch.students if s.tests.get(gid, 0) >= mp)}
                  for gid, mp in batch.tests.items()},
        "seconds": batch.seconds,
        "results": batch.students,
    }
    write_json(summary, out_dir / "summary.json")
