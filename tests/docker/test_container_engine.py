"""The container engine's one home (autograder/container_engine.py), without an engine: the options a graded
container gets, what a batch's end removes, the seccomp profile, and that no other module of the grader runs
podman or docker itself. The real engine is exercised by the other tests here (marked `container`)."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from autograder import container_engine as eng

ROOT = Path(__file__).resolve().parents[2]


class Recorder(eng.Engine):
    """An engine that runs nothing: it records each command and answers from `replies` (by the command's first
    words), exit 0 and no output otherwise."""

    def __init__(self, name: str, replies: dict[tuple[str, ...], str] | None = None) -> None:
        super().__init__(name)
        self.calls: list[tuple[str, ...]] = []
        self.replies = replies or {}

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        out = next((text for start, text in self.replies.items() if args[:len(start)] == start), "")
        return subprocess.CompletedProcess(list(args), 0, stdout=out, stderr="")


def _run_options(engine: Recorder) -> list[str]:
    return [a for call in engine.calls if call[0] == "run" for a in call]


@pytest.fixture
def no_seccomp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(eng, "_DEFAULT_SECCOMP", tmp_path / "absent.json")


@pytest.mark.usefixtures("no_seccomp")
def test_a_graded_container_is_hardened_labelled_and_given_a_lifetime_on_podman() -> None:
    podman = Recorder("podman")
    container = eng.run_container(podman, "img:1", 8000, extra=("--memory=64m",), hardened=True, lifetime=90.5,
                                  batch="b42")
    args = _run_options(podman)
    assert args[-1] == "img:1" and f"127.0.0.1:{container.port}:8000" in args
    for option in (["--memory=64m"], ["--cap-drop", "all"], ["--security-opt", "no-new-privileges"],
                   ["--timeout", "90"], ["--label", f"{eng.BATCH_LABEL}=b42"], ["--network=slirp4netns"]):
        assert any(args[i:i + len(option)] == option for i in range(len(args))), (option, args)


@pytest.mark.usefixtures("no_seccomp")
def test_docker_gets_no_lifetime_and_an_ungraded_container_no_hardening() -> None:
    docker = Recorder("docker")
    eng.run_container(docker, "img:1", 8000, hardened=True, lifetime=90)
    assert "--timeout" not in _run_options(docker) and "--cap-drop" in _run_options(docker)
    plain = Recorder("podman")
    eng.run_container(plain, "img:1", 8000)
    assert not {"--timeout", "--cap-drop", "--label"} & set(_run_options(plain))


def test_a_batch_end_removes_what_carries_the_batch_and_nothing_else() -> None:
    label = f"label={eng.BATCH_LABEL}=abc"
    engine = Recorder("docker", {
        ("ps", "--all", "--filter", label): "left-1\nleft-2\n",
        ("images", "--format"): "localhost/autograder-grade/abc-1f:latest\nlocalhost/autograder-grade/abz-2:latest\n"
                                "localhost/someone/abc-3:latest\n",
        ("images", "-a", "-q", "--filter", label): "id9\nid9\n",
    })
    removed = eng.remove_batch(engine, "abc", "autograder-grade/")
    assert removed == ["container left-1", "container left-2", "image localhost/autograder-grade/abc-1f:latest",
                       "image id9"]
    assert ("rm", "--force", "--time", "0", "left-1") in engine.calls
    assert [c[-1] for c in engine.calls if c[0] == "rmi"] == ["localhost/autograder-grade/abc-1f:latest", "id9"]


def test_the_seccomp_profile_refuses_user_namespaces(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    default = tmp_path / "seccomp.json"
    default.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "clone", "unshare", "clone3"], "action": "SCMP_ACT_ALLOW"}]}))
    monkeypatch.setattr(eng, "_DEFAULT_SECCOMP", default)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    options = eng.hardened_options()
    assert options[-2] == "--security-opt" and options[-1].startswith("seccomp=")
    rules = json.loads(Path(options[-1].removeprefix("seccomp=")).read_text())["syscalls"]
    assert rules[0]["names"] == ["read"]  # allowed outright no more
    masked = next(r for r in rules if "unshare" in r["names"])
    assert masked["args"] == [{"index": 0, "value": 0x10000000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert next(r for r in rules if r["names"] == ["clone3"])["errnoRet"] == 38


def _engine_commands(path: Path) -> list[int]:
    """Lines where `path` spells out a podman or docker command line itself (a list or tuple starting with
    the engine's name)."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.List, ast.Tuple)) and node.elts and isinstance(node.elts[0], ast.Constant)
            and node.elts[0].value in ("podman", "docker")]


def test_only_the_container_engine_runs_podman_or_docker(tmp_path: Path) -> None:
    home = ROOT / "autograder" / "container_engine.py"
    elsewhere = [f"{p.relative_to(ROOT)}:{line}" for p in sorted((ROOT / "autograder").rglob("*.py")) if p != home
                 for line in _engine_commands(p)]
    assert elsewhere == [], "run the engine through autograder/container_engine.py (Engine.run, build, ...)"
    sample = tmp_path / "x.py"
    sample.write_text('import subprocess\nsubprocess.run(["podman", "ps"])\n')
    assert _engine_commands(sample) == [2]
    assert _engine_commands(home)  # its own _answers(["docker", "info"]): the check sees it


def test_a_builds_writes_are_measured_even_when_the_file_system_shrinks_beside_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Red team 3's disk filler, while other work on the same file system deletes as much as the build writes (a
    test run's temporary folders, another build): the file system's total does not grow, so the watch must still
    measure the build's own upper folder from time to time, and stop it past its budget."""
    import os
    import threading
    import time

    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "filler").write_bytes(os.urandom(3 << 20))  # 3 MB written by the "RUN step"
    flat = os.statvfs(str(tmp_path))
    monkeypatch.setattr(eng.os, "statvfs", lambda path: flat)  # nothing changes, as seen from the file system
    monkeypatch.setattr(eng, "_upper_dirs", lambda cgroup: {str(upper)})
    said: list[str] = []
    done = threading.Event()
    watch = threading.Thread(target=eng._watch_disk, args=(str(tmp_path), eng.BuildLimits(disk_mb=2), "cg", done,
                                                           said.append), kwargs={"scan_every": 1.5}, daemon=True)
    began = time.monotonic()
    watch.start()
    watch.join(timeout=10)
    done.set()
    assert said and "wrote over 2 MB (the disk limit of a graded build: 3 MB)" in said[0], said
    assert time.monotonic() - began < 5
