"""How long `autograder grade` takes per notebook: a class of N generated lab01 submissions, 1 and 2 workers.

    python bench/bench_grading.py [--students 12] [--lab lab01-environment]

Prints figures; asserts nothing. For comparison, FACTS.md measured nbgrader's own serial autograde at about
1.5 s a notebook for a light notebook through its API (no process isolation, one shared gradebook).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def make_class(lab_name: str, students: int, dest: Path) -> None:
    from graded_samples import build_submission, lab_source, load_samples

    lab = lab_source(lab_name)
    samples = [None, *[s for s in load_samples(lab_name) if "loop" not in s.name and s.notebook_text is None]]
    for i in range(students):
        build_submission(samples[i % len(samples)], lab, dest / f"student{i:03d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--lab", default="lab01-environment")
    args = parser.parse_args()

    from autograder.grading.engine import grade_class
    from autograder.labs import load_lab
    from autograder.nbgrader_course import ensure_venv_tools_on_path

    ensure_venv_tools_on_path()
    lab = load_lab(ROOT / "solutions" / args.lab)
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        make_class(args.lab, args.students, subs)
        print(f"bench_grading: {args.students} submissions of {args.lab}")
        for workers in (1, 2):
            out = Path(tmp) / f"out{workers}"
            start = time.perf_counter()
            batch = grade_class(lab, subs, out, workers=workers)
            wall = time.perf_counter() - start
            per_student = [s.seconds for s in batch.students]
            print(f"  workers={workers}: {wall:6.1f} s total, {wall / args.students:5.2f} s per notebook "
                  f"(one student's own time: median {sorted(per_student)[len(per_student) // 2]:.2f} s)")
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
