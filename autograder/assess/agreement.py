"""Requirement 3 beyond the answer's shape: predictions that are a model's, and (for a hand-in) the course model's.

Any service: no label twice, no empty label, confidences summing to at most 1 (a softmax's top k cannot sum to
more). A hand-in (--pack): the grader holds the model the hand-in serves (the folder the sandbox is given), so it
sends a few digit-like images the probes draw, runs the same model on the same bytes itself (the course's
preprocessing, mlinfra.modelstore), and the service's labels must be the model's and its top-1 the model's on
most of them. A service that serves no model, or made-up labels, cannot pass this by the form of its answers.
"""

from __future__ import annotations

import functools
import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.assess import images

SUM_TOLERANCE = 1e-3  # rounding in a JSON answer; a softmax's top k sums to at most 1
IMAGES = 8  # digit-like images sent for the comparison
NEEDED = 6  # of IMAGES whose top-1 must be the model's: a service resizing with another filter may differ on a few
TIE = 1e-3  # the model's own top two closer than this: either label is the model's answer
CONFIDENCE_TOLERANCE = 0.1  # the top-1 confidence's room for a service preprocessing a little differently


def form_problems(body: Any) -> list[tuple[str, str]]:
    """(kind, message) for what a model's top k cannot look like: a label twice or empty ("schema"), confidences
    summing to more than 1 ("range"). Only for a body whose shape already passed check_predict_body."""
    try:
        preds = [(str(p["label"]), float(p["confidence"])) for p in body["predictions"]]
    except (KeyError, TypeError, ValueError):
        return []
    out = []
    labels = [label for label, _ in preds]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        out.append(("schema", (f"the label {repeated[0]!r} appears {labels.count(repeated[0])} times: each of "
                               "the top k is a different class")))
    if any(not label.strip() for label in labels):
        out.append(("schema", "an empty label: give the class's name from the model's labels"))
    total = sum(c for _, c in preds)
    if total > 1 + SUM_TOLERANCE:
        out.append(("range", f"the confidences sum to {total:.3g}, more than 1: they are one softmax's top k"))
    return out


def digit_image(rng: random.Random, size: int, mode: str) -> Any:
    """A handwritten digit from the course's own data (scikit-learn's 8x8 digits, upscaled to 28 px as training
    upscales them), turned, shifted and dimmed a little at random, with a few noisy pixels, then `size` px square
    in PIL `mode` ("L" or "RGB"): an image the course model has a real, varied answer for (a trained model saw
    font-drawn digits as mostly one class, and a constant answer came near the bar), and one no one can look up.
    """
    from PIL import Image

    pool, _ = digit_pool()
    pixels = (pool[rng.randrange(len(pool))] * (255.0 / 16.0) * rng.uniform(0.8, 1.0)).astype("uint8")
    canvas = Image.fromarray(pixels, "L").resize((28, 28), Image.BILINEAR)
    canvas = canvas.rotate(rng.uniform(-8, 8), resample=Image.BILINEAR,
                           translate=(rng.randint(-1, 1), rng.randint(-1, 1)))
    for _ in range(rng.randint(4, 12)):
        canvas.putpixel((rng.randrange(28), rng.randrange(28)), rng.randrange(0, 60))
    return canvas.resize((size, size), Image.BILINEAR).convert(mode)


@functools.cache
def digit_pool() -> tuple[Any, Any]:
    """The course's offline digits (images 8x8 in 0..16, labels), read once a process (30 ms)."""
    from mlinfra.data import digits_array

    return digits_array()


def digit_sample(rng: random.Random, size: int, mode: str = "RGB", name: str | None = None) -> images.Sample:
    """One digit image as a PNG upload under an ordinary camera-like name."""
    data = images.encode(digit_image(rng, size, mode), "PNG")
    return images.Sample(name=name or f"PNG {images.MODES[mode]} {size}x{size}", data=data,
                         filename=f"IMG_{rng.randint(1000, 9999)}.png", content_type="image/png")


def digit_samples(rng: random.Random, count: int = IMAGES) -> list[images.Sample]:
    """`count` digit images, half of them 28 px grey, half larger RGB."""
    out = []
    for n in range(count):
        size, mode = (28, "L") if n % 2 == 0 else (rng.choice((56, 96, 224)), "RGB")
        out.append(digit_sample(rng, size, mode, name=f"digit {n + 1} ({size}x{size})"))
    return out


def load(model_dir: Path | None) -> tuple[Any, str]:
    """The model the hand-in serves, loaded here, or (None, why not)."""
    from mlinfra.modelstore import load_model

    if model_dir is None:
        return None, "no model folder given"
    try:
        return load_model(model_dir), ""
    except Exception as exc:  # noqa: BLE001  a missing or broken folder: said, the check not scored
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"


def expected(model: Any, sample: images.Sample) -> list[dict[str, Any]]:
    """The model's own top k for the uploaded bytes, preprocessed as the course's service does."""
    from PIL import Image

    from mlinfra.modelstore import predict_rows, preprocess

    return predict_rows(model, preprocess(Image.open(io.BytesIO(sample.data)), model.card))[0]


def check(target: Any, client: Any, model: Any, answered: dict[str, Any], rng: random.Random) -> tuple[bool, str]:
    """(passed, detail) of "the model's answers": every label of every answer one of the model's, and the
    service's top-1 the model's on at least NEEDED of IMAGES digit-like images."""
    known = set(model.labels)
    samples = digit_samples(rng)
    replies = {s.name: target.predict(client, s) for s in samples}
    for name, reply in [*answered.items(), *replies.items()]:
        body = reply.body if reply.status == 200 else None
        try:
            labels = [str(p["label"]) for p in body["predictions"]]
        except (KeyError, TypeError):
            continue
        strange = [label for label in labels if label not in known]
        if strange:
            return False, (f"{name}: the label {strange[0]!r} is not one of the served model's {len(known)} labels "
                           f"(e.g. {', '.join(repr(x) for x in model.labels[:3])}): answer with the model's labels")
    agree, misses = 0, []
    for sample in samples:
        reply = replies[sample.name]
        ok, miss = agrees(model, sample, reply)
        agree += ok
        if not ok:
            misses.append(miss)
    if agree < NEEDED:
        return False, (f"the service's top-1 was the served model's on {agree} of {len(samples)} digit images "
                       f"(at least {NEEDED} needed; {misses[0]}): run the model on the uploaded image")
    return True, f"the served model's labels, and its top-1 on {agree} of {len(samples)} digit images"


def agrees(model: Any, sample: images.Sample, reply: Any) -> tuple[bool, str]:
    """(the service's top-1 in `reply` (a targets.Reply) is the model's on `sample`, label and confidence, the
    miss in words). Either of the model's own top two counts when they are closer than TIE (a service resizing
    with another filter may tip a near tie), and the confidence may differ by CONFIDENCE_TOLERANCE (the same
    reason): a made-up confidence beside the model's label is no more the model's answer than a made-up label."""
    mine = expected(model, sample)
    try:
        top = reply.body["predictions"][0] if reply.status == 200 else None
        theirs, score = (str(top["label"]), float(top["confidence"])) if top is not None else (None, None)
    except (KeyError, IndexError, TypeError, ValueError):
        theirs, score = None, None
    near_tie = len(mine) > 1 and mine[0]["confidence"] - mine[1]["confidence"] < TIE
    for row in mine[:2] if near_tie else mine[:1]:
        if theirs == row["label"] and score is not None:
            if abs(score - row["confidence"]) <= CONFIDENCE_TOLERANCE:
                return True, ""
            return False, (f"{sample.name}: the model says {row['label']!r} at {row['confidence']:.3f}, the service "
                           f"at {score:.3f}: give the model's own softmax confidence")
    said = repr(theirs) if theirs is not None else reply.describe()
    return False, f"{sample.name}: the model says {mine[0]['label']!r}, the service {said}"


@dataclass
class TimedAnswers:
    """The answers to timed requests, kept while the clock runs and compared with the model's own once it stopped.

    Every timed request is a digit image drawn at random, and every answer counts: a service cannot answer the
    checked uploads with its (slow) model and the timed ones with a fast made-up answer, because no upload is
    unchecked. A share below NEEDED / IMAGES of top-1 agreement, the same bar as "the model's answers", fails
    the size it was timed at: a fast answer that is not the model's is no measure of the model's latency.
    """

    model: Any
    kept: list[tuple[images.Sample, Any]] = field(default_factory=list)

    def keep(self, sample: images.Sample, reply: Any) -> None:
        self.kept.append((sample, reply))

    def verdict(self) -> tuple[bool, str]:
        """(passed, what the answers were) over everything kept since the last verdict; clears what it judged."""
        kept, self.kept = self.kept, []
        if not kept:
            return True, ""
        misses = []
        for sample, reply in kept:
            ok, miss = agrees(self.model, sample, reply)
            if not ok:
                misses.append(miss)
        agree = len(kept) - len(misses)
        if agree * IMAGES >= NEEDED * len(kept):
            return True, f"top-1 the served model's on {agree} of {len(kept)} timed answers"
        return False, (f"the timed answers were the served model's on only {agree} of {len(kept)} (at least "
                       f"{NEEDED / IMAGES:.0%} needed; {misses[0]}): a fast answer that is not the model's does not "
                       "count as the model's latency")
