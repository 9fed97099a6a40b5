"""The contract's response checker, and the TorchServe adapter's reshaping."""

from __future__ import annotations

import math

import pytest

from autograder.assess.targets import to_contract
from mlinfra.contract import check_predict_body, sniff_format, validate_predict_body

GOOD = {"predictions": [{"label": "7", "confidence": 0.9}, {"label": "1", "confidence": 0.1}], "model": "x"}


def kinds(body: object) -> set[str]:
    return {p.kind for p in check_predict_body(body)}


def test_a_good_body_has_no_problems() -> None:
    assert validate_predict_body(GOOD) == []
    assert validate_predict_body({"predictions": [{"label": "a", "confidence": 1}]}) == []


@pytest.mark.parametrize(
    "body,kind",
    [
        ([], "schema"),
        ({"labels": ["7"]}, "schema"),
        ({"predictions": {"7": 0.9}}, "schema"),
        ({"predictions": ["7"]}, "schema"),
        ({"predictions": [{"label": "7"}]}, "schema"),
        ({"predictions": [{"confidence": 0.5}]}, "schema"),
        ({"predictions": [{"label": 7, "confidence": 0.5}]}, "schema"),
        ({"predictions": [{"label": "7", "confidence": "0.5"}]}, "schema"),
        ({"predictions": [{"label": "7", "confidence": True}]}, "schema"),
        ({"predictions": [{"label": "7", "confidence": 3.2}]}, "range"),
        ({"predictions": [{"label": "7", "confidence": -0.1}]}, "range"),
        ({"predictions": [{"label": "7", "confidence": math.nan}]}, "range"),
        ({"predictions": [{"label": "1", "confidence": 0.1}, {"label": "7", "confidence": 0.9}]}, "order"),
        ({"predictions": []}, "count"),
        ({"predictions": [{"label": str(i), "confidence": 0.1} for i in range(6)]}, "count"),
    ],
)
def test_each_way_to_break_the_contract(body: object, kind: str) -> None:
    assert kind in kinds(body), validate_predict_body(body)


def test_problems_name_the_item_at_fault() -> None:
    body = {"predictions": [{"label": "7", "confidence": 0.9}, {"label": "1", "confidence": 1.7}]}
    (message,) = validate_predict_body(body)
    assert "predictions[1].confidence" in message and "1.7" in message


def test_float32_rounding_is_tolerated() -> None:
    body = {"predictions": [{"label": "a", "confidence": 1.0000000001}, {"label": "b", "confidence": 0.0}]}
    assert validate_predict_body(body) == []


def test_sniff_format() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\nrest") == "PNG"
    assert sniff_format(b"\xff\xd8\xff\xe0rest") == "JPEG"
    assert sniff_format(b"GIF89a") is None
    assert sniff_format(b"") is None


def test_torchserve_shape_becomes_the_contract_sorted() -> None:
    body = to_contract({"3": 0.1, "8": 0.7, "5": 0.2})
    assert [p["label"] for p in body["predictions"]] == ["8", "5", "3"]
    assert validate_predict_body(body) == []
    assert to_contract([{"a": 0.6, "b": 0.4}])["predictions"][0]["label"] == "a"


def test_torchserve_adapter_leaves_other_shapes_for_the_checker() -> None:
    assert to_contract(GOOD) is GOOD
    assert to_contract({"code": 400, "message": "x"}) == {"code": 400, "message": "x"}  # not all numbers
    assert to_contract({}) == {}
    assert kinds(to_contract({"7": 3.5, "1": -2.0})) == {"range"}
