"""What the Docker lab's image costs: build time (cold and warm cache), image size, start to healthy, and the
latency of /predict through the container against the same service run directly on the host.

    python bench/bench_container.py [--model-dir DIR] [--requests 200] [--reset] [--no-cold]

Uses the engine `autograder dockerfile --build` uses (Docker, else podman with the course's own storage, made ready
by scripts/container-engine.sh). The model is models/digits-resnet18 when `make model` has made it, else a tiny
CNN (the figures then show the container's overhead rather than the model's cost). Builds:
- cold: every layer rebuilt (--no-cache), the base image already present;
- warm: nothing changed, every layer from the cache;
- code edit: one line of the service changed, so only the layers from `COPY mlinfra/` on are rebuilt.
--reset first wipes the course's private image storage (`podman system reset -f` with CONTAINERS_STORAGE_CONF set
to the course container cache, never the user's own) and measures the setup script's re-import of the base too.
Prints figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WORKBOOK_ROOT", str(ROOT))

from autograder import container_engine as eng
from autograder.assess.latency import percentile
from autograder.dockerfile import context as ctx
from autograder.dockerfile.build import http_ok
from autograder.errors import UsageError

LAB = ROOT / "solutions" / "lab06-docker"
BASE = "python:3.11-slim-bookworm"


def setup_engine() -> float:
    start = time.monotonic()
    subprocess.run(["bash", str(ROOT / "scripts" / "container-engine.sh"), "--base", BASE,
                    "--wheels", str(LAB / "requirements.txt")], check=True)
    return time.monotonic() - start


def tiny_model(folder: Path) -> Path:
    import torch
    from torch import nn

    from mlinfra.modelstore import ModelCard, save_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
                        nn.Linear(144, 10)).eval()
    card = ModelCard(name="tiny-bench", architecture="tiny-cnn", input_size=28, channels=1, mean=[0.5], std=[0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.14 calls torch.jit deprecated; TorchScript is the course's format
        scripted = torch.jit.trace(net, torch.zeros(1, 1, 28, 28))
        return save_model(folder, scripted, [str(i) for i in range(10)], card)


def png_28() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (28, 28), 128).save(buf, format="PNG")
    return buf.getvalue()


def predict_latency(base_url: str, requests: int) -> tuple[float, float]:
    import httpx

    body = png_28()
    samples = []
    with httpx.Client(timeout=30) as client:
        for i in range(requests + 5):
            start = time.perf_counter()
            reply = client.post(f"{base_url}/predict", files={"file": ("x.png", body, "image/png")})
            elapsed = (time.perf_counter() - start) * 1000
            reply.raise_for_status()
            if i >= 5:  # warm-up
                samples.append(elapsed)
    return percentile(samples, 0.50), percentile(samples, 0.95)


def host_latency(model_dir: Path, requests: int) -> tuple[float, float]:
    port = eng.free_port()
    env = {**os.environ, "MLINFRA_MODEL_DIR": str(model_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "mlinfra.service:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not http_ok(f"http://127.0.0.1:{port}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the host service did not come up")
            time.sleep(0.2)
        return predict_latency(f"http://127.0.0.1:{port}", requests)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--reset", action="store_true", help="wipe the course's private image storage first")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (minutes): reuse cached layers")
    args = parser.parse_args()

    if args.reset:
        from mlinfra.envcheck import course_podman_env

        env = course_podman_env()
        if not env:
            sys.exit("--reset: no course container storage (run scripts/container-engine.sh first)")
        subprocess.run(["podman", "system", "reset", "-f"], env={**os.environ, **env}, check=True,
                       capture_output=True)
        print(f"reset the course's image storage ({env['CONTAINERS_STORAGE_CONF']})")
    try:
        print(f"setup script (engine, base image, wheels): {setup_engine():.1f} s")
        engine = eng.detect(ROOT)
    except (subprocess.CalledProcessError, UsageError) as exc:
        print(f"no container engine here, nothing to measure: {exc}")
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-container-"))
    container = None
    tag = "autograder/bench-container:latest"
    try:
        default = ROOT / "models" / "digits-resnet18"
        model_dir = args.model_dir or (default if (default / "model.pt").is_file() else tiny_model(tmp / "model"))
        print(f"engine: {engine.name}; model: {model_dir}")
        context, dockerfile, _ = ctx.staged_copy(LAB / "Dockerfile", model_dir)
        (context / "Dockerfile").write_text(
            "".join(ln for ln in (LAB / "Dockerfile").read_text().splitlines(keepends=True) if "### " not in ln))

        if not args.no_cold:
            cold = eng.build(engine, context, dockerfile, tag, no_cache=True)
            print(f"build, cold cache (every layer):       {cold.seconds:7.1f} s")
        warm = eng.build(engine, context, dockerfile, tag)
        print(f"build, warm cache (nothing changed):   {warm.seconds:7.1f} s")
        service = context / "mlinfra" / "service.py"
        service.write_text(service.read_text() + "\n# an edit\n")
        edit = eng.build(engine, context, dockerfile, tag)
        print(f"build after a one-line code edit:      {edit.seconds:7.1f} s")
        if edit.size_bytes:
            print(f"image size:                            {edit.size_bytes / 1e6:7.0f} MB")

        start = time.monotonic()
        container = eng.run_container(engine, tag, 8000)
        base_url = f"http://127.0.0.1:{container.port}"
        healthy = eng.wait_healthy(container, lambda: http_ok(f"{base_url}/health"), 300)
        print(f"container start to healthy:            {healthy:7.1f} s ({time.monotonic() - start:.1f} s with run)")
        p50, p95 = predict_latency(base_url, args.requests)
        print(f"/predict in the container, 28x28 PNG:  p50 {p50:6.1f} ms   p95 {p95:6.1f} ms  ({args.requests} requests)")
        h50, h95 = host_latency(model_dir, args.requests)
        print(f"/predict on the host, same service:    p50 {h50:6.1f} ms   p95 {h95:6.1f} ms")
    finally:
        if container is not None:
            start = time.monotonic()
            container.stop()
            print(f"stop and remove the container:         {time.monotonic() - start:7.1f} s")
        engine.run("rmi", "-f", tag, check=False)
        engine.run("image", "prune", "-f", check=False, timeout=300)  # the layers the rebuilds left untagged
        shutil.rmtree(tmp, ignore_errors=True)
        if "context" in locals():
            shutil.rmtree(context.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
