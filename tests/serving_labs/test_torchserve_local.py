"""`python -m mlinfra.torchserve_local`: its config, its errors, and (with Java) a real start/predict/stop."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serving_helpers import CORRUPT_PNG, LAB05, ROOT, assess_all_but_latency, image_bytes

from mlinfra import torchserve_local as tl


def _props(text: str) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#") and "=" in line
    )
    return {k.strip(): v.strip() for k, v in pairs}


def test_config_binds_everything_to_loopback_and_disables_tokens(tmp_path: Path) -> None:
    dep = tl.Deployment(tmp_path, "digits", tl.Ports(18085, 18086, 18087, 17070, 17071))
    props = _props(tl.config_properties(dep))
    assert props["inference_address"] == "http://127.0.0.1:18085"
    assert props["management_address"] == "http://127.0.0.1:18086"
    assert props["metrics_address"] == "http://127.0.0.1:18087"
    assert props["grpc_inference_address"] == props["grpc_management_address"] == "127.0.0.1"
    assert (props["grpc_inference_port"], props["grpc_management_port"]) == ("17070", "17071")
    assert props["disable_token_authorization"] == "true"
    assert int(props["max_request_size"]) > 12 << 20, (
        "the handler, not the front end, refuses 12 MB (with a reason)"
    )
    assert tl.ports_from_config(tl.config_properties(dep)) == dep.ports


def test_lab_solution_config_matches_the_default_ports() -> None:
    text = (LAB05 / "config.properties").read_text()
    assert tl.ports_from_config(text) == tl.Ports()
    assert not any("0.0.0.0" in value for value in _props(text).values())


def test_missing_java_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tl.StartError, match="openjdk-17"):
        tl.java_executable()


def test_missing_model_says_make_model(tmp_path: Path) -> None:
    dep = tl.Deployment(tmp_path / "state", "digits", tl.Ports())
    with pytest.raises(tl.StartError, match="make model"):
        tl.archive(tmp_path / "no-model", dep)


def test_start_without_a_model_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: start stops at the Java check (covered above) before it looks for the model")
    code = tl.main(["start", "--state", str(tmp_path / "s"), "--model-dir", str(tmp_path / "no-model")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "make model" in err and "Traceback" not in err


def test_stop_and_status_when_nothing_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tl.main(["status", "--state", str(tmp_path)]) == 1
    assert tl.main(["stop", "--state", str(tmp_path)]) == 0
    assert "not running" in capsys.readouterr().out


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlinfra.torchserve_local", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.java
@pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason=tl.JAVA_HINT)
def test_start_predict_assess_stop(tiny_model: Path, tmp_path: Path) -> None:
    import httpx
    import psutil

    ports = [
        "--inference-port",
        "18085",
        "--management-port",
        "18086",
        "--metrics-port",
        "18087",
        "--grpc-port",
        "17070",
    ]
    common = ["--state", str(tmp_path / "ts"), *ports]
    started = _run("start", "--model-dir", str(tiny_model), *common)
    dep = tl.Deployment((tmp_path / "ts").resolve(), "digits", tl.Ports(18085, 18086, 18087, 17070, 17071))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        pid = tl.running_pid(dep)
        assert pid is not None
        java = psutil.Process(pid)
        family = [java, *java.children(recursive=True)]
        listening = [
            c.laddr for p in family for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN
        ]
        assert {a.port for a in listening} >= {18085, 18086, 18087, 17070, 17071}
        assert all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1") for a in listening), listening

        with httpx.Client(timeout=30) as client:
            good = client.post(dep.predict_url, content=image_bytes())
            assert good.status_code == 200 and len(good.json()) == 5
            multipart = client.post(
                dep.predict_url, files={"file": ("d.jpg", image_bytes("RGB", (50, 40), "JPEG"))}
            )
            assert multipart.status_code == 200
            assert client.post(dep.predict_url, content=b"plain text").status_code == 415
            assert client.post(dep.predict_url, content=CORRUPT_PNG).status_code == 400
            big = client.post(dep.predict_url, content=image_bytes() + b"\0" * (12 << 20))
            assert big.status_code == 413 and "limit" in big.json()["error"], big.text[:200]
            assert client.post(dep.predict_url, content=image_bytes()).status_code == 200, "still serving"

        assess_all_but_latency(["--torchserve", dep.inference_url, "--model", "digits"], ROOT, tmp_path)

        status = _run("status", *common)
        assert status.returncode == 0 and str(pid) in status.stdout
    finally:
        stopped = _run("stop", *common)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    _, alive = psutil.wait_procs(family, timeout=1)
    assert not alive, f"left running: {alive}"
    assert _run("status", *common).returncode == 1
