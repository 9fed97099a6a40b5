"""end_processes: what `make airflow-stop` and TorchServe's stop use to end processes found earlier by pid."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from mlinfra.base.procs import end_processes

IGNORES_TERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
SLEEPS = "import time; print('up', flush=True); time.sleep(60)"


def start(code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"  # its signal handler is set
    return proc


def test_term_first_then_kill_what_ignores_it() -> None:
    polite, stubborn = psutil.Process(start(SLEEPS).pid), psutil.Process(start(IGNORES_TERM).pid)
    began = time.monotonic()
    end_processes([polite, stubborn], grace=1.0)
    # psutil reaps them and records how each ended
    assert (polite.returncode, stubborn.returncode) == (-15, -9)  # the second ignored TERM: killed after the grace
    assert 1.0 <= time.monotonic() - began < 8


def test_without_terminate_only_what_outlives_the_grace_is_killed() -> None:
    proc = psutil.Process(start(SLEEPS).pid)
    end_processes([proc], grace=0.5, terminate=False)
    assert proc.returncode == -9


def test_a_process_gone_already_is_no_error() -> None:
    proc = start(SLEEPS)
    found = psutil.Process(proc.pid)
    proc.kill()
    proc.wait()
    end_processes([found], grace=0.5)
