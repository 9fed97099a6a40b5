"""The trusted side's relay (autograder/relay.py): TCP on the host's 127.0.0.1 to a unix socket of ours."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from autograder.relay import Relay


def echo_server(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return server


def test_a_connection_reaches_the_socket_and_back_and_close_runs_the_callers_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    server = echo_server(path)
    closed = []
    relay = Relay(lambda: __import__("asyncio").open_unix_connection(str(path)), on_close=lambda: closed.append(1))
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as client:
            client.sendall(b"ping" * 40_000)  # more than one read's worth
            got = b""
            while len(got) < 160_000:
                got += client.recv(65536)
        assert got == b"PING" * 40_000
    finally:
        relay.close()
        server.close()
    assert closed == [1]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", relay.port)) != 0  # the listener is gone


def test_nothing_listening_behind_it_closes_the_connection_at_once(tmp_path: Path) -> None:
    relay = Relay.to_unix_socket(tmp_path / "nobody.sock")
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as client:
            client.settimeout(5)
            assert client.recv(10) == b""
    finally:
        relay.close()
