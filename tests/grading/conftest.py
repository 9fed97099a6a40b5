"""Fixtures shared by the grading tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autograder.grading import containers, sandbox

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def container_engine() -> str:
    """'' once a container engine answers (set up by the course's script where it can be: it installs podman
    where there is no engine, as root on Debian/Ubuntu), else why there is none."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "container-engine.sh")], capture_output=True, text=True,
                          timeout=900, check=False)
    containers.engine_or_reason.cache_clear()
    why = sandbox.container_works()
    if why and proc.returncode != 0:
        why += f" (scripts/container-engine.sh: {(proc.stderr.strip().splitlines() or ['no output'])[-1]})"
    return why
