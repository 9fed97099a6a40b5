"""What a lab06 class leaves on the grading machine: the container storage's size, its images and its containers
(the builder's working containers included) before and after a real `autograder grade` of N students.

    python bench/bench_class_disk.py [--students 20] [--workers 2] [--tiny]

Every student hands in the reference (its image installs the course's wheels: about a minute and a half a build
here, so a class of 20 takes half an hour on two cores); --tiny hands in an image of the course's base with a
stdlib server instead (seconds a build: the count of builds, not their size, is then measured). Uses the engine
`autograder dockerfile --build` uses (podman with the course's storage from scripts/container-engine.sh, or Docker).
Prints figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("WORKBOOK_ROOT", str(ROOT))

from autograder import container_engine as eng

TINY = 'FROM python:3.11-slim-bookworm\nCOPY tiny.py /tiny.py\nEXPOSE 8000\nCMD ["python", "/tiny.py"]\n'
TINY_SERVER = """import http.server


class Handler(http.server.BaseHTTPRequestHandler):  # healthy; every prediction refused (501)
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')


http.server.HTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""


def storage(engine: eng.Engine) -> tuple[int | None, set[str], set[str]]:
    """The storage's size in bytes (podman's graph root; None on Docker), its image ids, and every container."""
    size = None
    where = engine.run("info", "--format", "{{.Store.GraphRoot}}", check=False).stdout.strip()
    if engine.name == "podman" and where and Path(where).is_dir():
        du = subprocess.run(["du", "-sb", where], capture_output=True, text=True, check=False).stdout.split()
        size = int(du[0]) if du and du[0].isdigit() else None
    images = set(engine.run("images", "-a", "-q", "--no-trunc", check=False).stdout.split())
    listing = ["ps", "-a", "--format", "{{.ID}} {{.Names}}"] + (["--external"] if engine.name == "podman" else [])
    containers = set(engine.run(*listing, check=False).stdout.splitlines())
    return size, images, containers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a tiny image a student instead of the reference")
    args = parser.parse_args()
    from graded_samples import Sample, build_submission, lab_source

    from autograder.grading.engine import grade_class

    engine = eng.detect(ROOT)
    source = lab_source("lab06-docker")
    tmp = Path(tempfile.mkdtemp(prefix="bench-class-disk-"))
    try:
        sample = (Sample("lab06-docker", "tiny", "", files={"Dockerfile": TINY, "tiny.py": TINY_SERVER})
                  if args.tiny else None)
        for i in range(args.students):
            build_submission(sample, source, tmp / "subs" / f"student-{i:02d}")
        before = storage(engine)
        start = time.monotonic()
        batch = grade_class(source, tmp / "subs", tmp / "out", workers=args.workers)
        took = time.monotonic() - start
        after = storage(engine)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    built = sum(1 for p in batch.parts for c in p.checks if c.name == "container: image builds" and c.points)
    deploy = [sum(c.points for c in p.checks if c.name.startswith("container")) for p in batch.parts]
    print(f"engine: {engine.name}; {args.students} students ({'tiny image' if args.tiny else 'the reference'}), "
          f"{args.workers} workers: graded in {took:.0f} s; {built} images built; deploy points "
          f"{min(deploy):g}-{max(deploy):g} of 6")
    if before[0] is not None and after[0] is not None:
        print(f"container storage: {before[0]:,} bytes before, {after[0]:,} after: {after[0] - before[0]:+,} bytes")
    print(f"images: {len(before[1])} before, {len(after[1])} after; new: {sorted(after[1] - before[1]) or 'none'}")
    print(f"containers: {len(before[2])} before, {len(after[2])} after; new: {sorted(after[2] - before[2]) or 'none'}")


if __name__ == "__main__":
    main()
