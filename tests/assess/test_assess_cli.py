"""`autograder assess` end to end: real uvicorn subprocesses, real HTTP on 127.0.0.1.

The reference service must pass; each known-bad service in services/ must fail exactly its requirement and pass
the others, so every requirement is shown to have teeth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autograder.cli import main

SERVICES = Path(__file__).parent / "services"

pytestmark = pytest.mark.slow


def assess(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "result.json"
    code = main(["assess", *args, "--json", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else {})


def failed_criteria(result: dict) -> list[int]:
    return [c["number"] for c in result["criteria"] if not c["passed"]]


def test_reference_service_passes(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    # One torch thread: a crowded CI machine must not turn an OpenMP barrier into a latency failure.
    monkeypatch.setenv("MLINFRA_TORCH_THREADS", "1")
    report = tmp_path / "out" / "assessment.md"
    code, result = assess(tmp_path, "--app", "mlinfra.service:app", "--report", str(report))
    assert code == 0, capsys.readouterr()
    assert result["passed"] and result["score"] == result["max_score"] == 100
    assert failed_criteria(result) == []
    sizes = result["latency"]["sizes"]
    assert [s["size"] for s in sizes] == ["28x28", "224x224"]
    assert all(len(s["samples_ms"]) >= 50 and s["p95"] < 500 for s in sizes)
    assert result["latency"]["concurrency"]["errors"] == []
    text = report.read_text()
    assert "Practical assessment: passed" in text and "| 4 | Latency" in text
    assert (report.parent / "assessment-latency.png").stat().st_size > 1000
    assert "PASSED" in capsys.readouterr().out
    assert [c["status"] for c in result["checks"][:5]] == ["passed"] * 5
    assert result["breakdown"]["reason"] is None and "## Where the latency goes" in text


@pytest.mark.parametrize(
    "service,failing,evidence",
    [
        ("slow.py", 4, "p95 at 28x28 PNG"),
        ("crash_on_corrupt.py", 5, "corrupt image"),
        ("no_confidence.py", 3, "schema"),
        ("out_of_range.py", 3, "confidences in [0, 1]"),
        ("dies_on_bad_input.py", 5, "not an image"),
    ],
)
def test_known_bad_service_fails_exactly_its_requirement(
    tmp_path: Path, service: str, failing: int, evidence: str
) -> None:
    code, result = assess(tmp_path, "--app", f"{SERVICES / service}:app", "--no-breakdown")
    assert code == 1
    assert failed_criteria(result) == [failing], json.dumps(result["criteria"], indent=1)
    crit = result["criteria"][failing - 1]
    assert crit["points"] < crit["max_points"]
    assert any(ch["name"] == evidence and not ch["passed"] for ch in crit["checks"]), crit["checks"]
    assert result["score"] == 100 - (crit["max_points"] - crit["points"])
    if service == "slow.py":  # stopped early: 3 requests over the limit, and 224 px never measured
        (size,) = result["latency"]["sizes"]
        assert size["stopped_early"] and len(size["samples_ms"]) == 3 and min(size["samples_ms"]) >= 500


def test_a_service_that_cannot_import_never_comes_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = assess(tmp_path, "--app", f"{SERVICES / 'import_error.py'}:app")
    assert code == 1
    assert failed_criteria(result) == [1, 2, 3, 4, 5] and result["score"] == 0
    assert "exited" in result["criteria"][0]["verdict"]
    assert any("no_such_module" in line for line in result["server_log"])
    assert "no_such_module" in capsys.readouterr().out  # the learner sees the cause


def test_a_service_stuck_on_503_fails_fast_with_its_reason(tmp_path: Path) -> None:
    """/health keeps answering the same 503: assess stops after a few seconds, quoting the service's reason."""
    import time

    start = time.monotonic()
    code, result = assess(
        tmp_path, "--app", f"{SERVICES / 'never_healthy.py'}:app", "--startup-timeout", "120"
    )
    assert code == 1 and result["score"] == 0
    verdict = result["criteria"][0]["verdict"]
    assert "503" in verdict and "the model never loads" in verdict, verdict
    assert time.monotonic() - start < 90, "it waited for the whole start-up timeout"


def lab_workbook(tmp_path: Path, model: Path) -> Path:
    """A minimal workbook: the markers, labs/, the course model under models/, the lab's app in workspace/."""
    import shutil

    root = tmp_path / "workbook"
    (root / "labs").mkdir(parents=True)
    for marker in ("pyproject.toml", "Makefile"):
        (root / marker).write_text("")
    shutil.copytree(model, root / "models" / "digits-resnet18")
    lab = root / "workspace" / "lab07-api"
    lab.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[2] / "solutions" / "lab07-api" / "app.py", lab / "app.py")
    return root


def test_assess_from_the_lab_folder_finds_the_model_and_shows_where_latency_goes(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`assess --app app.py:app` run inside workspace/lab07-api: the model comes from the workbook's models/."""
    root = lab_workbook(tmp_path, tiny_model)
    monkeypatch.delenv("MLINFRA_MODEL_DIR", raising=False)
    monkeypatch.setenv("WORKBOOK_ROOT", str(root))
    monkeypatch.chdir(root / "workspace" / "lab07-api")
    report = tmp_path / "out" / "assessment.md"
    _, result = assess(tmp_path, "--app", "app.py:app", "--requests", "20", "--report", str(report))
    assert result["criteria"][0]["passed"], result["criteria"][0]["verdict"]
    assert failed_criteria(result) in ([], [4]), failed_criteria(result)  # latency is wall time: never asserted
    if failed_criteria(result) == []:
        b = result["breakdown"]
        assert b["reason"] is None and b["model_dir"] == str(root / "models" / "digits-resnet18")
        assert [s["size"] for s in b["sizes"]] == ["28x28", "224x224"]
        assert all(s["raw_p50_ms"] > 0 and s["served_p50_ms"] > 0 for s in b["sizes"])
        assert [t["clients"] for t in b["throughput"]] == [1, 4, 8]
        info = [c for c in result["checks"] if c["status"] == "info"]
        assert len(info) == 3 and all(c["points"] == c["max_points"] == 0 for c in info)
        assert (report.parent / "assessment-throughput.png").stat().st_size > 1000
    text = report.read_text()
    assert "## Where the latency goes" in text and "Information only" in text


def test_breakdown_says_why_when_the_model_cannot_be_loaded(tmp_path: Path) -> None:
    """A service whose model assess cannot load: the section is there and says why; the score is untouched."""
    empty = tmp_path / "no-model"
    empty.mkdir()
    report = tmp_path / "out" / "a.md"
    code, result = assess(
        tmp_path, "--app", f"{SERVICES / 'good_fake.py'}:app", "--requests", "20",
        "--model-dir", str(empty), "--report", str(report),
    )
    assert result["criteria"][0]["passed"]
    assert result["max_score"] == 100
    if failed_criteria(result) == []:  # latency is wall time: only then is the breakdown attempted
        assert code == 0 and result["score"] == 100
        assert "lacks model.pt" in result["breakdown"]["reason"]
        (info,) = [c for c in result["checks"] if c["status"] == "info"]
        assert info["message"].startswith("not measured")
    text = report.read_text()
    assert "## Where the latency goes" in text and "Not measured" in text


def test_url_mode_and_the_torchserve_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autograder.assess.server import AppSpec, UvicornServer, wait_until_ready
    from autograder.assess.targets import new_client, send

    with UvicornServer(AppSpec.parse(f"{SERVICES / 'fake_torchserve.py'}:app")) as server:
        server.start()
        with new_client() as client:
            assert wait_until_ready(
                lambda: send(client, "GET", server.url + "/ping"), 30, server.exit_code
            ).ready
        code, result = assess(tmp_path, "--torchserve", server.url, "--model", "digits")
        assert code == 0, json.dumps(result["criteria"], indent=1)
        assert result["target"]["kind"] == "torchserve"
        # A model name TorchServe does not know: /ping is fine, predictions 404, so it is never ready.
        code, result = assess(
            tmp_path, "--torchserve", server.url, "--model", "nope", "--startup-timeout", "1"
        )
        assert code == 1 and "404" in result["criteria"][0]["verdict"]
        # The same server is no contract service: --url finds no /health.
        code, result = assess(tmp_path, "--url", server.url, "--startup-timeout", "1")
        assert code == 1 and "404" in result["criteria"][0]["verdict"]


def test_torchserve_ping_alone_is_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autograder.assess.server import AppSpec, UvicornServer

    monkeypatch.setenv("FAKE_TS_BROKEN_WORKER", "1")  # /ping Healthy, every prediction 503
    with UvicornServer(AppSpec.parse(f"{SERVICES / 'fake_torchserve.py'}:app")) as server:
        server.start()
        code, result = assess(
            tmp_path, "--torchserve", server.url, "--model", "digits", "--startup-timeout", "8"
        )
    assert code == 1 and "503" in result["criteria"][0]["verdict"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--app", "no/such/file.py:app"], "no file"),
        (["--app", "no_such_module_here:app"], "no module named"),
        (["--app", "app.py:not-an-attr"], "expected MODULE:ATTR"),
        (["--torchserve", "http://127.0.0.1:9"], "--model"),
        (["--url", "127.0.0.1:8000"], "not an http"),
        (["--url", "http://127.0.0.1:9", "--requests", "5"], "at least 20"),
        (["--url", "http://127.0.0.1:9", "--report", "out.html"], ".md"),
        (["--url", "http://127.0.0.1:9", "--report", "/proc/no/report.md"], "cannot write /proc/no"),
        (["--url", "http://127.0.0.1:9", "--json", "/proc/result.json"], "cannot write /proc"),
        (["--pack", "/nonexistent/alice-practical.zip"], "not found"),
    ],
)
def test_commands_that_cannot_run_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["assess", *args]) == 2
    assert message in capsys.readouterr().err
