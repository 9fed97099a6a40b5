"""Grade ONE student in a course folder of their own; run as a subprocess by `autograder grade`.

Isolation is the point: each student gets a fresh process, a fresh kernel, their own copy of the gradebook and
resource limits, so a runaway, a crash or a broken notebook cannot touch anyone else's grade.

    python -m autograder.grade_worker COURSE_DIR LAB_FOLDER STUDENT RESULT_JSON
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from autograder.labs import load_lab
from autograder.nbgrader_course import course_config, quiet_nbgrader
from autograder.notebooks import TIMEOUT_ERRORS, cell_error


def _cell_errors(notebook: Path) -> tuple[dict[str, str], list[str]]:
    """From the autograded notebook: grade_id -> 'Ename: message' for graded cells that raised, and a label for
    every cell (graded or not) that ran past its time limit."""
    import nbformat

    errors: dict[str, str] = {}
    timeouts: list[str] = []
    if not notebook.is_file():
        return errors, timeouts
    nb = nbformat.read(notebook, as_version=4)
    for index, cell in enumerate(nb.cells, start=1):
        if cell.cell_type != "code":
            continue
        error = cell_error(cell)
        if error is None:
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        timed_out = error[0] in TIMEOUT_ERRORS
        if timed_out:
            timeouts.append(f"cell {index}" + (f" ({meta['grade_id']})" if meta.get("grade_id") else ""))
        if meta.get("grade"):
            kind = "timeout" if timed_out else error[0]
            errors[meta["grade_id"]] = f"{kind}: {error[1]}".strip().rstrip(":")[:200]
    return errors, timeouts


_EXCEPTION_LINE = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Timeout\w*)): (.*)$")


def _root_cause(log: str) -> str:
    """The first exception in nbgrader's log that is not its own wrapper, as one line."""
    for line in log.splitlines():
        match = _EXCEPTION_LINE.match(line)
        if match and not match.group(1).endswith("NbGraderException"):
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(3)}"[:300]
    return "see nbgrader.log in the student's work folder"


def grade_one(course: Path, lab_folder: Path, student: str) -> dict[str, Any]:
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    lab = load_lab(lab_folder)
    config = course_config(course, lab)
    with quiet_nbgrader():
        api = NbGraderAPI(config=config)
        outcome = api.autograde(lab.name, student, force=True, create=True)
    log = (outcome.get("log") or "") + (outcome.get("error") or "")
    (course / "nbgrader.log").write_text(log)
    if not outcome.get("success"):
        cause = _root_cause(log)
        if "DeadKernelError" in cause:
            # nbgrader abandons the whole notebook when its kernel dies, so nothing after it can be scored.
            return {"status": "kernel died", "reason": "the kernel died while running the notebook (os._exit, a "
                    "crash in native code, or memory); nbgrader scores nothing once that happens"}
        return {"status": "error", "reason": f"nbgrader could not grade it: {cause}"}
    with quiet_nbgrader():
        api.generate_feedback(lab.name, student, force=True)
    tests: dict[str, float] = {}
    max_points: dict[str, float] = {}
    with Gradebook(config.CourseDirectory.db_url, "mlinfra-workbook") as gb:
        nb_name = Path(lab.notebook).stem
        submission = gb.find_submission_notebook(nb_name, lab.name, student)
        for grade in submission.grades:
            if grade.max_score and grade.cell_type == "code":
                tests[grade.name] = float(grade.score)
                max_points[grade.name] = float(grade.max_score)
    autograded = course / "autograded" / student / lab.name / lab.notebook
    errors, timeouts = _cell_errors(autograded)
    feedback = course / "feedback" / student / lab.name / f"{Path(lab.notebook).stem}.html"
    return {
        "status": "graded",
        "reason": "",
        "tests": tests,
        "max_points": max_points,
        "errors": errors,
        "timeouts": timeouts,
        "feedback": str(feedback) if feedback.is_file() else None,
    }


def limit_memory(memory_mb: int) -> None:
    """Cap this process and the kernel it starts (children inherit rlimits). RLIMIT_DATA caps heap and anonymous
    memory but not the multi-GB shared-library mappings torch makes at import, which RLIMIT_AS would refuse."""
    import resource

    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def main(argv: list[str]) -> int:
    course, lab_folder, student, result_path = Path(argv[0]), Path(argv[1]), argv[2], Path(argv[3])
    limit_memory(load_lab(lab_folder).memory_mb)
    try:
        result = grade_one(course, lab_folder, student)
    except Exception as exc:  # noqa: BLE001 - recorded as this student's reason; the batch goes on
        result = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    result_path.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
