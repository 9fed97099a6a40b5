"""lab06: nothing a student's check made outlives the batch, even when the worker grading them is SIGKILLed mid-build
or mid-run (it cannot remove its own image, container or the builder's working container then): the batch's end
removes whatever carries the batch's label, build argument or tag prefix. `grade --keep-work` keeps them."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from autograder import container_engine as eng
from autograder.deploy import container_check

ROOT = Path(__file__).resolve().parents[2]
BASE = "python:3.11-slim-bookworm"
MARK = "4177"  # the sleep of the build killed midway: `sleep 31<MARK>` (no other test's)
SLEEP = f"31{MARK}"


def _dockerfile(host: str, *middle: str) -> str:
    server = (f'CMD ["python", "-c", "import http.server as s; s.HTTPServer((\'{host}\', 8000), '
              f's.BaseHTTPRequestHandler).serve_forever()"]')
    return "\n".join([f"FROM {BASE}", *middle, "EXPOSE 8000", server]) + "\n"


def _engine_or_skip() -> eng.Engine:
    from autograder.errors import UsageError

    try:
        return eng.detect(ROOT)
    except UsageError as exc:
        pytest.skip(f"no container engine: {exc}")


def _left(engine: eng.Engine, batch: str) -> list[str]:
    """Everything of the batch still in the engine's storage, or still running."""
    label = f"label={eng.BATCH_LABEL}={batch}"
    left = engine.run("ps", "-a", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split()
    left += engine.run("images", "-a", "-q", "--filter", label, check=False).stdout.split()
    left += [t for t in engine.run("images", "--format", "{{.Repository}}", check=False).stdout.split()
             if f"{container_check.TAG_PREFIX}{batch}" in t]
    graph = engine.run("info", "--format", "{{.Store.GraphRoot}} {{.Store.GraphDriverName}}", check=False).stdout
    if engine.name == "podman" and len(graph.split()) == 2:
        states = Path(graph.split()[0]).glob(f"{graph.split()[1]}-containers/*/userdata/buildah.json")
        left += [f"working container {s.parts[-3][:12]}" for s in states if batch in s.read_text(errors="replace")]
    left += [f"pid {p.pid}" for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[-1] == SLEEP]
    return left


def _worker_of(pid: int) -> int:
    """The grading worker (a child of this test's process) above `pid`."""
    proc = psutil.Process(pid)
    while proc.ppid() != os.getpid():
        proc = proc.parent()
        assert proc is not None, f"{pid} is not under a grading worker of this test"
    return proc.pid


@pytest.mark.slow
@pytest.mark.container
def test_workers_killed_mid_build_and_mid_run_leave_nothing_of_the_batch(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         placeholder_model: Path) -> None:
    from graded_samples import Sample, build_submission, lab_source

    from autograder.dockerfile.build import Caps
    from autograder.grading.engine import grade_class

    engine = _engine_or_skip()
    source = lab_source("lab06-docker")
    subs = tmp_path / "subs"
    # one student's build sleeps in a RUN step; the other's image builds at once and listens on the container's
    # own loopback, so it is never healthy from outside (its retry ends quickly)
    for name, text in (("building", _dockerfile("0.0.0.0", f"RUN sleep {SLEEP}")),
                       ("running", _dockerfile("127.0.0.1"))):
        build_submission(Sample("lab06-docker", name, "", files={"Dockerfile": text}), source, subs / name)
    killed = tmp_path / "killed"
    held = tmp_path / "held-by"
    original = eng.wait_healthy

    def hold(container: Any, probe: Any, timeout: float) -> float:
        """In the worker (forked from this process, so it inherits the patch): say which process is waiting on a
        running container, then wait to be killed; once the workers were killed (the retry), wait as usual."""
        if not killed.exists():
            held.write_text(str(os.getpid()))
            time.sleep(600)
        return original(container, probe, timeout)

    monkeypatch.setattr(eng, "wait_healthy", hold)
    monkeypatch.setattr(container_check, "HEALTH_TIMEOUT_S", 5.0)
    # the retry of the build killed midway is stopped at its time limit, not after the sleep
    monkeypatch.setattr(container_check, "caps", lambda: Caps(build_s=5.0 if killed.exists() else 600.0))
    # the images never load a model: files with its names will do (no stand-in made, no torch imported)
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(placeholder_model))
    out = tmp_path / "out"
    box: dict[str, Any] = {}

    def grade() -> None:
        try:
            box["batch"] = grade_class(source, subs, out, workers=2)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=grade, daemon=True)
    thread.start()
    batch = ""
    deadline = time.monotonic() + 600
    sleeper = None
    while time.monotonic() < deadline and "error" not in box and (sleeper is None or not held.exists()):
        sleeper = next((p.pid for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[-1] == SLEEP),
                       None)
        time.sleep(0.1)
    assert "error" not in box, box.get("error")
    assert sleeper is not None and held.exists(), "the two checks never reached their build and their run"
    batch = container_check.batch_id(out / "work")
    label = f"label={eng.BATCH_LABEL}={batch}"
    running = engine.run("ps", "--filter", label, "--format", "{{.Names}}", check=False).stdout.split()
    assert len(running) == 1, running  # the second student's container runs, and carries the batch's label
    killed.touch()
    for pid in (_worker_of(sleeper), int(held.read_text())):
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    graded = box["batch"]
    assert sorted(p.subject for p in graded.parts) == ["building", "running"]
    assert (out / "grades.csv").is_file()
    assert _left(engine, batch) == []


def test_the_sweep_asks_no_engine_for_other_labs_or_when_work_is_kept(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from autograder.grading.plan import BatchPlan

    def no_engine(root: Path) -> None:
        raise AssertionError("the engine was asked")

    monkeypatch.setattr(eng, "detect", no_engine)
    lab01 = BatchPlan("lab01-environment", str(ROOT / "solutions" / "lab01-environment"), str(tmp_path), "none", {})
    assert container_check.sweep_batch(lab01) == []
    kept = BatchPlan("lab06-docker", str(ROOT / "solutions" / "lab06-docker"), str(tmp_path), "none", {},
                     keep_work=True)
    assert container_check.sweep_batch(kept) == []
    kept.keep_work = False
    with pytest.raises(AssertionError, match="engine was asked"):
        container_check.sweep_batch(kept)


def test_every_check_of_a_batch_has_the_batchs_id(tmp_path: Path) -> None:
    work = tmp_path / "out" / "work"
    scratch = work / "sandboxes" / "0123456789ab" / "deploy"
    scratch.mkdir(parents=True)
    (work / "plan.json").write_text("{}")
    assert container_check.batch_id(scratch) == container_check.batch_id(work)
    assert container_check.batch_id(tmp_path / "elsewhere") != container_check.batch_id(work)
