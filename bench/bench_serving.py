"""How much serving costs on top of the model: the reference FastAPI service against the raw forward pass.

    python bench/bench_serving.py [--requests 200] [--torchserve http://127.0.0.1:8085 --model NAME]

For a ResNet-18 (10 classes, untrained weights: speed does not depend on them) at model inputs of 28 and 224 px:
the raw TorchScript forward time (batch 1, the service's torch threads), and the served latency of a 28x28 PNG
upload over one keep-alive connection (decode + resize + forward + JSON); then requests per second at concurrency
1 and 4. TorchServe is measured too when one is running (`make torchserve`) or given. Prints figures only.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.assess import images
from autograder.assess.latency import percentile


def make_resnet(folder: Path, size: int) -> Path:
    import torch
    import torchvision

    from mlinfra.modelstore import ModelCard, save_model

    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    scripted = torch.jit.trace(net, torch.zeros(1, 3, size, size))
    card = ModelCard(
        name=f"resnet18-{size}",
        architecture="resnet18",
        input_size=size,
        channels=3,
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        notes="untrained: for timing only",
    )
    return save_model(folder, scripted, [str(i) for i in range(10)], card)


def raw_forward_ms(folder: Path, runs: int) -> list[float]:
    import torch
    from PIL import Image

    from mlinfra.modelstore import load_model, preprocess
    from mlinfra.service import torch_threads

    torch.set_num_threads(torch_threads())
    model = load_model(folder)
    batch = preprocess(Image.open(io.BytesIO(images.make_sample("PNG", "RGB", 28).data)), model.card)
    times = []
    with torch.inference_mode():
        for i in range(runs + 10):
            start = time.perf_counter()
            model.module(batch)
            if i >= 10:
                times.append((time.perf_counter() - start) * 1000)
    return times


def sequential_ms(target: Any, sample: images.Sample, runs: int) -> list[float]:
    from autograder.assess.targets import new_client

    with new_client() as client:
        for _ in range(10):
            target.predict(client, sample)
        replies = [target.predict(client, sample) for _ in range(runs)]
    bad = [r for r in replies if r.status != 200]
    if bad:
        raise SystemExit(f"bench: {len(bad)} requests failed, e.g. {bad[0].describe()}")
    return [r.elapsed_ms for r in replies]


def throughput(target: Any, sample: images.Sample, clients: int, total: int) -> float:
    from autograder.assess.targets import new_client

    per = total // clients
    barrier = threading.Barrier(clients + 1, timeout=120)
    errors: list[str] = []

    def worker() -> None:
        with new_client() as client:
            target.predict(client, sample)  # connect before the clock starts
            barrier.wait()
            for _ in range(per):
                reply = target.predict(client, sample)
                if reply.status != 200:
                    errors.append(reply.describe())

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"bench: {len(errors)} concurrent requests failed, e.g. {errors[0]}")
    return per * clients / elapsed


def serve(folder: Path) -> Any:
    from autograder.assess.server import AppSpec, UvicornServer, wait_until_ready
    from autograder.assess.targets import ContractTarget, new_client

    os.environ["MLINFRA_MODEL_DIR"] = str(folder)
    server = UvicornServer(AppSpec("mlinfra.service", "app", None))
    server.start()
    target = ContractTarget(server.url)
    with new_client() as client:
        ready = wait_until_ready(lambda: target.ready(client), 120, server.exit_code)
    if not ready.ready:
        server.close()
        raise SystemExit(f"bench: the service did not start: {ready.reason}\n" + "\n".join(server.log_tail()))
    return server, target


def find_torchserve(url: str | None, model: str | None) -> tuple[str, str] | None:
    """The given TorchServe, else one `make torchserve` left running on the course's ports, else None."""
    import httpx

    if url and model:
        return url, model
    try:
        models = httpx.get("http://127.0.0.1:8086/models", timeout=1.0).json().get("models", [])
    except (httpx.HTTPError, ValueError):
        return None
    return ("http://127.0.0.1:8085", models[0]["modelName"]) if models else None


def row(*cells: object) -> str:
    return "  ".join(f"{c:>10}" if not isinstance(c, str) else f"{c:<10}" for c in cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="timed requests per measurement (default 200)"
    )
    parser.add_argument("--torchserve", metavar="URL", help="a running TorchServe inference API to compare")
    parser.add_argument("--model", metavar="NAME", help="its model name")
    args = parser.parse_args(argv)

    from mlinfra.service import torch_threads

    upload = images.make_sample("PNG", "RGB", 28)
    print(
        f"Serving benchmark: ResNet-18 (10 classes), {torch_threads()} torch threads, {os.cpu_count()} cores, "
        f"{args.requests} requests each, 28x28 PNG upload ({len(upload.data)} bytes), one keep-alive client."
    )
    print(row("model in", "raw p50", "raw p95", "served p50", "served p95", "overhead", "ratio"))
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        for size in (28, 224):
            folder = make_resnet(Path(tmp) / f"resnet18-{size}", size)
            raw = raw_forward_ms(folder, args.requests)
            server, target = serve(folder)
            try:
                served = sequential_ms(target, upload, args.requests)
                if size == 224:
                    rps = {c: throughput(target, upload, c, args.requests) for c in (1, 4)}
            finally:
                server.close()
            r50, s50 = percentile(raw, 0.5), percentile(served, 0.5)
            print(
                row(
                    f"{size} px",
                    f"{r50:.1f} ms",
                    f"{percentile(raw, 0.95):.1f} ms",
                    f"{s50:.1f} ms",
                    f"{percentile(served, 0.95):.1f} ms",
                    f"+{s50 - r50:.1f} ms",
                    f"{s50 / r50:.2f}x",
                )
            )
        print(
            f"FastAPI throughput at 224 px: concurrency 1 {rps[1]:.1f} req/s, concurrency 4 {rps[4]:.1f} req/s"
        )

    found = find_torchserve(args.torchserve, args.model)
    if found is None:
        print(
            "TorchServe: not measured (none running: `make torchserve`, or pass --torchserve URL --model NAME)"
        )
        return 0
    from autograder.assess.targets import TorchServeTarget

    ts = TorchServeTarget(*found)
    served = sequential_ms(ts, upload, args.requests)
    print(
        f"TorchServe {ts.describe()}: p50 {percentile(served, 0.5):.1f} ms, p95 {percentile(served, 0.95):.1f} ms; "
        f"throughput concurrency 1 {throughput(ts, upload, 1, args.requests):.1f} req/s, "
        f"concurrency 4 {throughput(ts, upload, 4, args.requests):.1f} req/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
