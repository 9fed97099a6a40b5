"""An untrusted answer is read within its cap after decoding too (red team 3, finding 1: a 1.8 KB answer labelled
`gzip, gzip` grew to 1 GiB in the grader's memory through httpx's own decoding)."""

from __future__ import annotations

import gzip
import http.server
import resource
import threading
import zlib
from collections.abc import Iterator

import pytest

from mlinfra.base.bounded_http import TooLarge, decode, read_capped

CAP = 1 << 20


def bomb(layers: int = 2, size: int = 1 << 30) -> bytes:
    """`size` zero bytes gzipped `layers` times (2 layers: about 1 KB on the wire)."""
    inner = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    data = b"".join(inner.compress(block) for _ in range(size >> 20)) + inner.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return bomb()


def test_a_gzip_bomb_stops_at_the_cap_in_every_layer(gzip_bomb: bytes) -> None:
    assert len(gzip_bomb) < 10_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TooLarge, match="once its gzip encoding is undone"):
        decode(gzip_bomb, "gzip, gzip", CAP)
    with pytest.raises(TooLarge):
        decode(bomb(1, 64 << 20), "gzip", CAP)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: far below the 1 GiB


@pytest.mark.parametrize(("encoding", "encode"), [
    (None, lambda b: b),
    ("identity", lambda b: b),
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
    ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
])
def test_an_honest_answer_is_decoded(encoding: str | None, encode: object) -> None:
    body = b'{"predictions": [{"label": "7", "confidence": 0.9}]}'
    assert read_capped([encode(body)], encoding, CAP) == body  # type: ignore[operator]


def test_an_encoding_the_grader_cannot_bound_is_refused_and_raw_size_is_capped() -> None:
    with pytest.raises(ValueError, match="'br'"):
        decode(b"x", "br", CAP)
    with pytest.raises(ValueError, match="broken"):
        decode(b"not gzip", "gzip", CAP)
    with pytest.raises(TooLarge, match="over 1 MB"):
        read_capped(iter([bytes(600_000), bytes(600_000)]), None, CAP)


@pytest.fixture
def bomb_server(gzip_bomb: bytes) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip, gzip")
            self.send_header("Content-Length", str(len(gzip_bomb)))
            self.end_headers()
            self.wfile.write(gzip_bomb)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_assessments_probe_gets_a_bomb_as_a_failed_answer(bomb_server: str) -> None:
    from autograder.assess import images, targets

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with targets.new_client() as client:
        reply = targets.ContractTarget(bomb_server).predict(client, images.make_sample("PNG", "L", 28))
    assert reply.status is None and "once its gzip encoding is undone" in (reply.error or "")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000
