"""Run every bench/bench_*.py in turn, each in its own process, and print its figures.

    python -m bench                 # all of them
    python -m bench training        # only the scripts whose name contains "training"

Timing is never a pass/fail: the exit code is 1 only when a script crashed, so the figures can be trusted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(word in s.stem for word in argv)]
    if not scripts:
        print(
            f"no bench/bench_*.py matches {' '.join(argv)}; available: "
            f"{', '.join(s.stem for s in sorted(HERE.glob('bench_*.py')))}",
            file=sys.stderr,
        )
        return 2
    crashed = []
    for script in scripts:
        print(f"== {script.relative_to(HERE.parent)} ==", flush=True)
        start = time.perf_counter()
        code = subprocess.run([sys.executable, str(script)], check=False, cwd=HERE.parent).returncode
        print(
            f"== {script.stem}: {'done' if code == 0 else f'CRASHED (exit {code})'} in "
            f"{time.perf_counter() - start:.0f} s ==\n",
            flush=True,
        )
        if code != 0:
            crashed.append(script.stem)
    if crashed:
        print(f"crashed: {', '.join(crashed)} (their figures above are incomplete)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
