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
    for payload, answer in zip(images, answers):
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
