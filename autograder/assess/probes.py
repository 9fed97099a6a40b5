"""The five requirements of the practical assessment, each scored from checks with a plain-language verdict.

Pass rule: the assessment passes when every requirement passes, that is when every check passes (100 of 100
points). Points within a requirement are shared equally among its checks, so the score shows how close the
service came. Requirements run in order, and the error-handling probes run last, because a service that dies on
bad input must not cost the other requirements their points.

Each probe's result is the base `Check` (mlinfra.base.results), passed or failed with its detail as the message
(`probe_check`): the assessment's own record of a probe (name, passed, detail) is gone. `assess --json` still
writes a requirement's checks as {name, passed, detail}, converted at its edge (report.check_dict).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from autograder.assess import images
from autograder.assess.latency import (
    QUIET_WAIT_S,
    Rule,
    SizeResult,
    measure,
    own_wait_ms,
    percentile,
    run_queue_wait_ms,
)

# The machine-wide latency lock lives in lock.py; callers (deploy checks, the breakdown, tests) reach it here too.
from autograder.assess.lock import LOCK_HOLD_S, LOCK_PATH, LOCK_WAIT_S, latency_lock  # noqa: F401 - re-exported
from autograder.assess.targets import BadRequest, Reply, new_client
from mlinfra.base.results import FAILED, PASSED, Check

POINTS_EACH = 20.0
TITLES = {
    1: "Deployed and reachable over HTTP",
    2: "Processes image input (PNG/JPEG, grayscale/RGB, 28-224 px)",
    3: "Returns predictions with confidence scores",
    4: "Latency under 500 ms for small images",
    5: "Basic error handling (4xx with a reason, keeps serving)",
}


class Target(Protocol):
    kind: str

    def describe(self) -> str: ...
    def readiness_rule(self) -> str: ...
    def ready(self, client: Any) -> Reply: ...
    def predict(self, client: Any, sample: images.Sample) -> Reply: ...
    def bad_requests(self) -> list[BadRequest]: ...


def probe_check(name: str, passed: bool, detail: str) -> Check:
    """One probe's result: passed or failed, the detail (what was sent and what came back) as its message."""
    return Check(name, PASSED if passed else FAILED, message=detail)


@dataclass
class Criterion:
    number: int
    title: str
    max_points: float
    checks: list[Check] = field(default_factory=list)
    verdict: str = ""

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def points(self) -> float:
        if not self.checks:
            return 0.0
        return round(self.max_points * sum(c.passed for c in self.checks) / len(self.checks), 1)


@dataclass
class Options:
    requests: int = 50
    concurrency: int = 4
    per_client: int = 5
    sizes: tuple[int, ...] = images.SIZES
    warmup: int = 2  # untimed requests before each size's rounds
    quiet_wait_s: float = QUIET_WAIT_S  # the longest wait for a quieter machine before a busy round is measured again
    service_pid: int | None = None  # the service's process, when this assessment started it (its run-queue wait)
    # The model the service must serve (a hand-in: the course model the sandbox is given): its answers are
    # compared with this model's own on the same images (agreement.py). None: the answers' form alone is checked.
    model_dir: Any = None


@dataclass
class Concurrency:
    clients: int
    requests: int
    errors: list[str]
    seconds: float
    samples_ms: list[float]

    @property
    def throughput(self) -> float:
        return len(self.samples_ms) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Evidence:
    """What the probes measured, beyond the verdicts: the report's figures and histogram come from here."""

    latency: list[SizeResult] = field(default_factory=list)
    concurrency: Concurrency | None = None
    lock_wait_s: float = 0.0  # waited for another assessment's latency probes on this machine


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reachable(target: Target, ready: Reply, startup_s: float | None) -> Criterion:
    crit = Criterion(1, TITLES[1], POINTS_EACH)
    took = f" after {startup_s:.1f} s" if startup_s is not None else ""
    ok = ready.status == 200 and ready.is_json
    detail = (
        f"{target.readiness_rule()}{took}" if ok else f"{target.readiness_rule()}: got {ready.describe()}"
    )
    if ready.status == 200 and not ready.is_json:
        detail = f"health answered 200 but not with JSON ({ready.describe()}): return a JSON object"
    crit.checks.append(probe_check("health", ok, detail))
    crit.verdict = f"reachable at {target.describe()}{took}" if ok else detail
    return crit


def processes_images(
    target: Target, client: Any, samples: list[images.Sample], replies: dict[str, Reply]
) -> Criterion:
    crit = Criterion(2, TITLES[2], POINTS_EACH)
    for sample in samples:
        reply = target.predict(client, sample)
        replies[sample.name] = reply
        body = reply.body
        ok = (
            reply.status == 200
            and isinstance(body, dict)
            and isinstance(body.get("predictions"), list)
            and bool(body["predictions"])
        )
        detail = (
            "200 with predictions"
            if ok
            else f"expected 200 with a 'predictions' list, got {reply.describe()}"
        )
        crit.checks.append(probe_check(sample.name, ok, detail))
    failed = [c.name for c in crit.checks if not c.passed]
    crit.verdict = (
        f"all {len(samples)} kinds of image classified"
        if not failed
        else f"failed on {', '.join(failed)}: convert any mode to the model's and resize to its input"
    )
    return crit


def top1(body: Any) -> tuple[str, float, float] | None:
    """(label, confidence, runner-up confidence) of a contract body, or None when it has none."""
    try:
        preds = body["predictions"]
        second = float(preds[1]["confidence"]) if len(preds) > 1 else -1.0
        return str(preds[0]["label"]), float(preds[0]["confidence"]), second
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def confidences(
    target: Target, client: Any, samples: list[images.Sample], replies: dict[str, Reply], model_dir: Any = None
) -> Criterion:
    from autograder.assess import agreement
    from mlinfra.contract import check_predict_body

    crit = Criterion(3, TITLES[3], POINTS_EACH)
    model, why = agreement.load(model_dir) if model_dir is not None else (None, "")
    if why:  # the grader's own folder: not the service's fault, so not scored; said
        say(f"  the served model's answers not compared: the model folder {model_dir} does not load ({why})")
    answered = {name: r for name, r in replies.items() if r.status == 200}
    if not answered:
        names = ["schema", "confidences in [0, 1]", "sorted", "top k <= 5", "top-1 consistent"]
        for name in names + (["the model's answers"] if model is not None else []):
            crit.checks.append(probe_check(name, False, "no prediction came back to check (see requirement 2)"))
        crit.verdict = "no image was classified, so there was nothing to check"
        return crit
    found: dict[str, list[str]] = {"schema": [], "range": [], "order": [], "count": []}
    for name, reply in answered.items():
        problems = check_predict_body(reply.body)
        for problem in problems:
            found[problem.kind].append(f"{name}: {problem.message}")
        for kind, message in agreement.form_problems(reply.body) if not problems else []:
            found[kind].append(f"{name}: {message}")
    for kind, check_name, good in (
        ("schema", "schema", ("every answer is {'predictions': [{'label': str, 'confidence': number}]}, each "
                              "label once")),
        ("range", "confidences in [0, 1]", "every confidence lies in [0, 1], and they sum to at most 1"),
        ("order", "sorted", "most confident first in every answer"),
        ("count", "top k <= 5", "between 1 and 5 predictions in every answer"),
    ):
        problems = found[kind]
        detail = (
            good
            if not problems
            else problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
        crit.checks.append(probe_check(check_name, not problems, detail))
    crit.checks.append(consistency(target, client, samples, answered))
    if model is not None:
        ok, detail = agreement.check(target, client, model, answered, images.fresh_rng())
        crit.checks.append(probe_check("the model's answers", ok, detail))
    failed = [c for c in crit.checks if not c.passed]
    crit.verdict = (
        "labels with confidences, sorted, top-1 stable" + (", the served model's" if model is not None else "")
        if not failed
        else "; ".join(f"{c.name}: {c.message}" for c in failed[:2])
    )
    return crit


def consistency(
    target: Target, client: Any, samples: list[images.Sample], answered: dict[str, Reply]
) -> Check:
    """The same image twice must give the same top-1 label (a tie between the top two may go either way)."""
    mismatches, compared = [], 0
    for sample in samples:
        first = top1(answered[sample.name].body) if sample.name in answered else None
        if first is None:
            continue
        again = target.predict(client, sample)
        second = top1(again.body) if again.status == 200 else None
        compared += 1
        if second is None:
            mismatches.append(f"{sample.name}: the repeat answered {again.describe()}")
        elif second[0] != first[0] and abs(first[1] - first[2]) > 1e-6:
            mismatches.append(f"{sample.name}: top-1 '{first[0]}' then '{second[0]}'")
        if compared == 2:
            break
    if compared == 0:
        return probe_check("top-1 consistent", False, "no answer had a top-1 label to compare")
    if mismatches:
        return probe_check(
            "top-1 consistent", False, f"{mismatches[0]}: the model must be deterministic (eval mode)"
        )
    return probe_check("top-1 consistent", True, f"{compared} images sent twice gave the same top-1 label")


def latency(
    target: Target,
    client: Any,
    opts: Options,
    evidence: Evidence,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> Criterion:
    from autograder.assess import deadlines

    with latency_lock() as waited, deadlines.budget(LOCK_HOLD_S, f"the latency probes' {LOCK_HOLD_S:g} s ran out"):
        evidence.lock_wait_s = waited
        return _latency(target, client, opts, evidence, progress)


def _latency(
    target: Target,
    client: Any,
    opts: Options,
    evidence: Evidence,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> Criterion:
    crit = Criterion(4, TITLES[4], POINTS_EACH)
    rule = Rule(n=opts.requests)
    decided_fail = False
    # Every request (warm-up, timed, concurrent) sends an image never sent before: an answer from a cache would
    # time the cache, not the model. Drawn before the clock starts (targets.send times the request alone).
    rng = images.fresh_rng()
    timed = timed_answers(opts.model_dir)
    for size in opts.sizes:
        name = f"p95 at {size}x{size} PNG"
        if decided_fail:
            crit.checks.append(probe_check(name, False, "not measured: the latency verdict was already certain"))
            continue

        def request(size: int = size) -> tuple[float, str | None]:
            sample = upload(size, rng, timed)
            reply = target.predict(client, sample)
            if timed is not None:
                timed.keep(sample, reply)
            return reply.elapsed_ms, (None if reply.status == 200 else reply.describe())

        tick = progress(name, rule.n) if progress else None
        pid = opts.service_pid
        result = measure(f"{size}x{size}", request, rule, warmup=opts.warmup, tick=tick,
                         quiet_wait_s=opts.quiet_wait_s,
                         queued=(lambda pid=pid: _queued_ms(pid)) if pid is not None else None)
        if timed is not None:  # after the clock: the grader's own forward on every upload timed at this size
            theirs, said = timed.verdict()
            if result.passed and not theirs:
                result.passed, result.verdict = False, f"{result.verdict}, but {said}"
        evidence.latency.append(result)
        crit.checks.append(probe_check(name, result.passed, result.verdict))
        decided_fail = not result.passed
    if decided_fail:
        crit.checks.append(probe_check("concurrency", False, "not run: the latency verdict was already certain"))
    else:
        evidence.concurrency = concurrent(target, min(opts.sizes), opts.concurrency, opts.per_client, rng, timed)
        c = evidence.concurrency
        ok = not c.errors
        detail = (
            f"{c.clients} clients x {opts.per_client} requests at once: no errors, "
            f"p95 {percentile(c.samples_ms, 0.95):.1f} ms, {c.throughput:.0f} requests/s"
            if ok
            else f"{len(c.errors)} of {c.requests} concurrent requests failed: {c.errors[0]}"
        )
        if ok and timed is not None:
            ok, said = timed.verdict()
            detail = detail if ok else f"{detail}, but {said}"
        crit.checks.append(probe_check("concurrency", ok, detail))
    failed = [c for c in crit.checks if not c.passed]
    crit.verdict = (
        "fast enough at every size, and no errors under concurrent load"
        if not failed
        else f"{failed[0].name}: {failed[0].message}"
    )
    return crit


def timed_answers(model_dir: Any) -> Any:
    """An agreement.TimedAnswers when the model the service must serve is known and loads (a hand-in), else None:
    then only the answers' form is checked, as in requirement 3."""
    from autograder.assess import agreement

    if model_dir is None:
        return None
    model, _ = agreement.load(model_dir)  # a folder that does not load was said once, in requirement 3
    return agreement.TimedAnswers(model) if model is not None else None


def upload(size: int, rng: Any, timed: Any) -> images.Sample:
    """A fresh image for a timed request: a digit the model has a real answer for when the answers are checked
    (timed is not None), else a ring and a bar with random pixels."""
    from autograder.assess import agreement

    if timed is not None:
        return agreement.digit_sample(rng, size)
    return images.fresh_sample(size, rng)


def _queued_ms(pid: int) -> float | None:
    """The service's run-queue wait (its process tree) plus this client's own, in ms; None when unreadable."""
    service = run_queue_wait_ms(pid)
    return None if service is None else service + own_wait_ms()


def concurrent(target: Target, size: int, clients: int, per_client: int, rng: Any = None,
               timed: Any = None) -> Concurrency:
    """`clients` threads, each on its own connection, all released at once by a barrier; every request a fresh
    image of `size` px (a digit whose answer `timed` keeps, when given)."""
    errors: list[str] = []
    samples: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)
    rng = rng or images.fresh_rng()
    uploads = [[upload(size, rng, timed) for _ in range(per_client)] for _ in range(clients)]

    def worker(mine: list[images.Sample]) -> None:
        with new_client() as client:
            barrier.wait()
            for sample in mine:
                reply = target.predict(client, sample)
                with lock:
                    if timed is not None:
                        timed.keep(sample, reply)
                    if reply.status == 200 and isinstance(reply.body, dict) and reply.body.get("predictions"):
                        samples.append(reply.elapsed_ms)
                    else:
                        errors.append(reply.describe())

    threads = [threading.Thread(target=worker, args=(mine,), daemon=True) for mine in uploads]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Concurrency(clients, clients * per_client, errors, time.perf_counter() - start, samples)


def error_handling(
    target: Target, client: Any, alive: Callable[[], Reply], samples: list[images.Sample]
) -> Criterion:
    crit = Criterion(5, TITLES[5], POINTS_EACH)
    for bad in target.bad_requests():
        reply = bad.send(client)
        after = alive()
        problems = []
        if reply.status is None:
            problems.append(f"no answer ({reply.error})")
        elif not 400 <= reply.status < 500:
            problems.append(f"answered {reply.describe()}, not a 4xx")
        elif not reply.is_json or reply.body in (None, "", {}, []):
            problems.append(f"answered {reply.status} without a JSON reason ({reply.describe()})")
        if after.status != 200:
            problems.append(f"then the health check got {after.describe()}")
        detail = (
            f"{bad.what}: {reply.status} with a JSON reason, still healthy"
            if not problems
            else f"{bad.what}: " + "; ".join(problems)
        )
        crit.checks.append(probe_check(bad.name, not problems, detail))
    last = target.predict(client, samples[0])
    crit.checks.append(
        probe_check(
            "still predicts",
            last.status == 200,
            "a valid image after the bad ones: 200"
            if last.status == 200
            else f"a valid image after the bad ones got {last.describe()}",
        )
    )
    failed = [c for c in crit.checks if not c.passed]
    crit.verdict = (
        "every bad input got a 4xx with a reason, and the service kept serving"
        if not failed
        else f"{failed[0].name}: {failed[0].message}"
    )
    return crit


def never_came_up(reason: str) -> list[Criterion]:
    crits = [Criterion(1, TITLES[1], POINTS_EACH, [probe_check("health", False, reason)], reason)]
    for n in range(2, 6):
        crits.append(
            Criterion(
                n,
                TITLES[n],
                POINTS_EACH,
                [probe_check("not assessed", False, "the service never became ready")],
                "not assessed: the service never became ready",
            )
        )
    return crits


def run_all(
    target: Target,
    ready: Reply,
    startup_s: float | None,
    opts: Options,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> tuple[list[Criterion], Evidence]:
    """Score a ready service on the five requirements, in order."""
    evidence = Evidence()
    samples = images.valid_samples()
    replies: dict[str, Reply] = {}
    with new_client() as client:
        say(f"[1/5] {TITLES[1]}")
        crits = [reachable(target, ready, startup_s)]
        say(f"[2/5] {TITLES[2]}: {len(samples)} images")
        crits.append(processes_images(target, client, samples, replies))
        say(f"[3/5] {TITLES[3]}")
        crits.append(confidences(target, client, samples, replies, opts.model_dir))
        say(f"[4/5] {TITLES[4]}: warm-up, then up to {opts.requests} timed requests a size")
        crits.append(latency(target, client, opts, evidence, progress))
        say(f"[5/5] {TITLES[5]}")
        crits.append(error_handling(target, client, lambda: target.ready(client), samples))
    return crits, evidence
