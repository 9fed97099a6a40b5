"""Serving near the machine's limit: the course model raw, behind the reference FastAPI service, and on TorchServe.

    python bench/bench_serving.py [--requests 200] [--model-dir models/digits-resnet18] [--no-torchserve]
                                  [--modes batch,threads] [--clients raw,httpx]

One run, side by side, on the course model (`make model`):

- raw forward p50 (batch 1) with the service's torch threads and with ONE thread; "the cores' limit" is
  cores x 1000 / (one-thread p50): what the machine could serve if every core ran one forward after another;
- served latency (one keep-alive client, p50/p99) of a 28 px PNG and a 224 px JPEG upload, and the p50 overhead
  over the raw forward; for the service's two engines (MLINFRA_SERVE_MODE=batch, the default: dynamic batching;
  threads: one torch thread per request, one request per core) and TorchServe with batching on (batch_size 8,
  max_batch_delay 5 ms, the course's handler; skipped without Java);
- throughput (requests/s) with 1, 4 and 8 clients at once, and its share of the cores' limit.

Two clients, both keep-alive, both in this process and so on the same cores as the server: ``raw`` sends a request
encoded once, over a plain socket, and reads the answer by its Content-Length (about 0.05 ms of CPU a request);
``httpx`` is the assessment's client, which builds the multipart body and parses the answer every time (about
0.5 ms a request). The raw client's figures are the server's; the httpx ones are what `autograder assess` sees.
The CPU columns give both sides' CPU time per request. Prints figures; never fails on time.
Goal (issue 16): p50 overhead <= +1.5 ms at both sizes; at 4 clients >= 85% of the cores' limit, no lower at 8.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.assess import images
from autograder.assess.latency import percentile

LEVELS = (1, 4, 8)
TS_PORTS = (18085, 18086, 18087, 17070, 17071)  # not the course's 8085-8087: a `make torchserve` may be running
MODEL_NAME = "bench_digits"  # torch-model-archiver works in $TMPDIR/<name>: a name of its own, and a TMPDIR too


def uploads() -> dict[str, images.Sample]:
    return {"28 px PNG": images.make_sample("PNG", "L", 28), "224 px JPEG": images.make_sample("JPEG", "RGB", 224)}


def process_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children: what serving costs, whatever the
    machine's load does to wall time."""
    import psutil

    try:
        procs = [psutil.Process(root_pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def raw_forward_cpu_ms(model: Any, sample: images.Sample, runs: int) -> float:
    """CPU milliseconds per forward (batch 1, one torch thread), for the CPU overhead column."""
    start = time.process_time()
    raw_forward_ms(model, sample, runs, 1)
    return (time.process_time() - start) * 1000 / (runs + 20)


def raw_forward_ms(model: Any, sample: images.Sample, runs: int, threads: int, warmup: int = 20) -> list[float]:
    import torch

    from autograder.assess.breakdown import raw_forward_ms as forward_ms

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return forward_ms(model, sample, runs, warmup=warmup)
    finally:
        torch.set_num_threads(previous)


class RawClient:
    """One keep-alive HTTP/1.1 connection that sends the same request, encoded once, and reads each answer by its
    Content-Length: a client that costs the cores next to nothing, so the figures are the server's."""

    def __init__(self, url: str, request: bytes) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = request

    def send(self) -> tuple[int, bytes]:
        """The answer's status and body."""
        self.sock.sendall(self.request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._recv()
        head = data[:end].decode("latin-1").split("\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        status, data = int(head[0].split()[1]), data[end + 4:]
        if "content-length" in fields:
            while len(data) < int(fields["content-length"]):
                data += self._recv()
            return status, data[:int(fields["content-length"])]
        if fields.get("transfer-encoding", "").lower() != "chunked":
            raise SystemExit(f"bench: an answer with neither Content-Length nor chunks: {head[0]} {fields}")
        body = b""
        while True:  # chunks: a hex size line, the bytes, CRLF; the last one is size 0 then an empty line
            while (eol := data.find(b"\r\n")) < 0:
                data += self._recv()
            size = int(data[:eol].split(b";")[0], 16)
            while len(data) < eol + 2 + size + 2:
                data += self._recv()
            body, data = body + data[eol + 2:eol + 2 + size], data[eol + 2 + size + 2:]
            if size == 0:
                return status, body

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SystemExit("bench: the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def encoded_request(target: Any, sample: images.Sample) -> tuple[str, bytes]:
    """The URL and the bytes of one prediction request, as `target.predict` would send them."""
    from autograder.assess.targets import TorchServeTarget
    from mlinfra.contract import PREDICT_PATH, UPLOAD_FIELD

    if isinstance(target, TorchServeTarget):
        url, ctype, body = target.predictions_url, sample.content_type, sample.data
    else:
        url, boundary = target.url(PREDICT_PATH), "bench-serving-boundary"
        ctype = f"multipart/form-data; boundary={boundary}"
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{UPLOAD_FIELD}"; filename="{sample.filename}"'
                f"\r\nContent-Type: {sample.content_type}\r\n\r\n").encode() + sample.data
        body += f"\r\n--{boundary}--\r\n".encode()
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return url, head.encode() + body


@dataclass
class Client:
    """How the bench sends requests: ``raw`` (RawClient) or ``httpx`` (the assessment's client)."""

    kind: str

    def sequential_ms(self, target: Any, sample: images.Sample, runs: int, between: Any = None,
                      every: int = 20) -> tuple[list[float], float]:
        """`runs` timed requests one after another (after 20 untimed), calling `between()` before every `every`
        of them; and the client's CPU ms a request."""
        from autograder.assess.targets import new_client

        with contextlib.ExitStack() as stack:
            if self.kind == "httpx":
                client = stack.enter_context(new_client())

                def send() -> float:
                    reply = target.predict(client, sample)
                    if reply.status != 200:
                        raise SystemExit(f"bench: a request failed: {reply.describe()}")
                    return reply.elapsed_ms
            else:
                raw = RawClient(*encoded_request(target, sample))
                stack.callback(raw.close)

                def send() -> float:
                    start = time.perf_counter()
                    status, body = raw.send()
                    elapsed = (time.perf_counter() - start) * 1000
                    check(status, body)
                    return elapsed

            for _ in range(20):
                send()
            times, cpu = [], 0.0
            for i in range(runs):
                if between is not None and i % every == 0:
                    between()
                start = time.process_time()
                times.append(send())
                cpu += time.process_time() - start
            return times, cpu * 1000 / runs

    def throughput(self, target: Any, sample: images.Sample, clients: int, total: int) -> tuple[float, float]:
        """Requests/s with `clients` keep-alive clients sending back to back; and the clients' CPU ms a request."""
        if self.kind == "httpx":
            from autograder.assess.breakdown import throughput as measure

            errors: list[str] = []
            cpu = time.process_time()
            rate, _ = measure(target, sample, clients, total, warmup=3, least=10, barrier_timeout=120,
                              errors=errors)
            cpu = time.process_time() - cpu
            if errors:
                raise SystemExit(f"bench: {len(errors)} concurrent requests failed, e.g. {errors[0]}")
            return rate, cpu * 1000 / (max(10, total // clients) * clients)
        per = max(10, total // clients)
        raws = [RawClient(*encoded_request(target, sample)) for _ in range(clients)]
        barrier = threading.Barrier(clients + 1, timeout=120)
        failures: list[str] = []

        def run(raw: RawClient) -> None:
            for _ in range(3):  # warm up the connection before the clock starts
                raw.send()
            barrier.wait()
            for _ in range(per):
                status, body = raw.send()
                if status != 200:
                    failures.append(f"{status} {body[:200]!r}")

        threads = [threading.Thread(target=run, args=(raw,), daemon=True) for raw in raws]
        try:
            for thread in threads:
                thread.start()
            barrier.wait()
            start, cpu = time.perf_counter(), time.process_time()
            for thread in threads:
                thread.join()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            for raw in raws:
                raw.close()
        if failures:
            raise SystemExit(f"bench: {len(failures)} concurrent requests failed, e.g. {failures[0]}")
        return per * clients / elapsed, cpu * 1000 / (per * clients)


def check(status: int, body: bytes) -> None:
    if status != 200 or not body.startswith((b"{", b"[")):
        raise SystemExit(f"bench: a request failed: {status} {body[:200]!r}")


def serve_fastapi(model_dir: Path, mode: str) -> tuple[Any, Any]:
    from autograder.assess.server import AppSpec, UvicornServer, wait_until_ready
    from autograder.assess.targets import ContractTarget, new_client

    os.environ["MLINFRA_MODEL_DIR"] = str(model_dir)
    os.environ["MLINFRA_SERVE_MODE"] = mode
    server = UvicornServer(AppSpec("mlinfra.service", "app", None))
    server.start()
    target = ContractTarget(server.url)
    with new_client() as client:
        ready = wait_until_ready(lambda: target.ready(client), 120, server.exit_code)
    if not ready.ready:
        server.close()
        raise SystemExit(f"bench: the service did not start: {ready.reason}\n" + "\n".join(server.log_tail()))
    return server, target


class BatchingTorchServe:
    """A private TorchServe (own state folder and ports) serving the course model with batching on."""

    def __init__(self, model_dir: Path, state: Path, batch_size: int = 8, delay_ms: int = 5) -> None:
        from mlinfra import torchserve_local as ts

        self.ts = ts
        self.dep = ts.Deployment(state=state, name=MODEL_NAME, ports=ts.Ports(*TS_PORTS))
        self.model_dir, self.batch_size, self.delay_ms = model_dir, batch_size, delay_ms

    def __enter__(self) -> Any:
        import httpx

        from autograder.assess.targets import TorchServeTarget

        os.environ["TMPDIR"] = str(self.dep.state / "archiver-tmp")  # the archiver's scratch folder, ours alone
        (self.dep.state / "archiver-tmp").mkdir(parents=True, exist_ok=True)
        # TorchServe 0.11+ refuses to register models over its API unless the config allows it (405 otherwise).
        config = self.ts.config_properties(self.dep) + "enable_model_api=true\n"
        self.ts.start(self.dep, self.model_dir, timeout=240, config_text=config)
        manage = self.dep.management_url
        try:
            # Register the same archive again with batching on (batch_size requests a forward, waiting up to
            # delay_ms for them), then take the unbatched one's worker away so the two never share the cores.
            httpx.post(
                f"{manage}/models",
                params={"url": f"{MODEL_NAME}.mar", "model_name": "digits_batched", "batch_size": self.batch_size,
                        "max_batch_delay": self.delay_ms, "initial_workers": 1, "synchronous": "true"},
                timeout=240,
            ).raise_for_status()
            httpx.put(f"{manage}/models/{MODEL_NAME}", params={"min_worker": 0, "max_worker": 0, "synchronous": "true"},
                      timeout=120)
        except BaseException:
            self.ts.stop(self.dep)  # started here: stopped here, whatever went wrong
            raise
        return TorchServeTarget(self.dep.inference_url, "digits_batched")

    def __exit__(self, *exc: object) -> None:
        self.ts.stop(self.dep)


def ts_pid(state: Path) -> int:
    from mlinfra import torchserve_local as ts

    return ts.running_pid(ts.Deployment(state=state, name=MODEL_NAME, ports=ts.Ports(*TS_PORTS))) or 0


def fmt(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per measurement (default 200)")
    parser.add_argument("--model-dir", type=Path, help="the model folder (default: the course model, make model)")
    parser.add_argument("--no-torchserve", action="store_true", help="skip TorchServe (it needs Java 11+)")
    parser.add_argument("--modes", default="batch,threads", help="service engines to measure (default batch,threads)")
    parser.add_argument("--clients", default="raw,httpx", help="clients to measure with (default raw,httpx)")
    args = parser.parse_args(argv)
    kinds = [Client(k.strip()) for k in args.clients.split(",") if k.strip()]
    if not kinds or any(c.kind not in ("raw", "httpx") for c in kinds):
        parser.error(f"--clients {args.clients!r}: give raw, httpx or both (raw,httpx)")

    from mlinfra.modelstore import ModelNotFound, load_model, model_dir_from_env, torch_threads

    model_dir = (args.model_dir or model_dir_from_env()).resolve()
    try:
        model = load_model(model_dir)
    except ModelNotFound as exc:
        print(f"bench_serving: {exc}", file=sys.stderr)
        return 2
    cores, threads = os.cpu_count() or 1, torch_threads()
    samples = uploads()
    # The service runs each forward on one torch thread (one per core in flight): its overhead is against that.
    raw = {name: percentile(raw_forward_ms(model, s, args.requests, 1), 0.5) for name, s in samples.items()}
    one = raw["28 px PNG"]
    many = percentile(raw_forward_ms(model, samples["28 px PNG"], args.requests, threads), 0.5)
    limit = cores * 1000 / one
    raw_cpu = {name: raw_forward_cpu_ms(model, s, args.requests) for name, s in samples.items()}
    print(f"Serving benchmark: {model.card.name} ({model.card.architecture}, input {model.card.input_size} px), "
          f"{cores} cores, load average {os.getloadavg()[0]:.1f}, {args.requests} requests a measurement")
    print(f"raw forward p50 (batch 1): {fmt(one)} ms with 1 torch thread (the service's), {fmt(many)} ms with "
          f"{threads}; the cores' limit: {cores} x 1000 / {fmt(one)} = {limit:.0f} requests/s")
    print()
    header = f"{'server':<28}{'client':<7}{'upload':<13}{'raw':>7}{'p50 ms':>8}{'p99 ms':>8}{'overhead':>10}{'CPU ms':>8}"
    header += f"{'CPU over':>9}{'client':>8}" + "".join(f"{f'{c} client' + ('s' if c > 1 else ''):>12}" for c in LEVELS)
    print(header)

    def measure(name: str, target: Any, pid: int) -> None:
        for client in kinds:
            for label, sample in samples.items():
                # Raw forwards in blocks between the served requests: both see the same load, whatever it does.
                forwards: list[float] = []

                def between(sample: images.Sample = sample, forwards: list[float] = forwards) -> None:
                    forwards.extend(raw_forward_ms(model, sample, 10, 1, warmup=2))

                before = process_cpu_s(pid)
                served, client_cpu = client.sequential_ms(target, sample, args.requests, between)
                cpu = (process_cpu_s(pid) - before) * 1000 / (args.requests + 20)
                p50, raw_p50 = percentile(served, 0.5), percentile(forwards, 0.5)
                line = f"{name:<28}{client.kind:<7}{label:<13}{fmt(raw_p50):>7}{fmt(p50):>8}"
                line += f"{fmt(percentile(served, 0.99)):>8}{f'{p50 - raw_p50:+.2f}':>10}{fmt(cpu):>8}"
                line += f"{f'{cpu - raw_cpu[label]:+.2f}':>9}{client_cpu:>8.2f}"
                if label == "28 px PNG":
                    for c in LEVELS:
                        forwards = raw_forward_ms(model, sample, 30, 1, warmup=2)
                        rate = client.throughput(target, sample, c, args.requests)[0]
                        forwards += raw_forward_ms(model, sample, 30, 1, warmup=2)
                        limit_now = cores * 1000 / percentile(forwards, 0.5)
                        line += f"{f'{rate:.0f}/s {100 * rate / limit_now:.0f}%':>12}"
                print(line, flush=True)

    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        server, target = serve_fastapi(model_dir, mode)
        try:
            measure(f"FastAPI ({mode})", target, server.proc.pid)
        finally:
            server.close()
    if args.no_torchserve:
        print("TorchServe: skipped (--no-torchserve)")
        return 0
    import httpx

    from mlinfra.torchserve_local import StartError

    with tempfile.TemporaryDirectory(prefix="bench-torchserve-") as tmp:
        try:
            with BatchingTorchServe(model_dir, Path(tmp)) as ts_target:
                measure("TorchServe (batch 8, 5 ms)", ts_target, ts_pid(Path(tmp)))
        except (StartError, TimeoutError, OSError, httpx.HTTPError) as exc:
            print(f"TorchServe: not measured ({exc})")
    print("\nraw: the raw forward's p50 (1 torch thread), timed in blocks of 10 between the served requests; overhead: "
          "served p50 - raw p50 (wall time: the machine's load is in both). CPU ms: the server's CPU "
          "time per request (all its processes), CPU over: that minus the raw forward's CPU time (load-independent); "
          "client: the client's CPU ms per request (one client, one request at a time).")
    print("throughput columns: requests/s with 1, 4, 8 clients sending at once (28 px PNG), and the share of the "
          "cores' limit, from raw forwards timed just before and after each level; the clients share the cores. Load average now: "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
