"""The lab05 deploy check gives each student their own deployment: graded side by side (two workers) while a
TorchServe already serves on the machine's default ports, references get every point and blanks none, every time.

Before each check had a temporary folder of its own, torch-model-archiver staged every archive named "digits" in
the same <temp>/digits folder, so a reference could be deployed with a blank's handler (and lose its points, with
the blank's error in its feedback) and the other way round. That race is timing-dependent; the test makes the
shared staging place busy for the whole run, so a check that still uses it fails every time.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from serving_helpers import ROOT

from autograder.labs import load_lab
from mlinfra import torchserve_local as tl


def _java() -> str:
    try:
        tl.java_executable()
    except tl.StartError:
        return "needs Java 17 for TorchServe (apt-get install openjdk-17-jre-headless)"
    return ""


def _grade(args: tuple[str, str, str]) -> tuple[str, float, list[str]]:
    """One student's deploy check, in a process of its own (as a grading worker runs it)."""
    from autograder.deploy.torchserve_check import torchserve

    student, files, work = args
    lab = load_lab(ROOT / "solutions" / "lab05-torchserve")
    checks = torchserve(lab, Path(files), Path(work))
    return student, sum(c.points for c in checks), [c.message for c in checks if c.points < c.max_points]


@pytest.mark.slow
@pytest.mark.java
@pytest.mark.skipif(bool(_java()), reason=_java())
def test_four_students_two_workers_beside_a_default_torchserve(tiny_model: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    # The machine's temporary folder, as every process here sees it (a folder of the test's own, so nothing
    # outside the test is touched).
    shared = tmp_path / "machine-tmp"
    shared.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared))
    handlers = {"ref": ROOT / "solutions" / "lab05-torchserve" / "handler.py",
                "blank": ROOT / "labs" / "lab05-torchserve" / "handler.py"}
    # A TorchServe on the default ports with the reference handler, as `make torchserve` runs it (unless one
    # already serves there: the condition holds either way).
    default = tl.Deployment(state=tmp_path / "default-ts", name="digits", ports=tl.Ports())
    started = not any(tl._port_in_use(p) for p in default.ports.all().values())
    if started:
        tl.start(default, tiny_model, timeout=180, handler=handlers["ref"])
    # Something else stages an archive named "digits" in the machine's temporary folder right now (another
    # student's check, `make torchserve`): a check that stages there too fails or ships the wrong handler.
    (shared / "digits").write_text("another archive being staged")
    try:
        ctx = multiprocessing.get_context("spawn")
        for rnd in range(2):
            jobs = []
            for student in ("ref-1", "blank-1", "ref-2", "blank-2"):
                files = tmp_path / f"round{rnd}" / student / "files"
                files.mkdir(parents=True)
                (files / "handler.py").write_text(handlers[student.split("-")[0]].read_text())
                jobs.append((student, str(files), str(files.parent / "deploy")))
            with ctx.Pool(2) as pool:
                results: list[Any] = pool.map(_grade, jobs)
            points = {student: pts for student, pts, _ in results}
            why = {student: msgs for student, _, msgs in results}
            assert points == {"ref-1": 5.0, "blank-1": 0.0, "ref-2": 5.0, "blank-2": 0.0}, (rnd, why)
            for student in ("ref-1", "ref-2"):
                assert not any("NotImplementedError" in m for m in why[student]), why[student]
    finally:
        if started:
            tl.stop(default)


def test_the_crash_watcher_reads_the_sandboxs_log_safely(tmp_path: Path) -> None:
    """The sandbox writes TorchServe's logs; the trusted side reads them without following a link put there (to
    /dev/zero, a host file) and never more than the tail."""
    import os

    from autograder.deploy.torchserve_check import LOG_TAIL_BYTES, _read_tail

    log = tmp_path / "model_log.log"
    os.symlink("/dev/zero", log)
    assert _read_tail(log) is None
    log.unlink()
    os.mkfifo(log)
    assert _read_tail(log) is None
    log.unlink()
    log.write_text("x" * (3 * LOG_TAIL_BYTES) + "\nMODEL_LOG - ValueError: boom\n")
    tail = _read_tail(log)
    assert tail is not None and len(tail) <= LOG_TAIL_BYTES and tail.endswith("ValueError: boom\n")
