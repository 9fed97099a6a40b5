"""Exercise 05: a TorchServe handler for the course's image classifier.

TorchServe imports this file inside its Python worker, finds the one class defined in it, calls
``initialize(context)`` once, then ``handle(data, context)`` for every batch of requests. ``data`` is a list
with one dict per request; the uploaded bytes sit under ``"data"`` or ``"body"`` (a raw POST body) or under
the multipart field's name (``"file"``).

The archive (torch-model-archiver) holds model.pt (TorchScript), labels.json and model_card.json: TorchServe
unpacks them into ``context.system_properties["model_dir"]``.

Bad input must not raise: an exception fails the whole batch with 503 ("try again later"), when the truth is
"your upload is broken". Give that request its own 4xx with ``context.set_response_status(code, reason, idx)``
instead, and still answer the other requests of the batch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# What a PNG and a JPEG file start with: decide from the bytes, not from what the client claims.
PNG_MAGIC, JPEG_MAGIC = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"
TOP_K = 5
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MB, the course's limit


def request_bytes(row: dict[str, Any]) -> bytes:
    """The uploaded bytes of one request, whichever way the client sent them (provided)."""
    for key in ("data", "body", "file"):
        value = row.get(key)
        if value is not None:
            return bytes(value) if isinstance(value, (bytes, bytearray)) else str(value).encode()
    return b""


def to_tensor(image: Image.Image, card: dict[str, Any]) -> torch.Tensor:
    """A decoded image of any size and mode -> the model's normalised 1 x C x S x S input (provided)."""
    size, channels = card["input_size"], card["channels"]
    image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    mean = np.asarray(card["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(card["std"], dtype=np.float32).reshape(-1, 1, 1)
    return torch.from_numpy(np.ascontiguousarray((array - mean) / std)).unsqueeze(0)


class DigitsHandler:
    def __init__(self) -> None:
        self.initialized = False

    def initialize(self, context: Any) -> None:
        """Step 1: load model.pt with torch.jit.load (on the CPU, in eval mode), labels.json into self.labels
        (a list) and model_card.json into self.card (a dict), all from
        context.system_properties["model_dir"]."""
        model_dir = Path(context.system_properties["model_dir"])
        # YOUR CODE HERE
        raise NotImplementedError()
        self.initialized = True

    def preprocess(self, data: list[dict]) -> tuple[torch.Tensor | None, dict[int, tuple[int, str]]]:
        """Step 2: decode each request's image.

        Returns (batch, errors): batch stacks the tensors of the requests that decode, in order (None if none
        did); errors maps the index of each bad request to (status, reason): over MAX_UPLOAD_BYTES -> 413,
        empty -> 400, not starting like a PNG or JPEG -> 415, starts like one but does not decode -> 400.
        """
        # YOUR CODE HERE
        raise NotImplementedError()

    def inference(self, batch: torch.Tensor) -> torch.Tensor:
        """Step 3: the model's logits for the batch, without tracking gradients."""
        # YOUR CODE HERE
        raise NotImplementedError()

    def postprocess(self, logits: torch.Tensor) -> list[dict[str, float]]:
        """Step 4: one {label: confidence} dict per row: softmax probabilities of the top k = min(TOP_K,
        classes) labels, inserted most confident first (JSON keeps that order), confidences as plain
        floats."""
        # YOUR CODE HERE
        raise NotImplementedError()

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Step 5: one answer per request, in order. A bad request gets its status through
        context.set_response_status(code, reason, idx) and {"code": code, "error": reason} as its answer; the
        good ones get their postprocessed predictions. Never raise for bad input."""
        # YOUR CODE HERE
        raise NotImplementedError()
