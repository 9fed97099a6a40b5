"""Grading a class: ours (`autograder grade`'s local engine, sandboxed) against plain nbgrader serial autograde,
side by side in one run, on the same submissions.

    python bench/bench_grading.py [--lab lab01-environment] [--students 12] [--workers 2] [--sandbox auto]
                                  [--skip-nbgrader]

The class cycles through the lab's reference and its graded samples (not the ones that loop forever or break the
notebook's file, which nbgrader's batch does not survive). nbgrader runs the way an instructor would run it without
us: one course folder, `NbGraderAPI.autograde` per student, serially, in one process (its API, which is faster than
its CLI), unsandboxed. Prints seconds per notebook for both, the ratio, where our time goes per student (median of
each step), the overhead that is not the notebook's own cells, `autograder check`'s time against its cells, and any
student whose score differs (expected: duplicated-cells, which nbgrader scores 0 and we grade, and memory-hog,
whose 8 GB allocation our memory limit stops). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def make_class(lab_name: str, students: int, dest: Path) -> None:
    from graded_samples import build_submission, lab_source, load_samples

    lab = lab_source(lab_name)
    samples = [None, *[s for s in load_samples(lab_name)
                       if not any(w in s.name for w in ("loop", "crash")) and s.notebook_text is None]]
    for i in range(students):
        build_submission(samples[i % len(samples)], lab, dest / f"student{i:03d}")


def nbgrader_serial(lab, subs: Path, course: Path) -> tuple[float, dict[str, float]]:
    """Plain nbgrader: one course, every student autograded in turn. Returns (seconds, student -> score)."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI

    from autograder.labs import NOT_LAB_FILES
    from autograder.nbgrader_course import course_config, quiet_nbgrader

    shutil.copytree(lab.folder, course / "source" / lab.name, ignore=shutil.ignore_patterns(*NOT_LAB_FILES))
    config = course_config(course, lab)
    with quiet_nbgrader():
        api = NbGraderAPI(config=config)
        api.generate_assignment(lab.name, force=True, create=True)
    students = sorted(p.name for p in subs.iterdir())
    for student in students:
        shutil.copytree(subs / student, course / "submitted" / student / lab.name)
    started = time.perf_counter()
    with quiet_nbgrader():
        for student in students:
            NbGraderAPI(config=config).autograde(lab.name, student, force=True, create=True)
    seconds = time.perf_counter() - started
    scores: dict[str, float] = {}
    with Gradebook(config.CourseDirectory.db_url, "mlinfra-workbook") as gb:
        for student in students:
            try:
                sub = gb.find_submission_notebook(Path(lab.notebook).stem, lab.name, student)
                scores[student] = float(sub.score)
            except Exception:  # noqa: BLE001 - nbgrader recorded nothing for this student
                scores[student] = float("nan")
    return seconds, scores


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=12)
    parser.add_argument("--lab", default="lab01-environment")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--sandbox", default="auto")
    parser.add_argument("--skip-nbgrader", action="store_true", help="time ours only")
    parser.add_argument("--started-kernels", action="store_true",
                        help="also grade the class with every kernel started afresh instead of forked from the "
                             "workers' zygotes (bubblewrap batches), to see what forking saves")
    parser.add_argument("--unsealed", action="store_true",
                        help="also grade the class without sealed hidden tests (the kernel's word taken for its "
                             "results, as before issue #21), to see what the sealed verdict costs")
    args = parser.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    from autograder.grading.engine import grade_class
    from autograder.labs import load_lab
    from autograder.nbgrader_course import ensure_venv_tools_on_path

    ensure_venv_tools_on_path()
    lab = load_lab(ROOT / "solutions" / args.lab)
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        make_class(args.lab, args.students, subs)
        print(f"bench_grading: {args.students} submissions of {args.lab}, {os.cpu_count()} cores")

        from autograder.grading import pool
        from autograder.grading.run import Options

        def variant(options: Options, folder: str) -> tuple[Any, float]:
            """The class graded once with these options, and the seconds it took."""
            started = time.perf_counter()
            return grade_class(lab, subs, Path(tmp) / folder, workers=args.workers, sandbox=args.sandbox,
                               options=options), time.perf_counter() - started

        if args.started_kernels:
            plain, took = variant(Options(fork_kernels=False), "started")
            cells = sum(p.data.get("timing", {}).get("cells", 0.0) for p in plain.parts)
            print(f"  ours, every kernel started afresh: {took:6.1f} s, {took / args.students:5.2f} s a notebook; "
                  f"cells {cells:6.1f} s in all")
        if args.unsealed:
            trusting, took = variant(Options(seal_hidden_tests=False), "unsealed")
            print(f"  ours, unsealed (the kernel's word taken): {took:6.1f} s, {took / args.students:5.2f} s a "
                  f"notebook; scores {[p.score for p in trusting.parts]}")
        started = time.perf_counter()
        batch = grade_class(lab, subs, Path(tmp) / "ours", workers=args.workers, sandbox=args.sandbox)
        ours = time.perf_counter() - started
        per = ours / args.students
        forked = sum(bool(p.data.get("forked")) for p in batch.parts)
        ahead = ", ".join(pool.preimports(lab)) or "nothing beyond the kernel's own"
        print(f"  ours ({args.workers} workers, sandbox {batch.data['sandbox']}; {forked} of {args.students} "
              f"kernels forked from a zygote that imported {ahead}): {ours:6.1f} s, {per:5.2f} s a notebook")
        if not args.skip_nbgrader:
            with _quiet_stderr():  # nbgrader's kernels warn about TCP on stderr, one line per student
                theirs, scores = nbgrader_serial(lab, subs, Path(tmp) / "nbgrader")
            print(f"  nbgrader serial autograde (1 process, unsandboxed): {theirs:6.1f} s, "
                  f"{theirs / args.students:5.2f} s a notebook")
            print(f"  ratio: ours is {theirs / ours:4.2f}x nbgrader's speed")
            differ = [(p.subject, p.score, scores.get(p.subject)) for p in batch.parts
                      if abs(p.score - scores.get(p.subject, float("nan"))) > 1e-9]
            print(f"  scores identical to nbgrader's: {args.students - len(differ)}/{args.students}"
                  + (f"; differ: {differ}" if differ else ""))

        from autograder.notebooks import run_notebook

        started = time.perf_counter()
        checked = run_notebook(lab.notebook_path, load_lab(ROOT / "labs" / args.lab))
        whole = time.perf_counter() - started
        cells = checked.data["timing"]["cells"]
        split = ", ".join(f"{k} {v:.2f}" for k, v in checked.data["timing"].items() if k != "cells")
        print(f"  autograder check on the reference: {whole:5.2f} s, of which the notebook's cells {cells:5.2f} s "
              f"(+{whole - cells:4.2f} s: {split}; the goal is within 1 s)")

        steps: dict[str, list[float]] = {}
        for part in batch.parts:
            for key, value in part.data.get("timing", {}).items():
                steps.setdefault(key, []).append(value)
        print("  where our time goes per student (median seconds; wall time of the worker):")
        for key, values in steps.items():
            print(f"    {key:16s} {statistics.median(values):6.3f}")
        cells = sum(p.data.get("timing", {}).get("cells", 0.0) for p in batch.parts)
        print(f"  the class against its cells' time / cores: {ours:6.1f} s against {cells / args.workers:6.1f} s "
              f"({(ours / (cells / args.workers) - 1) * 100:+.0f}%; the goal is within +15%)")
        per_student = statistics.median(p.data.get("seconds", 0.0) - p.data.get("timing", {}).get("cells", 0.0)
                                        for p in batch.parts)
        cpu = [p.data["cpu"] for p in batch.parts if "cpu" in p.data]
        if cpu:
            print(f"  the grading worker's own CPU per student (median; the kernel's is its own): "
                  f"{statistics.median(cpu):5.2f} s")
        overall = (ours * args.workers - cells) / args.students
        print(f"  not the notebook's own cells, per student: {per_student:5.2f} s of a worker (median); "
              f"{overall:5.2f} s counting the batch's fixed costs (template, forks, imports) and idle workers "
              f"(class wall x workers - cells, / students). The goal is 0.3 s")


if __name__ == "__main__":
    main()
