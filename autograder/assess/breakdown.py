"""Where the learner's latency goes: the raw forward pass of the served model against the service's answer time,
and throughput at concurrency 1, 4 and 8. Informational only: none of it changes the score.

The raw forward is timed in this process on the model folder the service serves (the same TorchScript file,
the same input size), so ``service p50 - raw p50`` is what HTTP, multipart parsing, decoding, queueing and JSON
cost. docs/serving.md explains how to read the figures (threads, batching, tail latency).
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.assess import images
from autograder.assess.latency import percentile
from autograder.assess.targets import new_client

LEVELS = (1, 4, 8)
RAW_RUNS = 60
PER_LEVEL = 40  # requests per concurrency level: enough for a rate, small enough to keep assess quick


@dataclass
class Breakdown:
    """The figures, or why they could not be measured (``reason``)."""

    model_dir: str = ""
    reason: str = ""
    torch_threads: int = 0  # the thread count of the faster raw forward (1 or one per core)
    raw_p50_ms: dict[str, float] = field(default_factory=dict)  # size label -> raw forward p50
    served_p50_ms: dict[str, float] = field(default_factory=dict)  # size label -> the latency check's p50
    throughput: dict[int, float] = field(default_factory=dict)  # clients -> requests/s
    errors: dict[int, int] = field(default_factory=dict)  # clients -> failed requests

    @property
    def measured(self) -> bool:
        return not self.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_dir": self.model_dir,
            "reason": self.reason or None,
            "torch_threads": self.torch_threads,
            "sizes": [
                {
                    "size": label,
                    "raw_p50_ms": round(raw, 3),
                    "served_p50_ms": round(self.served_p50_ms[label], 3) if label in self.served_p50_ms else None,
                    "overhead_ms": round(self.served_p50_ms[label] - raw, 3) if label in self.served_p50_ms else None,
                }
                for label, raw in self.raw_p50_ms.items()
            ],
            "throughput": [
                {"clients": c, "requests_per_second": round(r, 1), "errors": self.errors.get(c, 0)}
                for c, r in self.throughput.items()
            ],
        }


def load_served_model(model_dir: Path, health: Any) -> tuple[Any, str]:
    """The model the service serves, or (None, why not). A /health naming another model is not compared."""
    from mlinfra.modelstore import ModelNotFound, load_model

    try:
        model = load_model(model_dir)
    except ModelNotFound as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any unreadable model: report why, never fail the assessment
        return None, f"the model in {model_dir} does not load ({type(exc).__name__}: {exc})"
    named = health.get("model") if isinstance(health, dict) else None
    if isinstance(named, str) and named and named != model.card.name:
        return None, (
            f"the service reports model '{named}' but {model_dir} holds '{model.card.name}': pass --model-dir "
            "with the folder the service serves"
        )
    return model, ""


def raw_forward_ms(model: Any, sample: images.Sample, runs: int = RAW_RUNS, warmup: int = 5) -> list[float]:
    """The forward pass alone (batch 1, after preprocessing), as the service's model would run it; `warmup`
    forwards first, not timed."""
    import torch
    from PIL import Image

    from mlinfra.modelstore import preprocess

    batch = preprocess(Image.open(io.BytesIO(sample.data)), model.card)
    times = []
    with torch.inference_mode():
        for i in range(runs + warmup):
            start = time.perf_counter()
            model.module(batch)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return times


def throughput(target: Any, sample: images.Sample, clients: int, total: int, *, warmup: int = 1, least: int = 1,
               barrier_timeout: float = 60, errors: list[str] | None = None) -> tuple[float, int]:
    """Requests per second with `clients` keep-alive clients sending back to back (at least `least` requests
    each, after `warmup` untimed ones); and how many failed, described in `errors` when a list is given."""
    from PIL import Image

    per = max(least, total // clients)
    barrier = threading.Barrier(clients + 1, timeout=barrier_timeout)
    failed = [0]
    lock = threading.Lock()
    # Each request an image never sent before, of the sample's size: a cache must not make the rate.
    rng = images.fresh_rng()
    with Image.open(io.BytesIO(sample.data)) as shown:
        size = shown.size[0]
    uploads = [[images.fresh_sample(size, rng) for _ in range(warmup + per)] for _ in range(clients)]

    def worker(mine: list[images.Sample]) -> None:
        with new_client() as client:
            for upload in mine[:warmup]:
                target.predict(client, upload)  # connect (and warm up) before the clock starts
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                return
            for upload in mine[warmup:]:
                reply = target.predict(client, upload)
                if reply.status != 200:
                    with lock:
                        failed[0] += 1
                        if errors is not None:
                            errors.append(reply.describe())

    threads = [threading.Thread(target=worker, args=(mine,), daemon=True) for mine in uploads]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"the service stopped answering during the throughput probe ({clients} clients: the "
                           f"warm-up requests were not all answered within {barrier_timeout:g} s)") from None
    start = time.perf_counter()
    for t in threads:  # each request ends by its own deadline (targets.send), so these joins end too
        t.join()
    elapsed = time.perf_counter() - start
    done = per * clients - failed[0]
    return (done / elapsed if elapsed > 0 else 0.0), failed[0]


def measure(target: Any, model_dir: Path, health: Any, served_p50: dict[str, float], say: Any = print) -> Breakdown:
    """Raw forward p50 at each latency size, beside the service's p50; then throughput at 1, 4 and 8 clients."""
    out = Breakdown(model_dir=str(model_dir))
    model, why = load_served_model(model_dir, health)
    if model is None:
        out.reason = why
        return out
    import torch

    from mlinfra.modelstore import torch_threads

    # The service may run its forwards on one torch thread or on all: time both, keep the faster, so the difference
    # is the least serving can be costing (on a busy machine more threads can be many times slower).
    previous = torch.get_num_threads()
    try:
        for label in served_p50:
            sample = images.make_sample("PNG", "RGB", int(label.split("x")[0]))
            best = None
            for threads in sorted({1, torch_threads()}):
                torch.set_num_threads(threads)
                p50 = percentile(raw_forward_ms(model, sample), 0.5)
                if best is None or p50 < best[0]:
                    best = (p50, threads)
            assert best is not None
            out.raw_p50_ms[label], out.torch_threads = best
    finally:
        torch.set_num_threads(previous)
    out.served_p50_ms = dict(served_p50)
    sample = images.make_sample("PNG", "RGB", min(int(k.split("x")[0]) for k in served_p50) if served_p50 else 28)
    for clients in LEVELS:
        say(f"  throughput with {clients} client{'s' if clients > 1 else ''} at once")
        out.throughput[clients], out.errors[clients] = throughput(target, sample, clients, PER_LEVEL)
    return out


def plot(breakdown: Breakdown, path: Path) -> Path | None:
    """A small bar chart: requests/s at each concurrency level."""
    if not breakdown.throughput:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = list(breakdown.throughput)
    fig, ax = plt.subplots(figsize=(4.5, 2.8), dpi=100)
    bars = ax.bar([str(c) for c in levels], [breakdown.throughput[c] for c in levels], color="steelblue")
    ax.bar_label(bars, fmt="%.0f")
    ax.set(title="Throughput", xlabel="clients sending at once", ylabel="requests / s")
    ax.margins(y=0.15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
