"""The environment check (`autograder doctor`): the container-engine row knows the course's podman set-up."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mlinfra import envcheck
from mlinfra.base.results import FAILED, PASSED, SKIPPED

ROOT = Path(__file__).resolve().parents[2]


def facts(**changes) -> envcheck.MachineFacts:
    base = {"python_version": (3, 11, 7), "prefix": "/v", "base_prefix": "/usr", "cpu_count": 2, "memory_gb": 16.0,
                "disk_free_gb": 50.0, "tools": {"git": "git 2.39", "docker": "Docker 28", "podman": None, "aws": None,
                                          "gcloud": None, "az": None},
                "docker_engine": False, "packages": {name: "1.0" for name in envcheck.REQUIRED_PACKAGES}, "gpu": None}
    base.update(changes)
    return envcheck.MachineFacts(**base)


def docker_row(machine: envcheck.MachineFacts) -> envcheck.Prerequisite:
    return next(c for c in envcheck.evaluate(machine).checks if c.name == "docker")


def test_course_podman_counts_as_an_engine() -> None:
    row = docker_row(facts(tools={"git": "g", "docker": "Docker 28", "podman": "podman version 4.3.1"},
                           course_podman="/cache/containers"))
    assert row.status == "pass" and "podman version 4.3.1" in row.detail and "make container-engine" in row.detail
    assert "Docker Desktop" not in row.fix


def test_no_engine_points_at_make_container_engine() -> None:
    assert "make container-engine" in docker_row(facts()).fix
    podman_only = docker_row(facts(tools={"git": "g", "docker": None, "podman": "podman version 4.3.1"}))
    assert podman_only.status == "warn" and "make container-engine" in podman_only.fix
    assert docker_row(facts(docker_engine=True)).status == "pass"


def _fake_podman(folder: Path, code: int) -> None:
    """A stand-in `podman` on PATH: answers `podman info` with `code`, and records the storage it was given."""
    script = folder / "podman"
    script.write_text(f"#!/bin/sh\necho \"$CONTAINERS_STORAGE_CONF\" > {folder}/seen\necho 4.3.1\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(("configured", "answers", "expected"), [(True, True, True), (True, False, False),
                                                                  (False, True, False)])
def test_detects_the_scripts_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: bool,
                                     answers: bool, expected: bool) -> None:
    state, bin_dir = tmp_path / "containers", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    if configured:
        (state / "containers.conf").write_text("[engine]\n")
        (state / "storage.conf").write_text("[storage]\n")
    _fake_podman(bin_dir, 0 if answers else 125)
    monkeypatch.setenv("WORKBOOK_CONTAINER_STATE", str(state))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert (envcheck._course_podman() == str(state)) is expected
    if configured:
        assert (bin_dir / "seen").read_text().strip() == str(state / "storage.conf"), "asked with the course's storage"


def test_outcome_vocabulary() -> None:
    machine = facts(python_version=(3, 8, 1))
    outcome = envcheck.to_outcome(envcheck.evaluate(machine))
    statuses = {c.name: c.status for c in outcome.checks}
    assert statuses["python"] == FAILED and statuses["git"] == PASSED and statuses["aws"] == SKIPPED
    assert outcome.data["ok"] is False and not outcome.passed


@pytest.mark.slow  # the real probe asks every tool for its version (the cloud CLIs take 2-3 s each)
def test_doctor_json_stdout_is_only_json() -> None:
    done = subprocess.run([sys.executable, "-m", "autograder", "doctor", "--json", "-"], capture_output=True,
                          text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    result = json.loads(done.stdout)
    assert result["subject"] == "this machine" and "check" in done.stderr
    if shutil.which("podman") and envcheck._course_podman():
        row = next(c for c in result["checks"] if c["name"] == "docker")
        assert row["status"] == "passed" and "course's storage" in row["message"], "doctor says podman is set up"
