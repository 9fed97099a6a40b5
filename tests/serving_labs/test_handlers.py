"""The TorchServe handlers, in-process (no Java): the reference one in mlinfra and the lab's solution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serving_helpers import CORRUPT_PNG, LAB05, FakeContext, image_bytes, load_file, make_model

# torch 2.14 calls TorchScript deprecated; the course still ships models in it (see mlinfra.modelstore).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


def reference_handler() -> Any:
    from mlinfra.torchserve_handler import CourseModelHandler

    return CourseModelHandler()


def lab_handler() -> Any:
    return load_file(LAB05 / "handler.py", "lab05_handler").DigitsHandler()


@pytest.fixture(params=["reference", "lab05-solution"])
def handler(request: pytest.FixtureRequest, tiny_model: Path) -> Any:
    instance = reference_handler() if request.param == "reference" else lab_handler()
    instance.initialize(FakeContext(tiny_model))
    return instance


def test_good_images_get_top5_softmax_sorted(handler: Any, tiny_model: Path) -> None:
    import io

    import torch
    from PIL import Image

    from mlinfra.modelstore import load_model, preprocess, top_k

    images = [image_bytes(), image_bytes("RGBA", (300, 200)), image_bytes("RGB", (64, 48), "JPEG")]
    ctx = FakeContext(tiny_model)
    answers = handler.handle([{"data": images[0]}, {"body": bytearray(images[1])}, {"file": images[2]}], ctx)
    assert ctx.statuses == {} or all(code == 200 for code, _ in ctx.statuses.values())
    model = load_model(tiny_model)
    for payload, answer in zip(images, answers, strict=True):
        with torch.inference_mode():
            expected = top_k(
                model.module(preprocess(Image.open(io.BytesIO(payload)), model.card))[0], model.labels
            )
        assert list(answer) == [e["label"] for e in expected]
        assert all(abs(answer[e["label"]] - e["confidence"]) < 1e-5 for e in expected)


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"", 400),
        (b"plain text, not an image", 415),
        (b"GIF89a\x01\x00", 415),
        (CORRUPT_PNG, 400),
        (b"\xff\xd8\xff\xe0" + b"\x13" * 99, 400),
        (image_bytes("RGB", (64, 64))[:-40], 400),
    ],
    ids=["empty", "text", "gif", "corrupt-png", "corrupt-jpeg", "truncated-png"],
)
def test_bad_input_gets_a_4xx_not_an_exception(
    handler: Any, tiny_model: Path, payload: bytes, status: int
) -> None:
    ctx = FakeContext(tiny_model)
    answers = handler.handle([{"data": image_bytes()}, {"data": payload}], ctx)
    assert len(answers) == 2, "one answer per request, in order"
    assert ctx.status(0) == 200 and len(answers[0]) == 5, "the good request in the batch is still answered"
    assert ctx.status(1) == status and ctx.statuses[1][1], "the bad one gets its status and a reason phrase"
    assert answers[1]["code"] == status and answers[1]["error"]


def test_a_batch_of_only_bad_requests_does_not_run_the_model(handler: Any, tiny_model: Path) -> None:
    ctx = FakeContext(tiny_model)
    handler.model = None  # would raise if inference ran
    answers = handler.handle([{"data": b""}, {"data": b"nope"}], ctx)
    assert [ctx.status(0), ctx.status(1)] == [400, 415] and len(answers) == 2


def test_k_is_min_of_5_and_classes(tmp_path: Path) -> None:
    three = make_model(tmp_path / "three", classes=3)
    for instance in (reference_handler(), lab_handler()):
        instance.initialize(FakeContext(three))
        answer = instance.handle([{"data": image_bytes()}], FakeContext(three))[0]
        assert len(answer) == 3 and abs(sum(answer.values()) - 1) < 1e-5


def test_each_handler_file_defines_exactly_one_class() -> None:
    """TorchServe instantiates the one class a handler module defines; with two it refuses to load."""
    import inspect

    import mlinfra.torchserve_handler as reference

    for module in (reference, load_file(LAB05 / "handler.py", "lab05_handler_classes")):
        defined = [
            c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__
        ]
        assert len(defined) == 1, defined


# ---------------------------------------------------------------------------------------------- graded by deploying
# autograder.deploy.torchserve: after the notebook is graded, the learner's handler.py in a real TorchServe, scored
# with `autograder assess`'s five requirements (1 point each); where Java is missing, 5 skipped checks, 0 points.


def _deploy(files: Path, work: Path) -> list[Any]:
    from autograder.deploy import torchserve

    work.mkdir(parents=True, exist_ok=True)
    return torchserve(None, files, work)


def test_deploy_with_java_hidden_skips_every_point_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AUTOGRADER_HIDE_ENGINES", "java")
    checks = _deploy(LAB05, tmp_path)
    assert [c.status for c in checks] == ["skipped"] * 5
    assert sum(c.points for c in checks) == 0 and sum(c.max_points for c in checks) == 5
    assert all("TorchServe not run" in c.message and "AUTOGRADER_HIDE_ENGINES" in c.message for c in checks)


def test_deploy_without_java_says_install_java_17(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    checks = _deploy(LAB05, tmp_path / "work")
    assert {c.status for c in checks} == {"skipped"} and sum(c.points for c in checks) == 0
    assert "no Java on this machine; install Java 17" in checks[0].message


def test_deploy_without_a_handler_fails_every_point(tmp_path: Path) -> None:
    checks = _deploy(tmp_path, tmp_path / "work")
    assert {c.status for c in checks} == {"failed"} and sum(c.points for c in checks) == 0
    assert "no handler.py" in checks[0].message


@pytest.mark.slow
@pytest.mark.java
def test_grading_deploys_each_handler_and_hidden_java_skips_with_the_reason(tmp_path: Path) -> None:
    """A real `autograder grade` of lab05 (the deploy check in lab.yaml): the reference scores the notebook's tests
    and 5 of 5 deploy points, a handler that raises on bad input keeps 4 and loses the bad-input point; graded
    again with Java hidden, the reference's 5 deploy points are skipped, 0, with the reason. Two TorchServe starts
    (about 30 s each here) and three notebooks."""
    import shutil

    from graded_samples import REFERENCE, build_submission, lab_source, load_samples

    from autograder.grading.engine import grade_class

    if not shutil.which("java"):
        pytest.skip("no Java on PATH: the TorchServe deploy check needs Java 17")
    source = lab_source("lab05-torchserve")
    subs = tmp_path / "subs"
    build_submission(None, source, subs / REFERENCE)
    raises = next(s for s in load_samples("lab05-torchserve") if s.name == "raises-on-bad-input")
    build_submission(raises, source, subs / raises.name)
    with pytest.MonkeyPatch.context() as mp:
        # The stand-in model (a few ms a prediction): on a machine shared by parallel jobs, ResNet-18 at 224 px can
        # miss the latency bar, and the deployment, not the model, is under test.
        mp.setenv("MLINFRA_MODEL_DIR", str(tmp_path / "no-model-here"))
        batch = grade_class(source, subs, tmp_path / "out", workers=2)
    tests = batch.data["tests"]

    def deploy_checks(outcome: Any) -> list[Any]:
        return [c for c in outcome.checks if c.name.startswith("TorchServe: ")]

    ref = next(p for p in batch.parts if p.subject == REFERENCE)
    assert {c.name: c.points for c in ref.checks if c.name in tests} == tests, ref.notes
    assert [(c.status, c.points, c.max_points) for c in deploy_checks(ref)] == [("passed", 1.0, 1.0)] * 5, \
        [c.message for c in deploy_checks(ref)]
    assert "stand-in model" in deploy_checks(ref)[0].message
    bad = next(p for p in batch.parts if p.subject == raises.name)
    got = deploy_checks(bad)
    assert [c.status for c in got] == ["passed"] * 4 + ["failed"], (bad.status, bad.notes, [c.message for c in got])
    assert got[4].points < 1 and "503" in got[4].message

    only_ref = tmp_path / "subs-ref"
    build_submission(None, source, only_ref / REFERENCE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOGRADER_HIDE_ENGINES", "java")
        hidden = grade_class(source, only_ref, tmp_path / "out-hidden", workers=1)
    [ref] = hidden.parts
    assert {c.name: c.points for c in ref.checks if c.name in tests} == tests
    got = deploy_checks(ref)
    assert [(c.status, c.points, c.max_points) for c in got] == [("skipped", 0.0, 1.0)] * 5
    assert "TorchServe not run" in got[0].message
    assert ref.score == sum(tests.values()), "a skipped deployment gives none of its points"


SNOOPING_HANDLER = '''
import socket
from pathlib import Path


class Snoop:
    def initialize(self, context):
        self.initialized = True

    def handle(self, data, context):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
            net = "reached-the-host"
        except OSError:
            net = "no-network"
        files = "read-the-repo" if Path(REPO).exists() else "no-repo"
        return [{net: 0.5, files: 0.5} for _ in data]
'''


@pytest.mark.slow
@pytest.mark.java
def test_the_handler_runs_sandboxed_no_host_network_no_repository(tmp_path: Path) -> None:
    """A handler that tries to reach a service on the grading machine's 127.0.0.1 and to read the repository's
    solutions/: inside the deploy check's sandbox it can do neither, while the probes outside still reach it."""
    import shutil
    import socket

    import httpx

    from autograder.deploy import course_model
    from autograder.deploy.torchserve_sandbox import SandboxedTorchServe
    from autograder.grading.sandbox import bwrap_works

    if not shutil.which("java") or bwrap_works():
        pytest.skip(f"needs Java and bubblewrap ({bwrap_works() or 'no java'})")
    with socket.socket() as host_service:
        host_service.bind(("127.0.0.1", 0))
        host_service.listen()
        handler = tmp_path / "handler.py"
        repo = Path(__file__).resolve().parents[2] / "solutions"
        handler.write_text(SNOOPING_HANDLER.replace("PORT", str(host_service.getsockname()[1]))
                           .replace("REPO", repr(str(repo))))
        server = SandboxedTorchServe(tmp_path / "work", None)
        try:
            server.start(course_model(tmp_path)[0], handler)
            answer = httpx.post(f"{server.url}/predictions/digits", content=b"anything", timeout=30).json()
        finally:
            server.stop()
    assert repo.is_dir() and set(answer) == {"no-network", "no-repo"}, answer
    # its connection folder (a tmpfs when the grader is root) unmounted and removed, its relay's folder removed
    assert not server.conn.exists() and not server.relay_dir.exists(), "the check's folders outlived it"
