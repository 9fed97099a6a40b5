"""A stand-in for TorchServe's inference API (for the adapter's unit tests; the real TorchServe is tested elsewhere).

It speaks TorchServe's shapes: GET /ping -> {"status": "Healthy"}; POST /predictions/{model} with the image as the
raw body -> {label: confidence} ordered by confidence; errors as {"code", "type", "message"}. Set
FAKE_TS_BROKEN_WORKER=1 to mimic a worker that crash-loops while /ping still says Healthy.
"""

from __future__ import annotations

import io
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mlinfra.contract import MAX_UPLOAD_BYTES, sniff_format

MODEL = "digits"
app = FastAPI()


def error(code: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=code, content={"code": code, "type": "BadRequest", "message": message})


@app.get("/ping")
def ping() -> dict[str, str]:
    return {"status": "Healthy"}


@app.post("/predictions/{model}")
async def predictions(model: str, request: Request) -> JSONResponse:
    from PIL import Image, ImageStat

    if model != MODEL:
        return error(404, f"Model not found: {model}")
    if os.environ.get("FAKE_TS_BROKEN_WORKER"):
        return error(503, "Prediction failed")
    data = await request.body()
    if len(data) > MAX_UPLOAD_BYTES:
        return error(413, "request too large")
    if not data or sniff_format(data) is None:
        return error(400 if not data else 415, "not a PNG or JPEG image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            mean = ImageStat.Stat(image.convert("L")).mean[0] / 255
    except Exception:  # noqa: BLE001  whatever fails to decode is a corrupt upload
        return error(400, "corrupt image")
    scores = {str(d): 1 / (1 + abs(mean * 9 - d)) for d in range(10)}
    total = sum(scores.values())
    top = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:5]
    return JSONResponse({label: s / total for label, s in top})
