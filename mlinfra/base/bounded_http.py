"""Reading an HTTP answer from a server the grader does not trust (a learner's service, an API server inside a
sandbox), within a size bound that holds after decoding too.

httpx decodes a `Content-Encoding: gzip` answer as it streams (`iter_bytes`), a whole network chunk at a time: 1.8 KB
labelled `gzip, gzip` became 1 GiB in the grader's memory before any cap on the decoded size could look at it. So
the client asks for no encoding (`IDENTITY`), the answer is read raw (`iter_raw`) under the cap, and an encoding
sent anyway is undone here one layer at a time, each layer stopped at the cap (zlib's `max_length`).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable

IDENTITY = {"Accept-Encoding": "identity"}  # headers for a client reading untrusted answers


class TooLarge(ValueError):
    """The answer, raw or decoded, passed the cap (or its deadline): the message says which."""


def read_capped(raw_chunks: Iterable[bytes], encoding: str | None, cap: int, deadline: float | None = None) -> bytes:
    """The answer's bytes from its raw chunks (httpx's `response.iter_raw()`), decoded from `encoding` (the
    Content-Encoding header: gzip, x-gzip, deflate or identity, in any number of layers), at most `cap` bytes raw
    and decoded; `deadline` a time.monotonic() the whole read must end by. Raises TooLarge, or ValueError for an
    encoding the grader cannot undo within bounds (br, zstd, a broken stream)."""
    raw, size = [], 0
    for chunk in raw_chunks:
        raw.append(chunk)
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"an answer over {cap // 2**20 or 1} MB (cut off there)")
        if deadline is not None and time.monotonic() > deadline:
            raise TooLarge("an answer still arriving at its deadline (cut off there)")
    return decode(b"".join(raw), encoding, cap)


def decode(body: bytes, encoding: str | None, cap: int) -> bytes:
    """`body` with its Content-Encoding layers undone, last applied first, none allowed past `cap` bytes."""
    layers = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    for coding in reversed(layers):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            wbits = 16 + zlib.MAX_WBITS
        elif coding == "deflate":
            wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS  # zlib-wrapped, or raw as some send
        else:
            raise ValueError(f"an answer in Content-Encoding {coding!r}, which the grader did not ask for (it asks "
                             "for none: send the body as it is)")
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, cap + 1)
        except zlib.error as exc:
            raise ValueError(f"an answer whose {coding} encoding is broken ({exc})") from None
        if len(out) > cap or inflater.unconsumed_tail:
            raise TooLarge(f"an answer over {cap // 2**20 or 1} MB once its {coding} encoding is undone (cut off "
                           "there)")
        body = out
    return body
