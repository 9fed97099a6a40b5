"""The latency requirement on a loaded machine: with two CPU-bound processes running beside it, the reference
service passes 20 runs of 20, and a service with a real 600 ms sleep per request fails 20 of 20. Short measuring
mode (20 timed requests, one warm-up, a short wait for quiet), the production code path (probes.latency)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.assess.probes import Evidence, Options, latency
from autograder.assess.server import AppSpec, UvicornServer, wait_until_ready
from autograder.assess.targets import ContractTarget, new_client

ROOT = Path(__file__).parents[2]
SERVICES = Path(__file__).parent / "services"
RUNS = 20
SHORT = Options(requests=20, warmup=1, quiet_wait_s=0.2)


def verdicts(app: str, runs: int) -> list[tuple[bool, str]]:
    out = []
    with UvicornServer(AppSpec.parse(app)) as server:
        server.start()
        target = ContractTarget(server.url)
        with new_client() as client:
            assert wait_until_ready(lambda: target.ready(client), 60, server.exit_code).ready, server.log_tail()
            # As assess_app does: the service's process is known, so its own run-queue wait can be read.
            opts = dataclasses.replace(SHORT, service_pid=server.proc.pid)
            for _ in range(runs):
                crit = latency(target, client, opts, Evidence())
                out.append((crit.passed, crit.verdict))
    return out


@pytest.fixture
def two_cpu_hogs() -> object:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield hogs
    finally:
        for hog in hogs:  # by pid: only what this test started
            hog.kill()
            hog.wait()


@pytest.mark.slow
def test_reference_passes_and_a_sleeping_service_fails_every_time_beside_two_cpu_hogs(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, two_cpu_hogs: object
) -> None:
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    reference = verdicts(f"{ROOT / 'solutions' / 'lab07-api' / 'app.py'}:app", RUNS)
    assert [passed for passed, _ in reference] == [True] * RUNS, [v for p, v in reference if not p]
    sleeping = verdicts(f"{SERVICES / 'sleep600.py'}:app", RUNS)
    assert [passed for passed, _ in sleeping] == [False] * RUNS, [v for p, v in sleeping if p]
    assert all("p95 at 28x28" in verdict for _, verdict in sleeping)
