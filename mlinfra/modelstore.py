"""The on-disk form of a served model, shared by `make model`, the serving labs and the assessment.

A model folder holds three files:

- ``model.pt``: TorchScript; takes a float tensor ``N x C x S x S`` already normalised, returns logits ``N x K``;
- ``labels.json``: the K class labels, in output order (a JSON list of strings);
- ``model_card.json``: what a person or a service needs to use it: input size and channels, normalisation,
  the data set it was trained on, its metrics, the library versions.

The service finds the folder through ``$MLINFRA_MODEL_DIR`` (default ``models/digits-resnet18`` under the
workbook's root, whatever the current folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and PIL load only when a model is really used
    import torch
    from PIL import Image

MODEL_DIR_ENV = "MLINFRA_MODEL_DIR"
DEFAULT_MODEL_DIR = Path("models") / "digits-resnet18"
MODEL_FILE, LABELS_FILE, CARD_FILE = "model.pt", "labels.json", "model_card.json"


@dataclass
class ModelCard:
    name: str
    architecture: str
    input_size: int
    channels: int
    mean: list[float]
    std: list[float]
    dataset: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: str = ""


@dataclass
class LoadedModel:
    module: torch.jit.ScriptModule
    labels: list[str]
    card: ModelCard
    folder: Path


class ModelNotFound(FileNotFoundError):
    pass


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    # torch 2.14 warns on every torch.jit.save/load that TorchScript is deprecated; on stderr that notice would
    # cost a learner the points of the graded cell that loads a model (nbgrader zeroes cells writing to stderr).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def default_model_dir() -> Path:
    """``models/digits-resnet18`` under the workbook's root, whatever the current folder (a service started from
    ``workspace/lab07-api`` finds the model ``make model`` wrote); relative to the current folder outside a
    workbook."""
    try:  # a container image may ship only the service's modules, without mlinfra.base
        from mlinfra.base.errors import UsageError
        from mlinfra.base.paths import repo_root
    except ImportError:
        return DEFAULT_MODEL_DIR
    try:
        return repo_root() / DEFAULT_MODEL_DIR
    except UsageError:
        return DEFAULT_MODEL_DIR


def model_dir_from_env(default: Path | None = None) -> Path:
    """$MLINFRA_MODEL_DIR, else ``default``, else :func:`default_model_dir`."""
    return Path(os.environ.get(MODEL_DIR_ENV) or default or default_model_dir())


def save_model(folder: Path, scripted: torch.jit.ScriptModule, labels: list[str], card: ModelCard) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    with _quiet_jit():
        torch.jit.save(scripted, str(folder / MODEL_FILE))
    (folder / LABELS_FILE).write_text(json.dumps(labels, indent=2) + "\n")
    (folder / CARD_FILE).write_text(json.dumps(asdict(card), indent=2) + "\n")
    return folder


def standin_model(folder: Path, classes: int = 10, channels: int = 1, size: int = 28, seed: int = 0,
                  name: str = "stand-in", labels: list[str] | None = None) -> Path:
    """Save a small model made in a blink from the course's offline digits, for deployment checks and tests where
    no trained model exists (`make model` not run): one linear layer over the pixels that picks the nearest class
    mean (with fewer than 10 classes, digit d is class d % classes). Its answers vary with the digit as a real
    model's do: a random model answers one class for nearly everything, and then a service answering a constant
    would look like it. Computed in numpy, no autograd: it runs in forked grading workers, where torch's autograd
    threads crash. `seed` picks which half of the digits the means are taken from."""
    import numpy as np
    import torch
    from PIL import Image

    from mlinfra.data import digits_array

    pixels, digits = digits_array()
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(digits))[: max(classes * 20, len(digits) // 2)]
    images = np.stack([np.asarray(Image.fromarray((pixels[i] * (255.0 / 16.0)).astype(np.uint8), "L")
                                  .resize((size, size), Image.BILINEAR), dtype=np.float32) for i in keep])
    x = np.repeat(((images / 255.0 - 0.5) / 0.5)[:, None], channels, axis=1).reshape(len(keep), -1)
    y = digits[keep] % classes
    means = np.stack([x[y == c].mean(axis=0) for c in range(classes)]).astype(np.float32)
    linear = torch.nn.Linear(channels * size * size, classes)
    with torch.no_grad():  # argmax of w.x + b is the nearest mean: |x - m|^2 = |x|^2 - 2 m.x + |m|^2
        linear.weight.copy_(torch.from_numpy(means / 10.0))
        linear.bias.copy_(torch.from_numpy(-0.5 * (means**2).sum(axis=1) / 10.0))
    net = torch.nn.Sequential(torch.nn.Flatten(), linear).eval()
    card = ModelCard(name=name, architecture="linear", input_size=size, channels=channels,
                     mean=[0.5] * channels, std=[0.5] * channels,
                     dataset={"name": "sklearn-digits", "note": "a stand-in made in a blink, not the course model"})
    with _quiet_jit():
        scripted = torch.jit.script(net)
    return save_model(folder, scripted, labels or [str(i) for i in range(classes)], card)


def load_model(folder: Path | None = None) -> LoadedModel:
    import torch

    folder = Path(folder) if folder is not None else model_dir_from_env()
    missing = [n for n in (MODEL_FILE, LABELS_FILE, CARD_FILE) if not (folder / n).is_file()]
    if missing:
        raise ModelNotFound(
            f"model folder {folder} lacks {', '.join(missing)}: run `make model` to train the course's model, "
            f"or point ${MODEL_DIR_ENV} at a folder holding {MODEL_FILE}, {LABELS_FILE} and {CARD_FILE}"
        )
    with _quiet_jit():
        module = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
    module.eval()
    labels = json.loads((folder / LABELS_FILE).read_text())
    card = ModelCard(**json.loads((folder / CARD_FILE).read_text()))
    return LoadedModel(module=module, labels=labels, card=card, folder=folder)


def preprocess(image: Image.Image, card: ModelCard) -> torch.Tensor:
    """Any PIL image (any size, any mode) -> a normalised ``1 x C x S x S`` tensor the model accepts.

    A colour JPEG that is still undecoded (straight from ``Image.open``) and a grey model: the decoder is asked for
    the grey (luma) plane it already holds, instead of converting to RGB and back to grey. That halves what a
    224-pixel photo costs to decode. Each grey level is then within 1 of what ``convert("L")`` gives (both compute
    ITU-R 601 luma, rounded at different steps). Call ``image.load()`` first to get ``convert``'s values."""
    import numpy as np
    import torch
    from PIL import Image as PILImage

    mode = "L" if card.channels == 1 else "RGB"
    if mode == "L" and image.mode == "RGB" and image.format == "JPEG" and getattr(image, "tile", None):
        image.draft("L", image.size)  # the JPEG decoder keeps its luma plane: no colour conversion either way
    if image.mode != mode:
        image = image.convert(mode)
    img = image.resize((card.input_size, card.input_size), PILImage.BILINEAR)
    # In numpy, in place, float32 throughout: the same IEEE operations, so the same values, as the torch version
    # this replaced ((x / 255 - mean) / std), in half its CPU time for a small image (every request pays it).
    array = np.asarray(img, dtype=np.float32)
    array /= np.float32(255.0)
    array -= np.asarray(card.mean, dtype=np.float32)
    array /= np.asarray(card.std, dtype=np.float32)
    array = array[None, None] if array.ndim == 2 else array.transpose(2, 0, 1)[None]
    return torch.from_numpy(np.ascontiguousarray(array))


def top_k(logits: torch.Tensor, labels: list[str], k: int = 5) -> list[dict[str, Any]]:
    """Softmax over one row of logits -> ``[{"label", "confidence"}]``, most confident first, k = min(k, classes)."""
    return top_k_rows(logits.detach().reshape(1, -1), labels, k)[0]


def top_k_rows(logits: torch.Tensor, labels: list[str], k: int = 5) -> list[list[dict[str, Any]]]:
    """`top_k` of every row of ``N x K`` logits, in one softmax and one topk over the batch."""
    import torch

    probs = torch.softmax(logits.detach().float(), dim=1)
    values, indices = torch.topk(probs, min(k, probs.shape[1]), dim=1)
    # .tolist() once: converting element by element costs more than the softmax.
    return [
        [{"label": labels[i], "confidence": v} for v, i in zip(vrow, irow, strict=False)]
        for vrow, irow in zip(values.tolist(), indices.tolist(), strict=False)
    ]


# --- Running a model under concurrent load -------------------------------------------------------------------
# The course's service and the serving lesson use this; it lives here, not in the service, so that a learner
# whose class copy has no reference service can still import it. docs/serving.md explains the choices and gives
# the measured figures.

THREADS_ENV = "MLINFRA_TORCH_THREADS"


def torch_threads() -> int:
    """Intra-op threads for one forward pass: $MLINFRA_TORCH_THREADS, else one per core up to 4."""
    value = os.environ.get(THREADS_ENV)
    if value:
        return max(1, int(value))
    return max(1, min(4, os.cpu_count() or 1))


def predict_rows(model: LoadedModel, batch: torch.Tensor, k: int = 5) -> list[list[dict[str, Any]]]:
    """One forward pass over ``N x C x S x S``; the top k of each row, in the batch's order."""
    import torch

    with torch.inference_mode(mode=True):
        scores = model.module(batch)
    return top_k_rows(scores, model.labels, k)


@dataclass
class _Job:
    tensor: torch.Tensor
    future: Any  # concurrent.futures.Future


class Batcher:
    """Dynamic batching: requests queue up; inference threads run them as batches and split the answers back.

    Each of the ``workers`` threads takes the first waiting request, then every other request already waiting (up
    to ``max_batch``), waiting at most ``wait_ms`` for more to arrive, and runs them as one forward pass on
    ``threads`` torch threads. With ``wait_ms=0`` (the default) a lone request never waits: batches form only from
    requests that queued while every worker was busy, so latency at one client is the plain forward's, and under
    load one batched forward replaces several single ones.

    Settings worth knowing (docs/serving.md has the figures): ``workers`` = cores with ``threads=1`` keeps every
    core busy without oversubscribing it (the service's default); ``max_batch=1`` turns batching off (one request
    per forward); ``workers=1, threads=cores`` runs one forward at a time on every core.
    """

    def __init__(self, model: LoadedModel, max_batch: int = 8, wait_ms: float = 0.0, threads: int | None = None,
                 k: int = 5, workers: int = 1, expect_ms: float = 0.0) -> None:
        import collections
        import queue
        import threading

        if max_batch < 1 or workers < 1:
            raise ValueError(f"max_batch and workers must be 1 or more, got {max_batch} and {workers}")
        self.model, self.max_batch, self.wait_s, self.k = model, max_batch, max(0.0, wait_ms) / 1000, k
        self.expect_s, self._expect = max(0.0, expect_ms) / 1000, 1
        self._collecting = threading.Lock()  # one worker gathers a batch at a time: a burst is not split in two
        self.threads = threads or torch_threads()
        self.queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # The size of every forward run (the last 100,000: a long-running service must not grow without bound),
        # for the lesson's and the bench's figures.
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=100_000)
        self._threads = [threading.Thread(target=self._loop, name=f"inference-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, tensor: torch.Tensor) -> Any:
        """Queue one ``1 x C x S x S`` input; returns a concurrent.futures.Future of its top-k list."""
        from concurrent.futures import Future

        future: Future[list[dict[str, Any]]] = Future()
        self.queue.put(_Job(tensor, future))
        return future

    def predict(self, tensor: torch.Tensor) -> list[dict[str, Any]]:
        """Blocking: queue one input and wait for its answer (threads of a client, tests)."""
        return self.submit(tensor).result()

    def close(self) -> None:
        for _ in self._threads:
            self.queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        import queue
        import time

        now = time.perf_counter()
        jobs, deadline = [first], now + self.wait_s
        # Under load, expect as many requests as the last batch held, and wait a little for them: on a small model
        # a forward of 2-4 inputs costs little more than one, and requests arrive a decode apart.
        want = min(self.max_batch, self._expect)
        expect_deadline = now + self.expect_s if want > 1 else now
        while len(jobs) < self.max_batch:
            until = max(deadline, expect_deadline) if len(jobs) < want else deadline
            left = until - time.perf_counter()
            try:
                job = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        self._expect = len(jobs)
        return jobs, False

    def _loop(self) -> None:
        import torch

        torch.set_num_threads(self.threads)  # per thread under OpenMP: set it in the thread that runs forwards
        stop = False
        while not stop:
            with self._collecting:
                first = self.queue.get()
                if first is None:
                    break
                jobs, stop = self._collect(first)
            self.batch_sizes.append(len(jobs))
            try:
                batch = jobs[0].tensor if len(jobs) == 1 else torch.cat([j.tensor for j in jobs])
                rows = predict_rows(self.model, batch, self.k)
            except Exception as exc:  # noqa: BLE001 - a failed forward fails its own requests, not the thread
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            for job, row in zip(jobs, rows, strict=False):
                job.future.set_result(row)
