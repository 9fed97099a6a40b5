"""The assessment's test inputs, made in memory: valid images of every kind the contract names, and bad uploads."""

from __future__ import annotations

import io
import random
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


def fresh_sample(size: int, rng: random.Random, fmt: str = "PNG", mode: str = "RGB") -> Sample:
    """An image never sent before, for a timed request: a ring and a bar placed and coloured at random and a few
    hundred random pixels, under an ordinary camera-like name, so that a service cannot answer it from a cache or
    tell it for a probe. The same size class and about the same upload size as make_sample's."""
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    pen = ImageDraw.Draw(image)
    r = max(2, size // 3 + rng.randint(-size // 10, size // 10))
    cx, cy = (size // 2 + rng.randint(-size // 8, size // 8) for _ in range(2))
    pen.ellipse((cx - r, cy - r, cx + r, cy + r), outline=tuple(rng.randrange(256) for _ in range(3)),
                width=max(1, size // 10))
    x = rng.randint(size // 10, size // 3)
    pen.rectangle((x, size // 2, x + max(1, size // 12), size - size // 6),
                  fill=tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(max(16, size * 2)):
        image.putpixel((rng.randrange(size), rng.randrange(size)), tuple(rng.randrange(256) for _ in range(3)))
    ext, ctype = ("png", "image/png") if fmt == "PNG" else ("jpg", "image/jpeg")
    return Sample(name=f"{fmt} {MODES[mode]} {size}x{size}", data=encode(image.convert(mode), fmt),
                  filename=f"IMG_{rng.randint(1000, 9999)}.{ext}", content_type=ctype)


def fresh_rng() -> random.Random:
    """A generator seeded by the trusted side at random: the images it draws cannot be known in advance."""
    import secrets

    return random.Random(secrets.randbits(64))


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
