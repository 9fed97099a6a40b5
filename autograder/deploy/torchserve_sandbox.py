"""TorchServe, and so the learner's handler, inside the grading sandbox for the lab05 deploy check: the server
is started through `python -m autograder.deploy _inner` inside bubblewrap (own network, pid and mount
namespaces), which runs TorchServe in the foreground and relays a listening unix socket (bound by the trusted side,
handed down as a descriptor) to its inference port; a relay on the host's 127.0.0.1 forwards TCP to that socket for the probes. Everything inside is
stopped by process id when the check ends.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autograder.deploy.common import TORCHSERVE_START_S


class SandboxedTorchServe:
    """TorchServe, and so the learner's handler, inside the grading sandbox (autograder.grading.sandbox: own
    network, pid and mount namespaces; the course read-only; one writable folder). Its API on the sandbox's own
    127.0.0.1 is reached through two relays: a unix socket in a folder bound into the sandbox (a socket file
    crosses a network namespace, TCP does not), and a TCP port on the host's 127.0.0.1 for the probes. The relay
    inside can only change answers the handler gives anyway; scores come from what the probes outside observe."""

    def __init__(self, work_dir: Path, lab: Any) -> None:
        import tempfile

        from mlinfra.torchserve_local import Deployment, Ports

        self.dep = Deployment(state=(work_dir / "torchserve").resolve(), name="digits", ports=Ports(8085, 8086, 8087))
        # A short folder of its own: a unix socket path must fit in 107 bytes.
        self.conn = Path(tempfile.mkdtemp(prefix="ag-ts-", dir="/tmp" if Path("/tmp").is_dir() else None))
        self.relay_dir = self.conn.with_name(self.conn.name + "-relay")
        self.memory_mb = int(getattr(lab, "memory_mb", 4096) or 4096)
        self.proc: Any = None
        self.relay: Any = None  # an autograder.relay.Relay once started
        self.spec: Any = None
        self.url = ""

    def start(self, model: Path, handler: Path) -> None:
        import sys

        from autograder.grading import sandbox
        from autograder.relay import launch_relayed
        from mlinfra.torchserve_local import config_properties, probe_image, venv_tool

        dep = self.dep
        for folder in (dep.state, dep.logs):
            folder.mkdir(parents=True, exist_ok=True)
        archive_privately(model, dep, handler)  # on the trusted side: zips the handler file, never runs it
        config = dep.state / "config.properties"
        # A bounded Java heap: the sandbox's memory limit applies to Java too.
        config.write_text(config_properties(dep) + "vmargs=-Xmx512m -XX:+UseSerialGC\n")
        # The relay's socket: bound here, in a folder the sandbox never sees, and handed down as a descriptor, so
        # nothing inside can point the relay at another socket of the host (another student's TorchServe).
        self.relay_dir.mkdir(mode=0o700)
        sock = self.relay_dir / "ts.sock"

        def inner(fd: int) -> list[str]:
            return [sys.executable, "-m", "autograder.deploy", "_inner", f"fd:{fd}", str(dep.ports.inference), "--",
                    venv_tool("torchserve"), "--start", "--foreground", "--ncs", "--model-store",
                    str(dep.state / "model-store"), "--models", f"{dep.name}={dep.name}.mar", "--ts-config",
                    str(config)]

        # Java's JIT, GC and netty threads count as tasks: a kernel's 256 would stop TorchServe starting.
        spec = sandbox.Spec(work=dep.state, conn=self.conn, kind="bwrap",
                            limits=sandbox.Limits(memory_mb=self.memory_mb, cpu_seconds=int(TORCHSERVE_START_S) + 600,
                                                  processes=2048),
                            env={"LOG_LOCATION": str(dep.logs), "METRICS_LOCATION": str(dep.logs),
                                 "PYTHONPATH": sandbox.course_pythonpath()},
                            # its folder a size-capped tmpfs (a root grader): a handler writing many files cannot
                            # fill the grader's disk; its logs go with it when the check ends
                            tmpfs_home=True)
        self.spec = spec
        self.proc, self.relay = launch_relayed(sock, inner, lambda cmd: sandbox.wrap(cmd, spec), dep.logs / "torchserve.out")
        self.url = f"http://127.0.0.1:{self.relay.port}"
        import httpx

        from mlinfra.base.wait import NotReady, wait_until

        image, last = probe_image(), ["no answer yet"]
        from mlinfra.base.bounded_http import IDENTITY, read_capped

        with httpx.Client(timeout=10, headers=IDENTITY) as client:

            def predicts() -> bool:
                try:  # the learner's handler answers: read raw and within bounds, as every probe does
                    with client.stream("POST", f"{self.url}/predictions/{dep.name}", content=image) as reply:
                        if reply.status_code == 200:
                            return True
                        body = read_capped(reply.iter_raw(), reply.headers.get("content-encoding"), 1 << 16)
                    last[0] = f"HTTP {reply.status_code}: {body[:200].decode('utf-8', errors='replace')}"
                except ValueError as exc:
                    last[0] = f"HTTP {reply.status_code}: {exc}"
                except httpx.TransportError as exc:
                    last[0] = type(exc).__name__
                return False

            try:
                # a retry interval: each round is a real prediction
                wait_until(predicts, process=self.proc, timeout=TORCHSERVE_START_S, interval=0.5, what="TorchServe")
            except NotReady as exc:
                if exc.exit_code is not None:
                    raise TimeoutError(f"TorchServe exited during start-up; see {dep.logs / 'ts_log.log'}") from None
                raise TimeoutError(f"no successful prediction within {TORCHSERVE_START_S:.0f} s (last: {last[0]})") \
                    from None

    def stop(self) -> None:
        """Every process of the sandbox, by pid (they are in sessions of their own inside it), then the relay."""
        import shutil

        from autograder.grading.sandbox import kill_tree, release_connection, teardown

        if self.proc is not None and self.proc.poll() is None:
            kill_tree(self.proc.pid, timeout=30)
            self.proc.wait(timeout=30)
        if self.spec is not None:
            teardown(self.spec)  # its pids cgroup
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        release_connection(self.conn)  # a tmpfs of its own when the grader is root: unmounted, then removed
        shutil.rmtree(self.relay_dir, ignore_errors=True)


def archive_privately(model_dir: Path, dep: Any, handler: Path) -> Path:
    """`dep`'s model archive, built by torch-model-archiver with a temporary folder of its own.

    The archiver stages an archive's files in <temporary folder>/<model name> (model_packaging_utils), so two
    archives named "digits" built at the same moment (two students graded side by side, or `make torchserve`)
    share one staging folder, and a student's archive can end up holding another's handler. A TMPDIR per check
    (inside the student's own deploy folder) gives each archive its own."""
    import shutil
    import subprocess

    from mlinfra.modelstore import CARD_FILE, LABELS_FILE, MODEL_FILE
    from mlinfra.torchserve_local import StartError, venv_tool

    missing = [n for n in (MODEL_FILE, LABELS_FILE, CARD_FILE) if not (model_dir / n).is_file()]
    if missing:
        raise StartError(f"model folder {model_dir} lacks {', '.join(missing)}: run `make model` on the grading "
                         "machine")
    store, tmp = dep.state / "model-store", dep.state / "archive-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for folder in (store, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    cmd = [venv_tool("torch-model-archiver"), "--model-name", dep.name, "--version", "1.0",
           "--serialized-file", str(model_dir / MODEL_FILE), "--handler", str(handler),
           "--extra-files", f"{model_dir / LABELS_FILE},{model_dir / CARD_FILE}",
           "--export-path", str(store), "--force"]
    env = {**os.environ, "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp)}
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if done.returncode != 0:
        raise StartError("torch-model-archiver failed: "
                         f"{''.join((done.stderr or done.stdout).strip().splitlines()[-1:])}")
    return store / f"{dep.name}.mar"


def inner_main(argv: list[str]) -> int:
    """Inside the sandbox: run TorchServe in the foreground and relay the unix socket to its inference port."""
    import asyncio
    import subprocess

    from autograder.relay import pipe

    where, port, cmd = argv[0], int(argv[1]), argv[3:]
    proc = subprocess.Popen(cmd)

    async def handle(reader: Any, writer: Any) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        if where.startswith("fd:"):  # a listening socket the trusted side bound and handed down
            import socket as socket_module

            server = await asyncio.start_unix_server(handle, sock=socket_module.socket(fileno=int(where[3:])))
        else:
            server = await asyncio.start_unix_server(handle, path=where)
        async with server:
            while proc.poll() is None:
                await asyncio.sleep(0.5)

    asyncio.run(main())
    return proc.returncode or 0
