"""Requirement 4 times the served model, not a stand-in (red team 2, findings 1 and 5): when the model a hand-in
must serve is known (`assess --pack`), every timed upload is a digit the grader's own forward answers after the
clock stopped, so a service that answers the checked uploads with a slow model and the timed ones with a fast
made-up answer, or serves no model at all, loses the latency points however fast it is."""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from autograder.assess import agreement, probes, targets

ROOT = Path(__file__).resolve().parents[2]
README = ("# s\n## How to run\nuvicorn app:app\n## API\nPOST /predict\n## Latency\np95 4 ms\n"
          "## Limitations\ndigits only\n")


class Scripted:
    """A probes.Target whose n-th upload (from 0) is answered by `answer(n, sample)` -> (predictions, elapsed ms)."""

    kind = "contract"

    def __init__(self, answer: Callable[[int, object], tuple[list[dict], float]]) -> None:
        self.answer, self.count, self.lock = answer, 0, threading.Lock()

    def predict(self, client: object, sample: object) -> targets.Reply:
        with self.lock:
            n, self.count = self.count, self.count + 1
        preds, elapsed = self.answer(n, sample)
        body = {"predictions": preds}
        return targets.Reply(200, body, json.dumps(body), elapsed, None, True)


@pytest.fixture
def private_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The latency lock in a folder of the test's own: a test never waits for (or holds up) a real assessment."""
    monkeypatch.setattr(probes.latency_lock.__wrapped__, "__defaults__",
                        (str(tmp_path / "latency.lock"), probes.LOCK_WAIT_S))


def fake(model: object, sample: object) -> list[dict]:
    """A well-formed answer that is not the model's: its labels, confidences from the upload's bytes."""
    labels = model.labels  # type: ignore[attr-defined]
    first = labels[len(sample.data) % len(labels)]  # type: ignore[attr-defined]
    return [{"label": first, "confidence": 0.7}, {"label": next(x for x in labels if x != first), "confidence": 0.2}]


def latency(target: Scripted, model_dir: Path | None) -> probes.Criterion:
    opts = probes.Options(requests=20, quiet_wait_s=0.0, model_dir=model_dir)
    return probes.latency(target, None, opts, probes.Evidence())  # type: ignore[arg-type]


@pytest.mark.usefixtures("private_lock")
def test_the_served_models_fast_answers_pass(tiny_model: Path) -> None:
    model, _ = agreement.load(tiny_model)
    crit = latency(Scripted(lambda n, s: (agreement.expected(model, s), 5.0)), tiny_model)
    assert crit.passed, [c.message for c in crit.checks]
    assert "model" not in crit.checks[0].message  # a pass reads as before: the p95 and the rounds


@pytest.mark.usefixtures("private_lock")
@pytest.mark.parametrize("honest_first", [0, 2, 30])
def test_fast_answers_that_are_not_the_models_lose_every_latency_check(tiny_model: Path, honest_first: int) -> None:
    """The model for the first `honest_first` uploads (slow: 1.5 s each), then a fast fake: by position, by count,
    or from the start (no model at all). 30 reaches into the second size's rounds: its first size fails on time."""
    model, _ = agreement.load(tiny_model)

    def answer(n: int, sample: object) -> tuple[list[dict], float]:
        return (agreement.expected(model, sample), 1500.0) if n < honest_first else (fake(model, sample), 4.0)

    crit = latency(Scripted(answer), tiny_model)
    assert not crit.passed and crit.points == 0.0, [c.message for c in crit.checks]
    if honest_first < 20:
        assert "the timed answers were the served model's on only" in crit.checks[0].message


@pytest.mark.usefixtures("private_lock")
def test_faking_only_the_concurrent_requests_fails_the_concurrency_check(tiny_model: Path) -> None:
    model, _ = agreement.load(tiny_model)
    main = threading.main_thread()

    def answer(n: int, sample: object) -> tuple[list[dict], float]:
        if threading.current_thread() is main:
            return agreement.expected(model, sample), 5.0
        return fake(model, sample), 5.0

    crit = latency(Scripted(answer), tiny_model)
    failed = {c.name: c.message for c in crit.checks if not c.passed}
    assert set(failed) == {"concurrency"}, failed
    assert "not the model's" in failed["concurrency"]


@pytest.mark.usefixtures("private_lock")
def test_without_a_known_model_the_answers_are_not_compared() -> None:
    """--app / --url: the learner's own model; the grader cannot know its answers, so timing alone decides."""
    crit = latency(Scripted(lambda n, s: ([{"label": "x", "confidence": 0.9}], 5.0)), None)
    assert crit.passed, [c.message for c in crit.checks]


def test_a_timed_answer_is_judged_against_the_bar_of_requirement_3(tiny_model: Path) -> None:
    """75% of the top-1 answers must be the model's (a service resizing with another filter may differ on a few)."""
    import random

    model, _ = agreement.load(tiny_model)
    rng = random.Random(7)
    for wrong, passed in ((5, True), (6, False)):  # of 20: 15 right passes, 14 does not
        timed = agreement.TimedAnswers(model)
        for n in range(20):
            sample = agreement.digit_sample(rng, 28)
            preds = fake(model, sample) if n < wrong else agreement.expected(model, sample)
            if n < wrong and preds[0]["label"] == agreement.expected(model, sample)[0]["label"]:
                preds = preds[::-1]  # the fake happened to guess right: make it wrong
            body = {"predictions": preds}
            timed.keep(sample, targets.Reply(200, body, json.dumps(body), 1.0, None, True))
        ok, said = timed.verdict()
        assert ok is passed, said
        assert timed.kept == []  # judged once


def slow_then_fake_pack(tmp_path: Path, name: str, honest_first: int) -> Path:
    """The course's reference service (lab07), wrapped: its first `honest_first` uploads answered by the model
    after a 0.6 s pause (a model too slow for the limit), every later one at once with a made-up answer."""
    wrapper = f'''
import json as _json
_seen = [0]
_inner = app


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] != "/predict":
        return await _inner(scope, receive, send)
    _seen[0] += 1
    if _seen[0] <= {honest_first}:
        import asyncio
        await asyncio.sleep(0.6)
        return await _inner(scope, receive, send)
    data = b""
    while True:
        message = await receive()
        data += message.get("body", b"")
        if not message.get("more_body"):
            break
    guess = sum(data) % 10  # one of the model's labels, not from the model
    body = _json.dumps({{"predictions": [{{"label": f"class-{{guess}}", "confidence": 0.7}},
                                         {{"label": f"class-{{(guess + 1) % 10}}", "confidence": 0.2}}]}})
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}})
    await send({{"type": "http.response.body", "body": body.encode()}})
'''
    pack = tmp_path / f"{name}-practical.zip"
    with zipfile.ZipFile(pack, "w") as zf:
        zf.writestr("service/app.py", (ROOT / "solutions" / "lab07-api" / "app.py").read_text() + wrapper)
        zf.writestr("README.md", README)
        zf.writestr("model_card.json", "{}")
    return pack


@pytest.mark.slow
def test_slow_model_with_fast_fakes_and_no_model_lose_latency_in_a_real_assessment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    """Red team 2's attack as handed in: 18 uploads (every checked one before requirement 4) answered by the
    model, then fakes; and a service with no model at all. Each loses requirement 4 whole."""
    from autograder.cli import main

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))  # labels class-0..9
    packs = [slow_then_fake_pack(tmp_path, "slowfake", 18), slow_then_fake_pack(tmp_path, "nomodel", 0)]
    out = tmp_path / "batch.json"
    main(["assess", "--pack", *map(str, packs), "--requests", "20", "--no-breakdown", "--json", str(out)])
    parts = {p["subject"].split(" ")[1].split("-")[0]: p["data"] for p in json.loads(out.read_text())["parts"]}
    for name in ("slowfake", "nomodel"):
        crits = {c["number"]: c for c in parts[name]["criteria"]}
        assert crits[4]["points"] == 0.0, (name, crits[4])
        assert parts[name]["score"] <= 120 - 20, (name, parts[name]["score"])


@pytest.mark.usefixtures("private_lock")
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_the_models_label_with_a_made_up_confidence_is_not_the_models_answer(tiny_model: Path, shift: float) -> None:
    """Red team 3, finding 8: the model's top-1 label at 0.99 whatever the model said scored 120/120. A confidence
    within 0.1 of the model's own passes (a service resizing a little differently); one made up does not."""
    from autograder.assess import images

    model, _ = agreement.load(tiny_model)

    def answer(n: int, sample: object) -> tuple[list[dict], float]:
        rows = [dict(r) for r in agreement.expected(model, sample)]
        made_up = 0.55 if rows[0]["confidence"] > 0.75 else 0.99  # far from the model's, whatever it said
        rows[0]["confidence"] = min(1.0, rows[0]["confidence"] + shift) if shift < 0.5 else made_up
        return rows, 5.0

    target = Scripted(answer)
    samples = images.valid_samples()
    replies = {s.name: target.predict(None, s) for s in samples}
    crit = probes.confidences(target, None, samples, replies, tiny_model)  # type: ignore[arg-type]
    check = next(c for c in crit.checks if c.name == "the model's answers")
    assert check.passed is (shift < 0.1), check.message
    if shift >= 0.1:
        assert "give the model's own softmax confidence" in check.message
        assert not latency(target, tiny_model).passed
