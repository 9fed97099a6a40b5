"""The latency requirement on a loaded machine: with two CPU-bound processes running beside it, the reference
service passes 20 runs of 20, and a service with a real 600 ms sleep per request fails 20 of 20. Short measuring
mode (SHORT), the production code path (probes.latency).

What keeps it cheap without changing what it shows: both services start before the load does (their start-up is
not under test), each is started once for its 20 runs, and the reference is warmed up once (the same process
serves every run). The sleeping service's 20 runs go at once, each on its own connection: a sleeping service uses
no CPU, so they load the machine no less than one at a time would; `latency`'s machine-wide lock (one assessment's
probes at a time) is set aside for them alone, or they would queue behind each other for 20 x 2.4 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from autograder.assess import probes
from autograder.assess.probes import Evidence, Options, latency
from autograder.assess.server import AppSpec, UvicornServer, wait_until_ready
from autograder.assess.targets import ContractTarget, new_client

ROOT = Path(__file__).parents[2]
SERVICES = Path(__file__).parent / "services"
RUNS = 20
# 20 timed requests a size (the rule's least), one warm-up, a short wait for quiet, and 4 clients x 2 requests at
# once (not 4 x 5) for the no-errors-under-concurrent-load part
SHORT = Options(requests=20, warmup=1, quiet_wait_s=0.2, per_client=2)


@contextlib.contextmanager
def started(*apps: str) -> Iterator[list[tuple[UvicornServer, ContractTarget]]]:
    """The apps' servers, all started at once and each answering /health."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(UvicornServer(AppSpec.parse(app))) for app in apps]
        for server in servers:
            server.start()
        out = []
        for server in servers:
            target = ContractTarget(server.url)
            with new_client() as client:
                ready = wait_until_ready(lambda t=target, c=client: t.ready(c), 90, server.exit_code)
            assert ready.ready, server.log_tail()
            out.append((server, target))
        yield out


@contextlib.contextmanager
def cpu_hogs(count: int = 2) -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:  # by pid: only what this test started
            hog.kill()
            hog.wait()


def one_at_a_time(server: UvicornServer, target: ContractTarget, runs: int) -> list[tuple[bool, str]]:
    """`runs` assessments of the latency requirement in a row, as assess_app makes them (the service's process is
    known, so its own run-queue wait can be read); only the first warms the service up."""
    out = []
    with new_client() as client:
        for run in range(runs):
            opts = dataclasses.replace(SHORT, service_pid=server.proc.pid, warmup=SHORT.warmup if run == 0 else 0)
            crit = latency(target, client, opts, Evidence())
            out.append((crit.passed, crit.verdict))
    return out


def all_at_once(server: UvicornServer, target: ContractTarget, runs: int) -> list[tuple[bool, str]]:
    def one(_: int) -> tuple[bool, str]:
        with new_client() as client:
            crit = latency(target, client, dataclasses.replace(SHORT, service_pid=server.proc.pid), Evidence())
        return crit.passed, crit.verdict

    with ThreadPoolExecutor(max_workers=runs) as pool:
        return list(pool.map(one, range(runs)))


def unlocked(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager[float]:
    """probes.latency_lock set aside: no wait (for the sleeping service's runs alone)."""
    return contextlib.nullcontext(0.0)


@pytest.mark.slow
def test_reference_passes_and_a_sleeping_service_fails_every_time_beside_two_cpu_hogs(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    apps = (f"{ROOT / 'solutions' / 'lab07-api' / 'app.py'}:app", f"{SERVICES / 'sleep600.py'}:app")
    with started(*apps) as [(ref_server, ref), (sleep_server, sleeper)], cpu_hogs(2):
        with monkeypatch.context() as mp:
            mp.setattr(probes, "latency_lock", unlocked)
            sleeping = all_at_once(sleep_server, sleeper, RUNS)
        reference = one_at_a_time(ref_server, ref, RUNS)
    assert [passed for passed, _ in reference] == [True] * RUNS, [v for p, v in reference if not p]
    assert [passed for passed, _ in sleeping] == [False] * RUNS, [v for p, v in sleeping if p]
    assert all("p95 at 28x28" in verdict for _, verdict in sleeping)
