"""The reference image-classification service: the contract of `mlinfra.contract`, served with FastAPI.

Run it with ``make serve`` (or ``python -m uvicorn mlinfra.service:app --host 127.0.0.1 --port 8000``) and score it
with ``autograder assess --app mlinfra.service:app``. The model folder comes from ``$MLINFRA_MODEL_DIR`` (default
``models/digits-resnet18``, made by ``make model``); it is loaded once, when the server starts. Without it the
service still starts and ``/health`` answers 503 saying what to run.

How requests reach the model (docs/serving.md has the measurements): the endpoint is ``async``; it checks and
decodes the upload on the event loop (a few hundred microseconds), then hands the input tensor to the inference
engine, `mlinfra.modelstore.Batcher`, and awaits the answer, so the event loop keeps parsing other requests
meanwhile. The engine runs ``$MLINFRA_INFERENCE_WORKERS`` inference threads (default: one per core), each forward
on ``$MLINFRA_TORCH_THREADS`` torch threads (default 1): as many requests in flight as cores, none oversubscribed.
``$MLINFRA_SERVE_MODE`` picks what a worker takes from the queue:

- ``batch`` (default): dynamic batching. A free worker takes every request waiting (at most ``$MLINFRA_MAX_BATCH``,
  default 8; ``$MLINFRA_BATCH_WAIT_MS``, default 0, lets a batch wait for more) and runs them as one forward. Under
  load, when the last batch held several requests, it waits up to ``$MLINFRA_BATCH_EXPECT_MS`` (default 2) for as
  many again: requests reach the engine one decode apart, and on a small model a forward of four costs little more
  than a forward of one. A lone request never waits; under load one batched forward replaces several single ones.
- ``threads``: one request per forward.

A plain ``def`` endpoint would do neither: Starlette's thread pool would run up to 40 forwards at once, each asking
torch for every core, and throughput under load falls below the sequential one (on a crowded machine, OpenMP
threads spinning at barriers for a busy core make it far worse).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mlinfra import contract
from mlinfra.contract import ErrorResponse, Health, PredictResponse

if TYPE_CHECKING:
    import torch

    from mlinfra.modelstore import LoadedModel, ModelCard

log = logging.getLogger("mlinfra.service")

MODE_ENV, MAX_BATCH_ENV, WAIT_ENV, WORKERS_ENV, THREADS_ENV, EXPECT_ENV = (
    "MLINFRA_SERVE_MODE", "MLINFRA_MAX_BATCH", "MLINFRA_BATCH_WAIT_MS", "MLINFRA_INFERENCE_WORKERS",
    "MLINFRA_TORCH_THREADS", "MLINFRA_BATCH_EXPECT_MS",
)
MODES = ("batch", "threads")
# A multipart body carries boundaries and part headers around the file; allow for them before refusing by size.
MULTIPART_OVERHEAD = 64 * 1024
# Pixels, not bytes, are what cost memory once an image is decoded: a small PNG can claim 50,000 x 50,000.
MAX_PIXELS = 40_000_000
# Uploads up to this size are decoded on the event loop (a 224 px JPEG is about 10 KB and decodes in well under
# a millisecond); larger ones in a worker thread so they do not hold up other requests.
INLINE_DECODE_BYTES = 256 * 1024


def torch_threads() -> int:
    """Kept for callers of the old name; the definition lives in `mlinfra.modelstore`."""
    from mlinfra.modelstore import torch_threads as threads

    return threads()


@dataclass(frozen=True)
class EngineConfig:
    mode: str = "batch"
    max_batch: int = 8
    wait_ms: float = 0.0
    workers: int = 1  # inference threads
    threads: int = 1  # torch threads per forward
    expect_ms: float = 2.0  # under load, wait up to this for as many requests as the last batch held

    @classmethod
    def from_env(cls) -> EngineConfig:
        """Read the engine's settings; a bad value stops the start-up with a sentence naming the variable."""

        def number(name: str, default: float, kind: type = int, low: float = 1) -> Any:
            raw = os.environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"${name}={raw!r} is not a number; unset it or give e.g. {default:g}") from None
            if value < low:
                raise ValueError(f"${name}={raw!r} must be at least {low:g}; unset it or give e.g. {default:g}")
            return value

        mode = os.environ.get(MODE_ENV, "").strip().lower() or "batch"
        if mode not in MODES:
            raise ValueError(f"${MODE_ENV}={mode!r}: use one of {', '.join(MODES)}")
        return cls(
            mode=mode,
            max_batch=number(MAX_BATCH_ENV, 8),
            wait_ms=number(WAIT_ENV, 0.0, float, 0),
            workers=number(WORKERS_ENV, os.cpu_count() or 1),
            threads=number(THREADS_ENV, 1),
            expect_ms=number(EXPECT_ENV, 2.0, float, 0),
        )

    def describe(self) -> str:
        each = f"{self.workers} inference threads x {self.threads} torch thread{'s' if self.threads > 1 else ''}"
        if self.mode == "threads":
            return f"threads: {each}, one request a forward"
        return (f"batch: {each}, up to {self.max_batch} requests a forward, waiting up to {self.wait_ms:g} ms "
                f"(under load up to {self.expect_ms:g} ms for as many as the last batch held)")


def start_engine(model: LoadedModel, config: EngineConfig) -> Any:
    """Both modes are a `Batcher`: ``threads`` is one request per forward (no batching), one forward per core."""
    from mlinfra.modelstore import Batcher

    max_batch = 1 if config.mode == "threads" else config.max_batch
    return Batcher(model, max_batch=max_batch, wait_ms=config.wait_ms, threads=config.threads, k=contract.TOP_K,
                   workers=config.workers, expect_ms=config.expect_ms)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model once, before the first request; remember why not when it cannot be loaded."""
    from mlinfra.modelstore import ModelNotFound, load_model, model_dir_from_env

    app.state.model, app.state.engine, app.state.model_error = None, None, "the model is loading"
    folder = model_dir_from_env()
    loader = ThreadPoolExecutor(1, "model-loader")
    try:
        config = EngineConfig.from_env()
        model = await asyncio.get_running_loop().run_in_executor(loader, load_model, folder)
        app.state.engine = start_engine(model, config)
        app.state.model, app.state.model_error = model, None
        log.info("loaded model %s from %s; engine %s", model.card.name, folder, config.describe())
    except ModelNotFound as exc:
        app.state.model_error = str(exc)
        log.error("%s", exc)
    except ValueError as exc:  # a bad engine setting: say which variable
        app.state.model_error = str(exc)
        log.error("%s", exc)
    except Exception as exc:  # a broken model file must not stop /health from saying so
        app.state.model_error = f"could not load the model in {folder}: {type(exc).__name__}: {exc}"
        log.exception("could not load the model in %s", folder)
    finally:
        loader.shutdown(wait=False)
    yield
    app.state.model = None
    if app.state.engine is not None:
        app.state.engine.close()


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
            return preprocess(image, card)  # decodes the pixels: a corrupt file raises here
    except Image.DecompressionBombError as exc:
        raise HTTPException(status_code=contract.STATUS_TOO_LARGE, detail=f"image too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(
            status_code=contract.STATUS_CORRUPT,
            detail=f"the image is corrupt and does not decode ({type(exc).__name__}): re-encode it as PNG or JPEG",
        ) from None


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
    if len(data) <= INLINE_DECODE_BYTES:  # on the event loop: small next to a forward, and it saves a thread hop
        tensor = decode(data, model.card)
    else:  # a big image takes long enough to decode that other requests would wait behind it
        tensor = await asyncio.to_thread(decode, data, model.card)
    predictions = await asyncio.wrap_future(request.app.state.engine.submit(tensor))
    return Response(json.dumps({"predictions": predictions}).encode(), media_type="application/json")
