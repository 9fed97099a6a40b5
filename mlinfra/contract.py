"""The practical assessment's service contract, in one place.

What a learner's image-classification service must honour, and what `autograder assess` probes. Both the
reference service (`mlinfra.service`) and the assessment import this module, so the two cannot drift apart.

- ``GET /health``: 503 until the model is loaded, then 200 with a JSON object.
- ``POST /predict``: a multipart form whose field ``file`` holds a PNG or JPEG image of any size and mode
  -> 200 ``{"predictions": [{"label": str, "confidence": float in [0, 1]}, ...]}``: the top
  k = min(5, classes), most confident first. Extra keys are allowed, and any label set.
- Bad input (not an image, corrupt, empty, over 10 MB, no ``file`` field, wrong method) -> a 4xx with a JSON body
  saying why, never a 5xx; the service keeps serving.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

HEALTH_PATH = "/health"
PREDICT_PATH = "/predict"
UPLOAD_FIELD = "file"
TOP_K = 5
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
ACCEPTED_FORMATS = ("PNG", "JPEG")
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"

# Suggested status codes for each kind of bad input. The assessment accepts any 4xx (docs/architecture.md); a lab's own tests
# may ask for these exact ones.
STATUS_NOT_AN_IMAGE = 415
STATUS_CORRUPT = 400
STATUS_EMPTY = 400
STATUS_TOO_LARGE = 413
STATUS_MISSING_FIELD = 422
STATUS_WRONG_METHOD = 405

# Confidences are floats a service may round or compute in float32: allow this much slack in [0, 1] and in order.
TOLERANCE = 1e-6


# class-copy: omit-begin (exercise 07 asks learners to write these response models; docs/class-copy.md)
class Prediction(BaseModel):
    label: str = Field(description="the class label, as the model's label list spells it")
    confidence: float = Field(ge=0.0, le=1.0, description="the model's probability for this label, 0 to 1")


class PredictResponse(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "predictions": [
                        {"label": "7", "confidence": 0.91},
                        {"label": "1", "confidence": 0.05},
                        {"label": "9", "confidence": 0.02},
                        {"label": "2", "confidence": 0.01},
                        {"label": "4", "confidence": 0.005},
                    ]
                }
            ]
        },
    )

    predictions: list[Prediction] = Field(
        description=f"the top k = min({TOP_K}, number of classes) labels, most confident first"
    )


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: str = Field(description='"ok" once the model is loaded; otherwise why it is not')
    model: str | None = Field(default=None, description="the loaded model's name")
    detail: str | None = Field(default=None, description="why the service is not ready, and what to do")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong with the request, and what to send instead")
# class-copy: omit-end


@dataclass(frozen=True)
class Problem:
    """One way a response breaks the contract. ``kind`` groups problems for scoring."""

    kind: str  # "schema", "range", "order" or "count"
    message: str


def check_predict_body(body: Any, max_k: int = TOP_K) -> list[Problem]:
    """Every way a decoded ``POST /predict`` response body breaks the contract; an empty list when it honours it."""
    if not isinstance(body, dict):
        return [
            Problem("schema", f"the body is a JSON {type(body).__name__}, not an object with 'predictions'")
        ]
    if "predictions" not in body:
        return [
            Problem(
                "schema", f"the body has no 'predictions' key (it has: {', '.join(map(str, body)) or 'none'})"
            )
        ]
    preds = body["predictions"]
    if not isinstance(preds, list):
        return [Problem("schema", f"'predictions' is a {type(preds).__name__}, not a list")]
    if not preds:
        return [Problem("count", "'predictions' is empty: return the top k = min(5, classes) labels")]
    problems: list[Problem] = []
    if len(preds) > max_k:
        problems.append(
            Problem("count", f"'predictions' holds {len(preds)} items, more than the top {max_k}")
        )
    confidences: list[float] = []
    for i, item in enumerate(preds):
        where = f"predictions[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem("schema", f"{where} is a {type(item).__name__}, not an object"))
            continue
        if not isinstance(item.get("label"), str):
            found = "missing" if "label" not in item else f"a {type(item['label']).__name__}"
            problems.append(Problem("schema", f"{where}.label is {found}, not a string"))
        value = item.get("confidence")
        if "confidence" not in item:
            problems.append(Problem("schema", f"{where}.confidence is missing: add the model's probability"))
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(
                Problem("schema", f"{where}.confidence is a {type(value).__name__}, not a number")
            )
        elif math.isnan(value) or not (-TOLERANCE <= value <= 1 + TOLERANCE):
            problems.append(
                Problem(
                    "range", f"{where}.confidence is {value}, outside [0, 1]: apply softmax to the logits"
                )
            )
        else:
            confidences.append(float(value))
            continue
        confidences.append(math.nan)
    pairs = [(a, b) for a, b in itertools.pairwise(confidences) if not (math.isnan(a) or math.isnan(b))]
    if any(b > a + TOLERANCE for a, b in pairs):
        problems.append(Problem("order", "'predictions' is not sorted most confident first"))
    return problems


def validate_predict_body(body: Any, max_k: int = TOP_K) -> list[str]:
    """The problems of a ``POST /predict`` response body as sentences; empty when it honours the contract."""
    return [p.message for p in check_predict_body(body, max_k)]


def sniff_format(data: bytes) -> str | None:
    """'PNG' or 'JPEG' from the file's first bytes (never from a client's claimed content type), else None."""
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data.startswith(JPEG_MAGIC):
        return "JPEG"
    return None
