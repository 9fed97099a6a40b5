"""A torch-free image classifier that honours the contract, with switches that break it one way at a time.

The known-bad services beside this file each turn on one fault, so each should fail exactly one requirement of
`autograder assess`. It classifies by mean brightness into three labels: the assessment must grade any label set
(and k = min(5, classes) = 3 here).
"""

from __future__ import annotations

import io
import os
import time
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, UploadFile

from mlinfra.contract import MAX_UPLOAD_BYTES, sniff_format

LABELS = ("dark", "medium", "bright")


def make_app(
    *,
    delay_s: float = 0.0,
    crash_on_corrupt: bool = False,
    omit_confidence: bool = False,
    raw_scores: bool = False,
    die_on_bad_input: bool = False,
    healthy: bool = True,
) -> FastAPI:
    app = FastAPI()

    def refuse(status: int, reason: str) -> HTTPException:
        if die_on_bad_input:
            os._exit(1)  # the whole server goes, mid-request
        return HTTPException(status_code=status, detail=reason)

    @app.get("/health")
    def health() -> dict[str, str]:
        if not healthy:
            raise HTTPException(status_code=503, detail="the model never loads")
        return {"status": "ok"}

    @app.post("/predict")
    def predict(file: Annotated[UploadFile, File()]) -> dict[str, object]:
        from PIL import Image, ImageStat

        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise refuse(413, "over 10 MB")
        if not data:
            raise refuse(400, "empty upload")
        if sniff_format(data) is None:
            raise refuse(415, "not a PNG or JPEG")
        try:
            with Image.open(io.BytesIO(data)) as image:
                mean = ImageStat.Stat(image.convert("L")).mean[0] / 255
        except Exception as exc:
            if crash_on_corrupt:
                raise RuntimeError("decoding failed") from exc  # -> an unhandled 500
            raise refuse(400, f"corrupt image: {exc}") from None
        if delay_s:
            time.sleep(delay_s)
        scores = [1 - mean, 1 - abs(mean - 0.5) * 2, mean]
        if raw_scores:  # logits-like numbers instead of probabilities
            scores = [4 * s - 1 for s in scores]
        else:
            total = sum(scores) or 1.0
            scores = [s / total for s in scores]
        ranked = sorted(zip(LABELS, scores, strict=True), key=lambda p: p[1], reverse=True)
        if omit_confidence:
            return {"predictions": [{"label": label} for label, _ in ranked]}
        return {"predictions": [{"label": label, "confidence": score} for label, score in ranked]}

    return app
