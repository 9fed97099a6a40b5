"""lab06 graded by deploying (autograder.deploy.container): the learner's image built, run on 127.0.0.1 and scored
with `autograder assess`'s five requirements, plus a point for the build; skipped, with the reason, without an
engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autograder.deploy import container

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "solutions" / "lab06-docker"
NAMES = ["container: image builds", "container: reachable over HTTP",
         "container: processes PNG/JPEG, grey/colour, 28-224 px", "container: predictions with confidences",
         "container: latency under 500 ms", "container: bad input gets a 4xx, keeps serving"]


def test_engine_hidden_skips_all_six_points_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOGRADER_HIDE_ENGINES", "java, container")
    checks = container(None, LAB, tmp_path)
    assert [c.name for c in checks] == NAMES
    assert {c.status for c in checks} == {"skipped"}
    assert sum(c.points for c in checks) == 0 and sum(c.max_points for c in checks) == 6
    assert "image not built" in checks[0].message and "AUTOGRADER_HIDE_ENGINES" in checks[0].message


def test_no_engine_skips_and_says_make_container_engine(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOGRADER_ENGINE", "docker")
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    checks = container(None, LAB, tmp_path)
    assert [c.name for c in checks] == NAMES and {c.status for c in checks} == {"skipped"}
    assert sum(c.points for c in checks) == 0
    assert "no container engine answers" in checks[0].message and "make container-engine" in checks[0].message


def _engine_or_skip() -> None:
    from autograder.container_engine import detect
    from autograder.errors import UsageError

    try:
        detect(ROOT)
    except UsageError as exc:
        pytest.skip(f"no container engine: {exc}")


@pytest.mark.slow
@pytest.mark.container
def test_grading_builds_and_assesses_the_image_and_a_hidden_engine_skips_with_the_reason(tmp_path: Path) -> None:
    """A real `autograder grade` of lab06 (the deploy check in lab.yaml): the reference's image builds, runs and
    passes the five requirements (6 of 6 deploy points, on top of the notebook's tests); graded again with the
    engine hidden, those 6 points are skipped, 0, with the reason. A build from the layer cache takes seconds to a
    minute; the first build on a machine installs the dependencies (minutes)."""
    from graded_samples import REFERENCE, build_submission, lab_source

    from autograder.grading.engine import grade_class

    _engine_or_skip()
    source = lab_source("lab06-docker")
    subs = tmp_path / "subs"
    build_submission(None, source, subs / REFERENCE)
    for hide, expected in (("", [("passed", 1.0, 1.0)] * 6), ("container", [("skipped", 0.0, 1.0)] * 6)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("AUTOGRADER_HIDE_ENGINES", hide)
            # The stand-in model: on a machine shared by parallel jobs ResNet-18 can miss the latency bar, and the
            # image, not the model, is under test.
            mp.setenv("MLINFRA_MODEL_DIR", str(tmp_path / "no-model-here"))
            batch = grade_class(source, subs, tmp_path / f"out-{hide or 'engine'}", workers=1)
        tests = batch.data["tests"]
        [ref] = batch.parts
        assert {c.name: c.points for c in ref.checks if c.name in tests} == tests, ref.notes
        got = [c for c in ref.checks if c.name in NAMES]
        assert [c.name for c in got] == NAMES
        assert [(c.status, c.points, c.max_points) for c in got] == expected, [c.message for c in got]
        if hide:
            assert "image not built" in got[0].message


@pytest.mark.slow
@pytest.mark.container
def test_an_image_listening_on_its_own_loopback_keeps_only_the_build_point(tmp_path: Path, monkeypatch,
                                                                          placeholder_model: Path) -> None:
    """A server on 127.0.0.1 inside the container (the sample listens-on-container-loopback.yaml: uvicorn --host
    127.0.0.1): it builds (1 point) but nothing outside reaches it. The image here is the course's base with a
    stdlib server bound the same way: the port publishing is under test, not the sample's dependencies (installing
    them took a minute and a half of this test)."""
    _engine_or_skip()
    # the image never loads a model: files with the model's names are enough (no stand-in made, no torch imported)
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(placeholder_model))
    # it never answers: do not wait 3 minutes
    monkeypatch.setattr("autograder.deploy.container_check.HEALTH_TIMEOUT_S", 10.0)
    sample = yaml.safe_load((ROOT / "tests" / "samples" / "lab06-docker" /
                             "listens-on-container-loopback.yaml").read_text())
    assert '"--host", "127.0.0.1"' in sample["files"]["Dockerfile"]
    files = tmp_path / "loopback"
    files.mkdir()
    (files / "Dockerfile").write_text(
        "FROM python:3.11-slim-bookworm\nEXPOSE 8000\n"
        'CMD ["python", "-c", "import http.server as s; '
        "s.HTTPServer(('127.0.0.1', 8000), s.SimpleHTTPRequestHandler).serve_forever()\"]\n")
    (files / ".dockerignore").write_text((LAB / ".dockerignore").read_text())
    bad = container(None, files, tmp_path / "loopback-work")
    assert [c.status for c in bad] == ["passed"] + ["failed"] * 5, [c.message for c in bad]
    assert sum(c.points for c in bad) == 1 and "not healthy" in bad[1].message, bad[1].message
