"""The reference image-classification service: the contract of `mlinfra.contract`, served with FastAPI.

Run it with ``make serve`` (or ``python -m uvicorn mlinfra.service:app --host 127.0.0.1 --port 8000``) and score it
with ``autograder assess --app mlinfra.service:app``. The model folder comes from ``$MLINFRA_MODEL_DIR`` (default
``models/digits-resnet18``, made by ``make model``); it is loaded once, when the server starts. Without it the
service still starts and ``/health`` answers 503 saying what to run.

Why the inference path looks the way it does: on a small machine the CPU is the bottleneck. A plain ``def``
endpoint would run each request in Starlette's thread pool, so four concurrent requests would run four forward
passes of two torch threads each on two cores and lose throughput to oversubscription (FACTS.md). Here the async
endpoint hands decoding and the forward pass to ONE inference thread: requests take turns, and each forward uses
the cores through torch's own threads. It also keeps torch's OpenMP team owned by one long-lived thread rather
than by whichever pool thread (AnyIO retires idle ones) a request landed on. ``$MLINFRA_TORCH_THREADS`` sets the
thread count: on a machine crowded by other work, 1 avoids OpenMP threads spinning at barriers for a busy core.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mlinfra import contract
from mlinfra.contract import ErrorResponse, Health, PredictResponse

if TYPE_CHECKING:
    import torch

    from mlinfra.modelstore import LoadedModel, ModelCard

log = logging.getLogger("mlinfra.service")

THREADS_ENV = "MLINFRA_TORCH_THREADS"
# A multipart body carries boundaries and part headers around the file; allow for them before refusing by size.
MULTIPART_OVERHEAD = 64 * 1024
# Pixels, not bytes, are what cost memory once an image is decoded: a small PNG can claim 50,000 x 50,000.
MAX_PIXELS = 40_000_000


def torch_threads() -> int:
    """Intra-op threads for torch: $MLINFRA_TORCH_THREADS, else one per core up to 4."""
    value = os.environ.get(THREADS_ENV)
    if value:
        return max(1, int(value))
    return max(1, min(4, os.cpu_count() or 1))


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model once, before the first request; remember why not when it cannot be loaded."""
    import torch

    from mlinfra.modelstore import ModelNotFound, load_model, model_dir_from_env

    threads = torch_threads()
    torch.set_num_threads(threads)
    # torch's intra-op thread count is per calling thread under OpenMP: set it in the inference thread too.
    app.state.inference = ThreadPoolExecutor(
        1, "inference", initializer=torch.set_num_threads, initargs=(threads,)
    )
    app.state.model, app.state.model_error = None, "the model is loading"
    folder = model_dir_from_env()
    loop = asyncio.get_running_loop()
    try:
        app.state.model = await loop.run_in_executor(app.state.inference, load_model, folder)
        app.state.model_error = None
        log.info("loaded model %s from %s", app.state.model.card.name, folder)
    except ModelNotFound as exc:
        app.state.model_error = str(exc)
        log.error("%s", exc)
    except Exception as exc:  # a broken model file must not stop /health from saying so
        app.state.model_error = f"could not load the model in {folder}: {type(exc).__name__}: {exc}"
        log.exception("could not load the model in %s", folder)
    yield
    app.state.model = None
    app.state.inference.shutdown(wait=True)


class UploadSizeLimit:
    """Refuse a request whose declared body is over the upload limit with 413, before anything parses it.

    Without it Starlette would spool the whole upload to a temporary file first. Uploads sent without a length
    (chunked) are parsed, then refused by the endpoint's own size check.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if not declared.isdigit() or int(declared) <= self.max_body:
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            status_code=contract.STATUS_TOO_LARGE,
            content={
                "detail": f"upload of {int(declared):,} bytes is over the {contract.MAX_UPLOAD_BYTES:,}-byte "
                "limit: send a smaller image"
            },
        )
        await response(scope, receive, send)


app = FastAPI(
    title="Image classifier (course reference service)",
    version="1.0",
    description=(
        "Upload a PNG or JPEG image to `POST /predict` as the multipart field `file`; get the top "
        f"{contract.TOP_K} labels with their confidences, most confident first. `GET /health` answers 200 once "
        "the model is loaded. Bad input gets a 4xx with a JSON `detail` saying why."
    ),
    lifespan=lifespan,
)
app.add_middleware(UploadSizeLimit, max_body=contract.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD)


@app.exception_handler(RequestValidationError)
async def explain_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A form without the `file` field: say which field to send, and keep FastAPI's details."""
    return JSONResponse(
        status_code=contract.STATUS_MISSING_FIELD,
        content={
            "detail": f"send the image as a multipart/form-data field named '{contract.UPLOAD_FIELD}'",
            "errors": jsonable_encoder(exc.errors()),
        },
    )


def loaded_model(request: Request) -> LoadedModel:
    model = getattr(request.app.state, "model", None)
    if model is None:
        reason = getattr(request.app.state, "model_error", None) or "the model is not loaded yet"
        raise HTTPException(status_code=503, detail=reason)
    return model


@app.get(
    contract.HEALTH_PATH,
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "the model is not loaded (the detail says why)"}},
    summary="Is the model loaded?",
)
async def health(request: Request) -> Any:
    model = getattr(request.app.state, "model", None)
    if model is None:
        reason = getattr(request.app.state, "model_error", None) or "the model is not loaded yet"
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": reason})
    return Health(
        status="ok", model=model.card.name, labels=len(model.labels), input_size=model.card.input_size
    )


def decode(data: bytes, card: ModelCard) -> torch.Tensor:
    """PNG/JPEG bytes -> the model's input tensor, or an HTTPException saying what is wrong with them."""
    from PIL import Image, UnidentifiedImageError

    from mlinfra.modelstore import preprocess

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise HTTPException(
                    status_code=contract.STATUS_TOO_LARGE,
                    detail=f"image is {width} x {height} pixels, over {MAX_PIXELS:,}: send a smaller image",
                )
            image.load()
            return preprocess(image, card)
    except Image.DecompressionBombError as exc:
        raise HTTPException(status_code=contract.STATUS_TOO_LARGE, detail=f"image too large to decode: {exc}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(
            status_code=contract.STATUS_CORRUPT,
            detail=f"the image is corrupt and does not decode ({type(exc).__name__}): re-encode it as PNG or JPEG",
        ) from None


def classify(data: bytes, model: LoadedModel) -> list[dict[str, Any]]:
    """Decode, preprocess, forward, top k: all in the inference thread."""
    import torch

    from mlinfra.modelstore import top_k

    batch = decode(data, model.card)
    with torch.inference_mode():
        logits = model.module(batch)
    return top_k(logits[0], model.labels, contract.TOP_K)


@app.post(
    contract.PREDICT_PATH,
    response_model=PredictResponse,
    summary="Classify an image",
    responses={
        400: {"model": ErrorResponse, "description": "empty upload, or an image that does not decode"},
        413: {"model": ErrorResponse, "description": f"upload over {contract.MAX_UPLOAD_BYTES:,} bytes"},
        415: {"model": ErrorResponse, "description": "the upload is not a PNG or JPEG image"},
        422: {"description": f"no multipart field '{contract.UPLOAD_FIELD}'"},
        503: {"model": ErrorResponse, "description": "the model is not loaded"},
    },
)
async def predict(
    request: Request,
    file: Annotated[UploadFile, File(description="a PNG or JPEG image, any size and colour mode")],
) -> PredictResponse:
    model = loaded_model(request)
    # Read one byte past the limit: enough to know it is over without holding a huge upload in memory.
    data = await file.read(contract.MAX_UPLOAD_BYTES + 1)
    if len(data) > contract.MAX_UPLOAD_BYTES:
        raise HTTPException(
            status_code=contract.STATUS_TOO_LARGE,
            detail=f"upload is over the {contract.MAX_UPLOAD_BYTES:,}-byte limit: send a smaller image",
        )
    if not data:
        raise HTTPException(
            status_code=contract.STATUS_EMPTY, detail="empty upload: the 'file' field holds no bytes"
        )
    if contract.sniff_format(data) is None:
        raise HTTPException(
            status_code=contract.STATUS_NOT_AN_IMAGE,
            detail=f"not a PNG or JPEG image (it starts with {data[:8]!r}): send image/png or image/jpeg bytes",
        )
    loop = asyncio.get_running_loop()
    predictions = await loop.run_in_executor(request.app.state.inference, classify, data, model)
    return PredictResponse.model_validate({"predictions": predictions})
