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


@pytest.mark.slow
def test_the_solution_image_scores_6_and_one_on_container_loopback_only_the_build(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    """Builds twice (minutes the first time on a machine, seconds with the layer cache), runs, assesses."""
    from autograder.dockerfile.engine import detect
    from autograder.errors import UsageError

    try:
        detect(ROOT)
    except UsageError as exc:
        pytest.skip(f"no container engine: {exc}")
    good = container(None, LAB, tmp_path / "good")
    assert [(c.status, c.points) for c in good] == [("passed", 1.0)] * 6, [c.message for c in good]

    monkeypatch.setattr("autograder.deploy.HEALTH_TIMEOUT_S", 30.0)  # it never answers: do not wait 3 minutes
    sample = yaml.safe_load((ROOT / "tests" / "samples" / "lab06-docker" /
                             "listens-on-container-loopback.yaml").read_text())
    files = tmp_path / "loopback"
    files.mkdir()
    for name in ("Dockerfile", "requirements.txt"):
        (files / name).write_text(sample.get("files", {}).get(name) or (LAB / name).read_text())
    (files / ".dockerignore").write_text((LAB / ".dockerignore").read_text())
    bad = container(None, files, tmp_path / "loopback-work")
    assert [c.status for c in bad] == ["passed"] + ["failed"] * 5, [c.message for c in bad]
    assert sum(c.points for c in bad) == 1 and "not healthy" in bad[1].message, bad[1].message
