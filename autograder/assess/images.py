"""The assessment's test inputs, made in memory: valid images of every kind the contract names, and bad uploads."""

from __future__ import annotations

import io
from dataclasses import dataclass

FORMATS = ("PNG", "JPEG")
MODES = {"L": "grayscale", "RGB": "RGB"}
SIZES = (28, 224)
OVERSIZE_BYTES = 12 * 1024 * 1024  # the contract's limit is 10 MB; the probe sends 12 (docs/architecture.md, service API)


@dataclass(frozen=True)
class Sample:
    """One upload: what it is (for messages), its bytes, and the file name and content type a client would send."""

    name: str
    data: bytes
    filename: str
    content_type: str


def draw(size: int, mode: str, seed: int = 0) -> object:
    """A deterministic picture with some structure (a ring and a bar on a gradient), so models see real pixels."""
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    pen = ImageDraw.Draw(image)
    r = size // 3
    c = size // 2 + (seed % 3) - 1
    pen.ellipse(
        (c - r, c - r, c + r, c + r), outline=(250, 240 - 40 * (seed % 4), 30), width=max(1, size // 10)
    )
    pen.rectangle(
        (size // 5, size // 2, size // 5 + max(1, size // 12), size - size // 6), fill=(20, 200, 90)
    )
    return image.convert(mode)


def encode(image: object, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))  # type: ignore[attr-defined]
    return buf.getvalue()


def make_sample(fmt: str, mode: str, size: int, seed: int = 0) -> Sample:
    ext, ctype = ("png", "image/png") if fmt == "PNG" else ("jpg", "image/jpeg")
    return Sample(
        name=f"{fmt} {MODES[mode]} {size}x{size}",
        data=encode(draw(size, mode, seed), fmt),
        filename=f"probe-{mode.lower()}-{size}.{ext}",
        content_type=ctype,
    )


def valid_samples(sizes: tuple[int, ...] = SIZES) -> list[Sample]:
    """Every format x colour mode x size the contract promises to handle."""
    return [
        make_sample(fmt, mode, size, seed=i)
        for i, (fmt, mode, size) in enumerate((f, m, s) for s in sizes for f in FORMATS for m in MODES)
    ]


def not_an_image() -> bytes:
    return b"This is a text file, not an image.\n" * 20


def corrupt_png() -> bytes:
    """A real PNG's signature and header, then garbage: it claims to be an image and does not decode."""
    good = encode(draw(28, "L"), "PNG")
    return good[:33] + bytes((i * 37 + 11) % 256 for i in range(400))


def oversize_png() -> bytes:
    """12 MB that start like a PNG, so only a size limit (not format sniffing) can refuse it cheaply."""
    good = encode(draw(28, "L"), "PNG")
    return good[:33] + bytes(OVERSIZE_BYTES - 33)
