"""The lab05 deploy check gives each student their own deployment. lab05 is graded whole (the notebook's tests and
the deploy check: `autograder grade`'s batch path, as an instructor runs it) for four students side by side (two
workers) while a TorchServe already serves on the machine's default ports, twice: the references get 16 of 16 and
the blanks 0 of 16, every time.

Before each check had a temporary folder of its own, torch-model-archiver staged every archive named "digits" in
the same <temp>/digits folder, so a reference could be deployed with a blank's handler (and lose its points, with
the blank's error in its feedback) and the other way round. That race is timing-dependent; the test makes the shared
staging place busy for the whole run, so a check that still uses it fails every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from graded_samples import build_submission, lab_source, load_samples
from serving_helpers import image_bytes

from mlinfra import torchserve_local as tl

STUDENTS = ("ref-1", "blank-1", "ref-2", "blank-2")
LAB05_POINTS = 16.0  # the notebook's 11 and the deploy check's 5


def _java() -> str:
    try:
        tl.java_executable()
    except tl.StartError:
        return "needs Java 17 for TorchServe (apt-get install openjdk-17-jre-headless)"
    return ""


def _default_answers(dep: tl.Deployment) -> int:
    import httpx

    return httpx.post(dep.predict_url, content=image_bytes(), timeout=30).status_code


@pytest.mark.slow
@pytest.mark.java
@pytest.mark.skipif(bool(_java()), reason=_java())
def test_four_students_two_workers_beside_a_default_torchserve(tiny_model: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    from autograder.grading.engine import grade_class

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    # The machine's temporary folder, as every process here sees it (a folder of the test's own, so nothing outside
    # the test is touched).
    shared = tmp_path / "machine-tmp"
    shared.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared))
    source = lab_source("lab05-torchserve")
    blank = next(s for s in load_samples("lab05-torchserve") if s.name == "blank")
    subs = tmp_path / "subs"
    for student in STUDENTS:
        build_submission(None if student.startswith("ref") else blank, source, subs / student)
    # A TorchServe on the default ports with the reference handler, as `make torchserve` runs it (unless one
    # already serves there: the condition holds either way).
    default = tl.Deployment(state=tmp_path / "default-ts", name="digits", ports=tl.Ports())
    started = not any(tl._port_in_use(p) for p in default.ports.all().values())
    java = None
    try:
        if started:
            tl.start(default, tiny_model, timeout=180, handler=source.folder / "handler.py")
            java = tl.running_pid(default)
        # Something else stages an archive named "digits" in the machine's temporary folder right now (another
        # student's check, `make torchserve`): a check that stages there too fails or ships the wrong handler.
        (shared / "digits").write_text("another archive being staged")
        for rnd in range(2):
            batch = grade_class(source, subs, tmp_path / f"out-{rnd}", workers=2)
            assert sum(batch.data["tests"].values()) + 5 == LAB05_POINTS
            scores = {o.subject: (o.score, o.max_score) for o in batch.parts}
            why = {o.subject: [f"{c.name}: {c.message[:160]}" for c in o.checks if c.points < c.max_points]
                   for o in batch.parts}
            expected = {s: (LAB05_POINTS if s.startswith("ref") else 0.0, LAB05_POINTS) for s in STUDENTS}
            assert scores == expected, (rnd, why)
            for o in batch.parts:
                deploy = [c for c in o.checks if c.name.startswith("TorchServe: ")]
                assert len(deploy) == 5, (o.subject, [c.name for c in o.checks])
                if o.subject.startswith("blank"):  # failed by its own handler, not skipped or lost to the machine
                    assert all("NotImplementedError" in c.message for c in deploy), [c.message for c in deploy]
                else:
                    assert not any("NotImplementedError" in " ".join(o.notes + [c.message]) for c in o.checks)
            if started:
                assert _default_answers(default) == 200, "the machine's own TorchServe kept serving"
        assert (shared / "digits").read_text() == "another archive being staged"
    finally:
        if started:
            tl.stop(default)
            if java is not None and psutil.pid_exists(java):  # by its pid: only what this test started
                psutil.Process(java).kill()


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
