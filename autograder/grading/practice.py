"""A practice class for an instructor (`make practice-class`): the course's known-bad samples as a class of learners,
a course file with a due time, a late submission and an extension, and a small plain nbgrader course with a
manually graded answer, so every step of docs/instructor-guide.md can be tried before a real term.

Each lab's samples (tests/samples/<lab>/*.yaml, applied to the lab's solution the way tests/graded_samples.py
applies them) become one learner each, named after the sample, plus `reference` (the solution). Works from a clone
of the repository (the samples are not part of the class copy).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from autograder.errors import UsageError
from autograder.paths import repo_root
from mlinfra.base import runner
from mlinfra.base.runner import Done

DEFAULT_LABS = ("lab01-environment", "lab02-ml-lifecycle")
LATE, EXTENDED = "partly-done", "blank"  # one learner handed in 30 h late, one with a two-day extension


def _samples_module(root: Path) -> ModuleType:
    path = root / "tests" / "graded_samples.py"
    if not path.is_file():
        raise UsageError(f"{path} is missing: the practice class is built from a clone of the repository (the "
                         "class copy has no samples)")
    spec = importlib.util.spec_from_file_location("_practice_graded_samples", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def stamp(folder: Path, when: datetime) -> None:
    """Give a submission the time the instructor's copy would have (what grading reads as 'received')."""
    t = when.timestamp()
    for path in sorted(folder.rglob("*"), reverse=True):
        os.utime(path, (t, t), follow_symlinks=False)
    os.utime(folder, (t, t))


# ------------------------------------------------------------------------------ a plain nbgrader course, hw1

SOLUTION = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
TESTS = ('assert add(1, 2) == 3, "add(1, 2) should be 3"\n### BEGIN HIDDEN TESTS\n'
         'assert add(10, 5) == 15, "add must add any two numbers"\n### END HIDDEN TESTS')


def _meta(gid: str, *, grade: bool, solution: bool, points: float = 0, locked: bool = False,
          task: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"grade": grade, "solution": solution, "locked": locked, "grade_id": gid,
                            "schema_version": 3}
    if grade or task:
        meta["points"] = points
    if task:
        meta["task"] = True
    return {"nbgrader": meta}


def hw1_source() -> Any:
    """hw1: a function (autograded, with a hidden test, 2 points), a written answer (graded by hand, 3) and a
    task (graded by hand, 1: the learner answers in the cells after it)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Homework 1"),
        nbformat.v4.new_code_cell(SOLUTION, metadata=_meta("add", grade=False, solution=True)),
        nbformat.v4.new_code_cell(TESTS, metadata=_meta("test-add", grade=True, solution=False, points=2,
                                                         locked=True)),
        nbformat.v4.new_markdown_cell("Explain why a function beats copy and paste.\n\n"
                                      "=== model answer: reuse, one place to fix ===",
                                      metadata=_meta("explain", grade=True, solution=True, points=3)),
        nbformat.v4.new_markdown_cell("Task: show `add` on two examples of your own in the cell below.",
                                      metadata=_meta("examples", grade=False, solution=False, points=1, locked=True,
                                                     task=True)),
        nbformat.v4.new_code_cell(""),
    ]
    return nb


def hw1_handed_in(body: str, answer: str) -> Any:
    nb = copy.deepcopy(hw1_source())
    nb.cells[1].source = f"def add(a, b):\n    {body}"
    nb.cells[2].source = 'assert add(1, 2) == 3, "add(1, 2) should be 3"'  # as released: no hidden tests
    nb.cells[3].source = answer
    nb.cells[5].source = "add(2, 2), add(-1, 1)" if answer else ""
    return nb


HW1_CLASS = {"ada": ("return a + b", "Reuse: fix it once.", 0.0),
             "bob": ("return a + b", "It is shorter.", 25.0),  # hours after the due time
             "cy": ("return a - b", "", 25.0)}


def make_nbgrader_course(course: Path, due: datetime, learners: dict[str, tuple[str, str, float]] | None = None
                         ) -> Path:
    """COURSE/nbgrader_config.py, source/hw1/hw1.ipynb and submitted/<learner>/hw1/hw1.ipynb, each submission
    stamped `hours` after `due` (a negative number is early)."""
    import nbformat

    (course / "source" / "hw1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "practice"\n'
                                               "c.Execute.timeout = 30\n")
    nbformat.write(hw1_source(), course / "source" / "hw1" / "hw1.ipynb")
    for learner, (body, answer, hours) in (learners or HW1_CLASS).items():
        folder = course / "submitted" / learner / "hw1"
        folder.mkdir(parents=True)
        nbformat.write(hw1_handed_in(body, answer), folder / "hw1.ipynb")
        stamp(course / "submitted" / learner, due + timedelta(hours=hours if hours else -12))
    return course


# ----------------------------------------------------------------------------------------------- the class

def build(out: Path, labs: tuple[str, ...] = DEFAULT_LABS, *, now: datetime | None = None) -> list[str]:
    """Write the practice class into `out` (replacing an earlier one); return the commands that grade it."""
    root = repo_root()
    samples = _samples_module(root)
    if out.exists():
        shutil.rmtree(out)
    due = (now or datetime.now(timezone.utc)).replace(microsecond=0, second=0) - timedelta(days=3)
    lines = ["timezone: UTC",
             "late: {grace_minutes: 15, penalty_per_day: 10, max_penalty: 50, refuse_after_days: 7}", "due:"]
    lines += [f"  {lab}: {due.isoformat()}" for lab in (*labs, "hw1")]
    lines += ["extensions:", f"  {EXTENDED}:"] + [f"    {lab}: {{days: 2}}" for lab in labs]
    lines += ["  cy:", "    hw1: {days: 2}"]  # in the nbgrader course, cy's 25 h late hand-in is extended
    commands = []
    for lab_name in labs:
        if not (root / "tests" / "samples" / lab_name).is_dir():
            known = ", ".join(samples.labs_with_samples())
            raise UsageError(f"no samples for {lab_name!r} under tests/samples/ (labs with samples: {known})")
        lab = samples.lab_source(lab_name)
        subs = out / "submissions" / lab_name
        subs.mkdir(parents=True)
        samples.build_submission(None, lab, subs / "reference")
        stamp(subs / "reference", due - timedelta(hours=12))
        for sample in samples.load_samples(lab_name):
            samples.build_submission(sample, lab, subs / sample.name)
            late = 30 if sample.name in (LATE, EXTENDED) else -6
            stamp(subs / sample.name, due + timedelta(hours=late))
        commands.append(f"{_here('autograder')} grade {lab_name} {subs} --course {out / 'course.yaml'} "
                        f"--out {out / 'grades' / lab_name}")
    (out / "course.yaml").write_text("\n".join(lines) + "\n")
    course = make_nbgrader_course(out / "nbgrader-course", due)
    commands.append(f"{_here('autograder')} grade hw1 --nbgrader-course {course} --course {out / 'course.yaml'}")
    commands.append(f"{_here('autograder')} review {course / 'grades' / 'hw1'}")
    return commands


def _here(tool: str) -> str:
    script = Path(sys.executable).parent / tool
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _run(args: argparse.Namespace) -> Done:
    commands = build(args.out, tuple(args.labs))
    print(f"built a practice class in {args.out}: each lab's known-bad samples as learners (plus reference), "
          f"{LATE} handed in 30 h late, {EXTENDED} with a two-day extension, and a plain nbgrader course (hw1: bob "
          "late, cy late with an extension) with manually graded cells. Grade it (docs/instructor-guide.md):")
    for line in commands:
        print(f"  {line}")
    return Done(0, {"out": str(args.out), "commands": commands})


def main(argv: list[str] | None = None) -> int:
    parser = runner.ArgumentParser(prog="python -m autograder.grading.practice",
                                   description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".grading/practice"), help="where (replaced if there)")
    parser.add_argument("--labs", nargs="+", default=list(DEFAULT_LABS), help="labs with samples under tests/samples/")
    args = parser.parse_args(argv)
    return runner.run("practice class", lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
