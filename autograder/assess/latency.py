"""Latency: percentiles, and the sequential rule that decides p95 < limit without failing on noise or wasting time.

The rule, per image size:

- A *round* plans ``n`` timed requests (after warm-up). Percentiles are nearest-rank: p95 is the smallest sample
  with at least 95% of the samples at or below it. So in a round of n, p95 < limit exactly when at most
  ``n - ceil(0.95 n)`` samples reach the limit (2 of 50). Once one more has, the round has failed whatever the rest
  would be, and it stops there: a service that sleeps 2 s costs 3 requests, not 50.
- A round is *clear* when it passes with p95 under ``near`` x limit, or fails with enough samples over ``far`` x
  limit that its p95 is certainly far above. A clear first round decides.
- Otherwise p95 sits near the limit, where one noisy round should not decide: more rounds run (at most 3) and the
  majority decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LIMIT_MS = 500.0
QUANTILE = 0.95
NEAR, FAR = 0.8, 1.25
MAX_ROUNDS = 3


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]): the smallest sample with at least q of all samples at or below it.

    numpy's ``inverted_cdf`` method is exactly that definition (Hyndman and Fan's type 1).
    """
    import numpy as np

    if len(samples) == 0:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 1:
        raise ValueError(f"q must lie in [0, 1], got {q}")
    return float(np.percentile(np.asarray(samples, dtype=float), q * 100, method="inverted_cdf"))


@dataclass(frozen=True)
class Rule:
    limit_ms: float = LIMIT_MS
    n: int = 50
    quantile: float = QUANTILE
    near: float = NEAR
    far: float = FAR
    max_rounds: int = MAX_ROUNDS

    @property
    def allowed_over(self) -> int:
        """How many of a round's n samples may reach the limit while its p95 stays under it."""
        return self.n - math.ceil(self.quantile * self.n)


@dataclass
class Round:
    samples: list[float]
    passed: bool
    clear: bool  # decided beyond doubt, so no further round is needed
    stopped_early: bool

    @property
    def p95(self) -> float:
        return percentile(self.samples, QUANTILE)


def judge_round(samples: Sequence[float], rule: Rule) -> Round | None:
    """The round's outcome once it is certain, else None (keep measuring). ``samples`` are this round's, in order."""
    over = sum(s >= rule.limit_ms for s in samples)
    if over > rule.allowed_over:
        far_over = sum(s >= rule.far * rule.limit_ms for s in samples)
        return Round(
            list(samples),
            passed=False,
            clear=far_over > rule.allowed_over,
            stopped_early=len(samples) < rule.n,
        )
    if len(samples) < rule.n:
        return None
    p95 = percentile(samples, rule.quantile)
    return Round(list(samples), passed=True, clear=p95 < rule.near * rule.limit_ms, stopped_early=False)


def judge_rounds(rounds: Sequence[Round], rule: Rule) -> bool | None:
    """The overall verdict once certain: a clear first round decides; near the limit, the majority of rounds."""
    if not rounds:
        return None
    if len(rounds) == 1 and rounds[0].clear:
        return rounds[0].passed
    needed = rule.max_rounds // 2 + 1
    passes = sum(r.passed for r in rounds)
    fails = len(rounds) - passes
    if passes >= needed or fails >= needed:
        return passes >= needed
    if len(rounds) >= rule.max_rounds:  # only reachable with an even max_rounds: a tie fails
        return False
    return None


@dataclass
class SizeResult:
    """Latency of one image size: every timed sample, the rounds, and the verdict in words."""

    label: str
    passed: bool
    samples_ms: list[float] = field(default_factory=list)
    rounds: int = 0
    stopped_early: bool = False
    error: str | None = None
    verdict: str = ""

    def stats(self) -> dict[str, float | None]:
        if not self.samples_ms:
            return {"p50": None, "p95": None, "p99": None, "max": None}
        return {
            "p50": percentile(self.samples_ms, 0.50),
            "p95": percentile(self.samples_ms, 0.95),
            "p99": percentile(self.samples_ms, 0.99),
            "max": max(self.samples_ms),
        }


def measure(
    label: str,
    request: Callable[[], tuple[float, str | None]],
    rule: Rule,
    warmup: int = 2,
    tick: Callable[[], None] | None = None,
) -> SizeResult:
    """Time ``request`` (returns elapsed ms and an error or None) under the sequential rule."""
    for _ in range(warmup):
        _, error = request()
        if error:
            return SizeResult(label, False, error=error, verdict=f"a warm-up request failed: {error}")
    rounds: list[Round] = []
    verdict: bool | None = None
    while verdict is None:
        samples: list[float] = []
        outcome: Round | None = None
        while outcome is None:
            elapsed, error = request()
            if tick:
                tick()
            if error:
                done = [s for r in rounds for s in r.samples] + samples
                return SizeResult(
                    label,
                    False,
                    done,
                    len(rounds) + 1,
                    True,
                    error,
                    f"request {len(done) + 1} failed: {error}",
                )
            samples.append(elapsed)
            outcome = judge_round(samples, rule)
        rounds.append(outcome)
        verdict = judge_rounds(rounds, rule)
    every = [s for r in rounds for s in r.samples]
    result = SizeResult(label, verdict, every, len(rounds), any(r.stopped_early for r in rounds))
    result.verdict = explain(result, rounds, rule)
    return result


def explain(result: SizeResult, rounds: Sequence[Round], rule: Rule) -> str:
    p95 = percentile(result.samples_ms, rule.quantile)
    limit = f"{rule.limit_ms:.0f} ms"
    if len(rounds) == 1 and rounds[0].stopped_early:
        over = sum(s >= rule.limit_ms for s in result.samples_ms)
        return (
            f"{over} of the first {len(result.samples_ms)} requests took {limit} or more, so p95 of {rule.n} "
            f"cannot be under {limit}; stopped there"
        )
    if len(rounds) == 1:
        return f"p95 {p95:.1f} ms {'<' if result.passed else '>='} {limit} over {len(result.samples_ms)} requests"
    won = sum(r.passed for r in rounds)
    return (
        f"p95 lies near {limit}: measured {len(rounds)} rounds, {won} of them under the limit "
        f"(round p95s: {', '.join(f'{r.p95:.0f}' for r in rounds)} ms)"
    )
