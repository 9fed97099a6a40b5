"""What the grading sandbox adds per student: the same work unsandboxed, under bubblewrap and in a container.

    python bench/bench_sandbox.py [--repeat 10]

Two figures per sandbox kind, each the median of --repeat runs, side by side in one run:
- command: `python -c pass` from launch to exit (the sandbox's own start and end, plus one interpreter start);
- kernel: a Jupyter kernel started in the sandbox (the grader's own kernel manager, ipc transport), one cell
  `1 + 1` executed, the kernel killed and its sandbox torn down: what a student's kernel costs beyond its cells.
A kind that cannot run here is listed with the reason. Prints figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _spec(kind: str, base: Path):
    from autograder.grading import sandbox

    box = Path(tempfile.mkdtemp(dir=base))
    conn = Path(tempfile.mkdtemp(prefix="c-", dir=base))  # base is under /tmp: short enough for ipc socket paths
    (box / "home").mkdir()
    return sandbox.Spec(work=box / "home", conn=conn, kind=kind)


def command_ms(kind: str, base: Path) -> float:
    from autograder.grading import sandbox

    started = time.perf_counter()
    proc = sandbox.run_in_sandbox([sys.executable, "-c", "pass"], _spec(kind, base))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-200:])
    return (time.perf_counter() - started) * 1000


def kernel_ms(kind: str, base: Path, state: Any) -> tuple[float, float, float, float]:
    """(start to ready, one cell, kill and teardown, the kernel's own CPU to ready) in ms. `bwrap+zygote`: bwrap,
    the kernel forked from a zygote as a grading worker does."""
    import psutil
    from jupyter_core.utils import run_sync

    from autograder.grading import kernels

    spec = _spec(kind.split("+")[0], base)
    t0 = time.perf_counter()
    km = kernels.new_kernel_manager(spec, state)
    run_sync(km.start_kernel)(extra_arguments=list(kernels.KERNEL_ARGS), cwd=str(spec.work))
    kc = km.client()
    kc.start_channels()
    run_sync(kc.wait_for_ready)(timeout=60)
    t1 = time.perf_counter()
    cpu = 0.0
    launcher = psutil.Process(km.provisioner.pid)
    for proc in [launcher, *launcher.children(recursive=True)]:  # a container's kernel is not among them
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            cpu += times.user + times.system
    reply = run_sync(kc.execute_interactive)("1 + 1", timeout=30, output_hook=lambda msg: None)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the cell failed in the {kind} sandbox")
    t2 = time.perf_counter()
    kc.stop_channels()
    run_sync(km.shutdown_kernel)(now=True)
    t3 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000, cpu * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs per figure (the median is printed)")
    args = parser.parse_args()
    from autograder.grading import kernels, sandbox
    from autograder.grading.run import WorkerState

    reasons = {"none": "", "bwrap": sandbox.bwrap_works(), "bwrap+zygote": sandbox.bwrap_works(),
               "container": sandbox.container_works()}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        rows = []
        for kind, why in reasons.items():
            if why:
                rows.append((kind, None, None, why))
                continue
            plain_kind = kind.split("+")[0]
            command_ms(plain_kind, base)  # warm the page cache and the engine
            cmd = statistics.median(command_ms(plain_kind, base) for _ in range(args.repeat))
            state = WorkerState()
            if kind.endswith("+zygote"):
                kernels.start_zygote(state)
            try:
                kernel = [kernel_ms(kind, base, state) for _ in range(args.repeat)]
            finally:
                state.stop_zygote()
            medians = tuple(statistics.median(k[i] for k in kernel) for i in range(4))
            rows.append((kind, cmd, medians, ""))
    plain = next((r for r in rows if r[0] == "none"), None)
    print(f"median of {args.repeat} runs, ms (load average {os.getloadavg()[0]:.2f})")
    print(f"{'sandbox':<13} {'command':>8} {'+ vs none':>10} {'kernel ready':>13} {'cell':>6} {'kill':>6} "
          f"{'kernel total':>13} {'+ vs none':>10} {'kernel CPU':>11}")
    for kind, cmd, medians, why in rows:
        if cmd is None:
            print(f"{kind:<13} cannot run here: {why}")
            continue
        total = sum(medians[:3])
        extra_cmd = cmd - plain[1] if plain and plain[1] is not None else 0.0
        extra_total = total - sum(plain[2][:3]) if plain and plain[2] is not None else 0.0
        print(f"{kind:<13} {cmd:8.0f} {extra_cmd:+10.0f} {medians[0]:13.0f} {medians[1]:6.0f} {medians[2]:6.0f} "
              f"{total:13.0f} {extra_total:+10.0f} {'-' if kind == 'container' else f'{medians[3]:.0f}':>11}")
    print("A grading worker starts the next student's kernel while it grades the current one, so 'kernel ready' is "
          "off the critical path of a class; 'kill' is on it. 'kernel CPU': what the sandbox's processes spent "
          "from start to ready, on the cores the students' cells share (bwrap+zygote: forked already imported).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
