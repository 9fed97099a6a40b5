"""The reference TorchServe handler for a course model folder (what `make torchserve` archives).

TorchServe imports this file inside its Python worker and looks for exactly one class defined here; it calls
``initialize(context)`` once, then ``handle(data, context)`` per batch of requests. ``data`` holds one dict
per request whose bytes sit under ``data`` or ``body`` (raw POST body) or under the multipart field's own
name.

Bad input must not raise: an exception fails the whole batch with 503, which tells the client "try again
later" when the truth is "your upload is broken". Instead each bad request gets its own status through
``context.set_response_status(code, phrase, idx)`` and a JSON body saying why, and the good ones in the same
batch are still answered.

The response is TorchServe's usual shape for classifiers: ``{label: confidence}`` for the top k, most
confident first (JSON objects keep insertion order). `autograder assess --torchserve` adapts it to the
course's contract.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

from mlinfra import contract


def request_bytes(row: dict[str, Any]) -> bytes:
    """The uploaded bytes of one request, whichever way the client sent them."""
    for key in ("data", "body", "file"):
        value = row.get(key)
        if value is not None:
            return bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
    # A multipart upload under another field name: take the first binary part.
    for value in row.values():
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
    return b""


def bad_input(payload: bytes) -> tuple[int, str] | None:
    """(status, reason) when the bytes are too many, none, or not a PNG or JPEG; None when they look like one.

    The size is checked here, not only by TorchServe's `max_request_size`, because the front end's own 413 has
    an empty body and the course's contract wants every refusal to say why.
    """
    if len(payload) > contract.MAX_UPLOAD_BYTES:
        limit = contract.MAX_UPLOAD_BYTES
        return contract.STATUS_TOO_LARGE, f"upload is over the {limit:,}-byte limit: send a smaller image"
    if not payload:
        return contract.STATUS_EMPTY, "empty upload: send a PNG or JPEG image as the body or a multipart file"
    if contract.sniff_format(payload) is None:
        return contract.STATUS_NOT_AN_IMAGE, "not a PNG or JPEG image: send image/png or image/jpeg bytes"
    return None


class CourseModelHandler:
    """Serves a model folder archived as model.pt + labels.json + model_card.json (see mlinfra.modelstore)."""

    def __init__(self) -> None:
        self.initialized = False

    def initialize(self, context: Any) -> None:
        import torch

        from mlinfra.modelstore import CARD_FILE, LABELS_FILE, MODEL_FILE, ModelCard

        folder = Path(context.system_properties["model_dir"])
        # torch 2.14 calls TorchScript deprecated; it is still the course's model format.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.model = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu").eval()
        self.labels = json.loads((folder / LABELS_FILE).read_text())
        self.card = ModelCard(**json.loads((folder / CARD_FILE).read_text()))
        self.initialized = True

    def decode(self, payload: bytes) -> Any:
        """Bytes -> normalised 1xCxSxS tensor; raises ValueError with the reason when they do not decode."""
        from PIL import Image

        from mlinfra.modelstore import preprocess

        try:
            with Image.open(io.BytesIO(payload)) as image:
                return preprocess(image, self.card)  # decodes the pixels as the FastAPI service does
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(
                f"corrupt image, it does not decode ({type(exc).__name__}): re-encode it"
            ) from None

    def preprocess(self, data: list[dict[str, Any]]) -> tuple[Any, dict[int, tuple[int, str]]]:
        """The batch tensor of the good requests, and {index: (status, reason)} for the bad ones."""
        import torch

        tensors, errors = [], {}
        for idx, row in enumerate(data):
            payload = request_bytes(row)
            problem = bad_input(payload)
            if problem is None:
                try:
                    tensors.append(self.decode(payload))
                    continue
                except ValueError as exc:
                    problem = (contract.STATUS_CORRUPT, str(exc))
            errors[idx] = problem
        return (torch.cat(tensors) if tensors else None), errors

    def inference(self, batch: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(batch)

    def postprocess(self, logits: Any) -> list[dict[str, float]]:
        from mlinfra.modelstore import top_k

        return [
            {p["label"]: p["confidence"] for p in top_k(row, self.labels, contract.TOP_K)} for row in logits
        ]

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        batch, errors = self.preprocess(data)
        answers = iter(self.postprocess(self.inference(batch)) if batch is not None else [])
        results: list[Any] = []
        for idx in range(len(data)):
            if idx in errors:
                code, reason = errors[idx]
                context.set_response_status(code, reason, idx)
                results.append({"code": code, "error": reason})
            else:
                results.append(next(answers))
        return results
