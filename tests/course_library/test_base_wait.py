"""mlinfra.base.wait: the one readiness wait (a probe that answers late, a process that dies, a timeout)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from mlinfra.base.wait import NotReady, wait_until


def test_returns_the_first_truthy_answer() -> None:
    calls: list[int] = []

    def probe() -> str | None:
        calls.append(1)
        return "ready" if len(calls) == 3 else None

    assert wait_until(probe, timeout=5, interval=0.01, what="the probe") == "ready"
    assert len(calls) == 3


def test_a_dead_process_ends_the_wait_at_once_with_its_code() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    proc.wait()
    began = time.monotonic()
    with pytest.raises(NotReady, match="the server exited with code 7") as info:
        wait_until(lambda: None, process=proc, timeout=30, interval=0.01, what="the server")
    assert info.value.exit_code == 7
    assert time.monotonic() - began < 5  # not the 30 s timeout


def test_a_process_dying_mid_wait_is_noticed() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"])
    try:
        with pytest.raises(NotReady) as info:
            wait_until(lambda: None, process=psutil.Process(proc.pid), timeout=30, interval=0.05, what="child")
        assert info.value.exit_code == 3
        assert info.value.waited < 10
    finally:
        proc.kill()
        proc.wait()


def test_a_running_process_does_not_end_the_wait() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        answers = iter([None, None, 42])
        assert wait_until(lambda: next(answers), process=proc, timeout=5, interval=0.01, what="x") == 42
    finally:
        proc.kill()
        proc.wait()


def test_a_timeout_names_what_and_the_limit() -> None:
    calls: list[int] = []
    began = time.monotonic()
    with pytest.raises(NotReady, match=r"the API server was not ready within 0\.3 s") as info:
        wait_until(lambda: calls.append(1), timeout=0.3, interval=0.05, what="the API server")
    assert info.value.exit_code is None
    assert 0.3 <= time.monotonic() - began < 3
    assert len(calls) >= 3  # it kept polling until the limit


def test_the_probe_is_asked_at_least_once_and_its_errors_propagate() -> None:
    def probe() -> None:
        raise ValueError("bad answer")

    with pytest.raises(ValueError, match="bad answer"):
        wait_until(probe, timeout=0, what="x")


def test_interval_grows_to_max_interval_and_on_tick_sees_the_time() -> None:
    ticks: list[float] = []
    with pytest.raises(NotReady):
        wait_until(lambda: None, timeout=0.5, interval=0.05, max_interval=0.2, what="x", on_tick=ticks.append)
    assert ticks == sorted(ticks) and ticks[0] < 0.05
    assert len(ticks) < 10  # backoff: 0.05, 0.075, 0.11, 0.17, 0.2 ... rather than ten rounds of 0.05
