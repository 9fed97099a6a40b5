"""How the trusted side reaches a server that has no network of its own: a relay on the host's 127.0.0.1.

Every learner server the grader runs (the practical's app, lab05's TorchServe, Lab 1.1's Airflow, lab06's
container) lives where TCP cannot reach it or it cannot reach anything: a sandbox's own network namespace, or a
container with `--network=none`. The grader listens on a free port of the host's 127.0.0.1 and carries each
connection over what does cross: a unix socket the trusted side bound and handed down (`launch_relayed`), or a
socket our own threads open inside the container's namespace (container_engine.NetnsRelay). The server can
answer what is sent to it and nothing else.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
Wrap = Callable[[list[str]], tuple[list[str], dict[str, str]]]  # a command -> (it in its sandbox, its environment)


class Relay:
    """A TCP listener on a free port of the host's 127.0.0.1 (`port`) that forwards each connection to what
    `opener` opens; a connection it cannot open (nothing listens yet) is closed at once. `on_close` runs after
    the listener stopped (the caller's own resources: a thread pool, a namespace descriptor)."""

    def __init__(self, opener: Opener, name: str = "relay", on_close: Callable[[], None] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.on_close = on_close
        ready = threading.Event()
        box: dict[str, asyncio.Server] = {}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await opener()
            except (OSError, RuntimeError):  # refused, or the relay is closing
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def serve() -> None:
            box["server"] = await asyncio.start_server(handle, "127.0.0.1", 0)
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(serve())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True, name=f"{name}-loop")
        self.thread.start()
        if not ready.wait(10):
            raise OSError("the relay's listener did not start within 10 s")
        self.server = box["server"]
        self.port = int(self.server.sockets[0].getsockname()[1])

    @classmethod
    def to_unix_socket(cls, path: Path) -> Relay:
        return cls(lambda: asyncio.open_unix_connection(str(path)), name="unix-relay")

    def close(self) -> None:
        """Stop listening, end the connections still open (their pipes finish, closing both ends), stop."""
        import contextlib

        async def shutdown() -> None:
            self.server.close()
            open_pipes = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in open_pipes:
                task.cancel()
            await asyncio.gather(*open_pipes, return_exceptions=True)

        if self.thread.is_alive():
            with contextlib.suppress(Exception):  # a loop already stopped: nothing left to end
                asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if self.on_close is not None:
            self.on_close()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file or a broken connection, then close the writing side."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def launch_relayed(sock_path: Path, inner: Callable[[int], list[str]], wrap: Wrap, log: Path,
                   env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Relay]:
    """Start `inner(fd)` (the command inside, given the descriptor of a listening unix socket bound at
    `sock_path` by us) as `wrap` puts it in its sandbox (`lambda cmd: sandbox.wrap(cmd, spec)`: the command and
    its environment), its output appended to `log`, and a Relay from the host's 127.0.0.1 to that socket. `env`:
    variables under the sandbox's own (a sandbox of kind "none" passes the grader's environment this way). The
    socket is ours, bound before the server starts: nothing inside can point the relay at another socket of the
    host."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(sock_path))
        listener.listen(128)
        listener.set_inheritable(True)
        cmd, full_env = wrap(inner(listener.fileno()))
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, env={**(env or {}), **full_env}, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=(listener.fileno(),))
    finally:
        listener.close()  # the server inside holds its own copy
    return proc, Relay.to_unix_socket(sock_path)
