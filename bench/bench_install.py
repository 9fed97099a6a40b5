"""What the course's environment costs on disk, against an environment of the seed packages alone.

    python bench/bench_install.py [--top 12]

The course is built on nine packages (jupyterlab, nbgrader, torch, torchvision, apache-airflow, fastapi, pyyaml,
pytest, nbval): a course that installed only those, with what they require, is what a learner would set up by
hand. This venv holds more (TensorFlow, Keras, ONNX, TorchServe, Celery, ...). Both figures are read from this
venv in one run, from each installed distribution's RECORD (plus the `.pyc` files setup's bytecode compilation
adds), over the requirement closures read from the installed metadata. Prints the two totals, the CUDA libraries
inside them (the default torch build carries them; docs/setup.md says when setup can avoid it), the largest
distributions beyond the seed closure, and `du` of the whole venv. Figures only, never a pass/fail.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_tensorflow import installed_mb  # the same size rule as the TensorFlow figures
from mlinfra.base.runner import ArgumentParser  # a bad argument: one line pointing at --help, exit 2

SEED = ("jupyterlab", "nbgrader", "torch", "torchvision", "apache-airflow", "fastapi", "pyyaml", "pytest", "nbval")
PROJECT = "mlinfra-workbook"
CUDA = re.compile(r"^(nvidia-|triton$|cuda-)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> set[str]:
    """The installed distributions `roots` require, transitively (extras not asked for are left out)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonical(req.name))
    return seen


def project_roots() -> list[str]:
    """The course's own requirements (pyproject.toml's dependencies, as the installed project lists them)."""
    from packaging.requirements import Requirement

    try:
        lines = metadata.distribution(PROJECT).requires or []
    except metadata.PackageNotFoundError:
        raise SystemExit(f"{PROJECT} is not installed in this Python: run `make setup`, then "
                         f"`.venv/bin/python bench/bench_install.py`") from None
    return [Requirement(line).name for line in lines if "extra ==" not in line]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="bench_install.py", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=12, help="how many of the largest extra distributions to list")
    args = parser.parse_args(argv)
    seed, course = closure(list(SEED)), closure(project_roots())
    sizes = {name: installed_mb(name)[0] for name in seed | course}

    def total(names: set[str]) -> tuple[float, float]:
        return sum(sizes[n] for n in names), sum(sizes[n] for n in names if CUDA.match(n))

    print(f"{'environment':<44} {'distributions':>13} {'MB':>9} {'of it CUDA':>11}")
    for label, names in (("the seed packages and what they require", seed), ("the course's environment", course)):
        mb, cuda = total(names)
        print(f"{label:<44} {len(names):>13} {mb:>9,.0f} {cuda:>11,.0f}")
    extra = sorted(course - seed, key=lambda n: -sizes[n])
    extra_mb = sum(sizes[n] for n in extra)
    print(f"\nbeyond the seed closure: {len(extra)} distributions, {extra_mb:,.0f} MB; the largest:")
    for name in extra[: args.top]:
        print(f"  {name:<32} {metadata.version(name):<12} {sizes[name]:>8,.0f} MB")
    venv = Path(sys.prefix)
    du = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=False)
    if du.returncode == 0:
        print(f"\n`du -sm {venv}`: {int(du.stdout.split()[0]):,} MB (the interpreter's links, caches and scripts "
              "included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
