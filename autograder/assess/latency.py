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

Fair on a busy machine: the verdict must mean "this service answers in under 500 ms", not "nobody else was using
the machine". The machine is measured in the same run: during every round, after each request, the number of
runnable tasks on the machine (/proc/loadavg), whose average over the round gives the share of a core a runnable
process could get (cores / runnable: 1.0 on a quiet machine, 0.67 with two CPU-bound processes beside the service
on two cores, 0.08 at a load of 26); around the round, a calibration probe (a short busy loop whose CPU time over
wall time is the share this thread got) and the load average, for the report. A round that fails while the machine
is busy (share under BUSY_SHARE) does not count: once the machine is quieter (waited for, at most QUIET_WAIT_S) it
is measured again, at most MAX_BUSY_REMEASURES times, and every round is shown with its calibration. A round that passes counts however busy the machine was. A service that
is slow by itself (sleeping, waiting on I/O) is slow on a quiet machine too, so it still fails.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LIMIT_MS = 500.0
QUANTILE = 0.95
NEAR, FAR = 0.8, 1.25
MAX_ROUNDS = 3
BUSY_SHARE = 0.5  # less than half a core for a runnable process: other people's load would decide the verdict
MAX_BUSY_REMEASURES = 3
QUIET_WAIT_S = 30.0
PROBE_S = 0.03


@dataclass(frozen=True)
class Calibration:
    """The machine, measured in the same run: the share of a core a runnable process gets (from the runnable tasks
    seen during a round, else from a short busy loop on this thread), and the 1-minute load average."""

    share: float
    load1: float
    cores: int

    @property
    def busy(self) -> bool:
        return self.share < BUSY_SHARE

    def describe(self) -> str:
        return f"{self.share:.0%} of a core, load {self.load1:.1f} on {self.cores} cores"

    def to_dict(self) -> dict[str, float]:
        return {"cpu_share": round(self.share, 3), "load1": round(self.load1, 2), "cores": self.cores,
                "busy": self.busy}


def calibrate(seconds: float = PROBE_S) -> Calibration:
    """Spin for `seconds` of wall time; the thread's CPU time over it is the share of a core it was given."""
    start_wall, start_cpu = time.perf_counter(), time.thread_time()
    x = 0
    while time.perf_counter() - start_wall < seconds:
        for i in range(200):
            x += i * i
    wall = time.perf_counter() - start_wall
    cpu = time.thread_time() - start_cpu
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = float("nan")
    return Calibration(min(1.0, cpu / wall) if wall > 0 else 1.0, load1, os.cpu_count() or 1)


def runnable() -> int | None:
    """Tasks runnable on the machine right now (the 4th field of /proc/loadavg, "running/total"); None elsewhere."""
    try:
        with open("/proc/loadavg") as handle:
            return int(handle.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def during(counts: Sequence[int], cores: int) -> float:
    """The share of a core a runnable process gets with `counts` runnable tasks (sampled) on `cores` cores. One
    of them is the service answering, one this client: those are not other people's load."""
    mean = sum(counts) / len(counts)
    return min(1.0, cores / max(1.0, mean))


def run_queue_wait_ms(pid: int) -> float | None:
    """How long the process `pid` and everything under it have waited for a CPU while runnable (ms, cumulative
    over all their threads; the 2nd field of /proc/<pid>/task/<tid>/schedstat): the delay other people's load put
    on the service. None when it cannot be read (another machine, no /proc)."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return None
    return sum(_tasks_wait_ns(proc.pid) for proc in procs) / 1e6


def own_wait_ms() -> float:
    """The same for this process alone (the client timing the requests, and a relay thread): a client kept
    waiting for a CPU adds to every latency it measures just as a service kept waiting does."""
    return _tasks_wait_ns(os.getpid()) / 1e6


def _tasks_wait_ns(pid: int) -> int:
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


def wait_until_quiet(probe: Callable[[], Calibration], timeout_s: float = QUIET_WAIT_S,
                     pause_s: float = 0.5) -> Calibration:
    """Probe until the machine is not busy or `timeout_s` passes; the last calibration."""
    deadline = time.monotonic() + timeout_s
    while True:
        cal = probe()
        if not cal.busy or time.monotonic() >= deadline:
            return cal
        time.sleep(pause_s)


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
    calibration: list[Calibration] = field(default_factory=list)  # before and after the round, then during it
    queued_ms: float | None = None  # the service's and the client's run-queue wait over the round, when known

    @property
    def p95(self) -> float:
        return percentile(self.samples, QUANTILE)

    @property
    def busy(self) -> bool:
        """During the round (its runnable-task samples) when they were taken, else its calibration probes."""
        return self.calibration[-1].busy if self.calibration else False

    @property
    def counts(self) -> bool:
        """A round that failed on a busy machine says nothing about the service, so it is measured again; unless
        the service's own wait for a CPU (when it can be read) was too short to explain how far over the limit
        it was: then it is slow by itself, and no quieter machine would change that."""
        if self.passed or not self.busy:
            return True
        if self.queued_ms is not None:
            # Could the time spent waiting for a CPU have pushed the slow requests over the limit? Only if it is
            # at least what they exceeded it by, all together.
            return self.queued_ms < sum(s - LIMIT_MS for s in self.samples if s >= LIMIT_MS)
        return False

    def to_dict(self) -> dict[str, object]:
        deciding = self.calibration[-1] if self.calibration else None
        return {"p95_ms": round(self.p95, 2), "n": len(self.samples), "passed": self.passed, "busy": self.busy,
                "counted": self.counts, "calibration": deciding.to_dict() if deciding else None,
                "service_queued_ms": None if self.queued_ms is None else round(self.queued_ms, 1),
                "probes": [c.to_dict() for c in self.calibration[:-1]]}


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
    round_details: list[dict[str, object]] = field(default_factory=list)  # each round: p95, busy, calibration

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
    probe: Callable[[], Calibration] | None = calibrate,
    quiet_wait_s: float = QUIET_WAIT_S,
    queued: Callable[[], float | None] | None = None,
) -> SizeResult:
    """Time ``request`` (returns elapsed ms and an error or None) under the sequential rule, each round between two
    calibrations (`probe`; None: no calibration, every round counts). `queued`: the service's cumulative run-queue
    wait in ms (run_queue_wait_ms), when its processes are known."""
    for _ in range(warmup):
        _, error = request()
        if error:
            return SizeResult(label, False, error=error, verdict=f"a warm-up request failed: {error}")
    rounds: list[Round] = []
    verdict: bool | None = None
    remeasured = 0
    while verdict is None:
        before = probe() if probe else None
        queued_before = queued() if queued else None
        samples: list[float] = []
        seen: list[int] = []
        outcome: Round | None = None
        while outcome is None:
            elapsed, error = request()
            if probe is not None and (count := runnable()) is not None:
                seen.append(count)
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
                    [r.to_dict() for r in rounds],
                )
            samples.append(elapsed)
            outcome = judge_round(samples, rule)
        after = probe() if probe else None
        queued_after = queued() if queued else None
        if queued_before is not None and queued_after is not None:
            outcome.queued_ms = queued_after - queued_before
        outcome.calibration = [c for c in (before, after) if c is not None]
        if seen and after is not None:  # what decides: the machine during the round (the probes are moments)
            outcome.calibration.append(Calibration(during(seen, after.cores), after.load1, after.cores))
        elif before is not None and after is not None:
            outcome.calibration.append(Calibration((before.share + after.share) / 2, after.load1, after.cores))
        rounds.append(outcome)
        counted = [r for r in rounds if r.counts]
        verdict = judge_rounds(counted, rule) if counted else None
        if verdict is None and not outcome.counts:
            if remeasured >= MAX_BUSY_REMEASURES:
                # The machine stayed busy: the rounds as measured decide, and the report says so.
                verdict = sum(r.passed for r in rounds) * 2 > len(rounds)
                break
            remeasured += 1
            assert probe is not None
            wait_until_quiet(probe, quiet_wait_s)
        elif verdict is None and len(counted) >= rule.max_rounds:
            verdict = False  # only reachable with an even max_rounds: a tie fails
    every = [s for r in rounds for s in r.samples]
    result = SizeResult(label, verdict, every, len(rounds), any(r.stopped_early for r in rounds),
                        round_details=[r.to_dict() for r in rounds])
    result.verdict = explain(result, rounds, rule)
    return result


def explain(result: SizeResult, rounds: Sequence[Round], rule: Rule) -> str:
    limit = f"{rule.limit_ms:.0f} ms"
    busy = [r for r in rounds if r.busy]
    machine = ""
    if busy:
        worst = min((r.calibration[-1] for r in busy), key=lambda c: c.share)
        machine = (f"; {len(busy)} of {len(rounds)} round(s) ran on a busy machine (down to {worst.describe()})"
                   + (", measured again when quieter" if any(not r.counts for r in rounds) else ""))
    if len(rounds) == 1 and rounds[0].stopped_early:
        over = sum(s >= rule.limit_ms for s in result.samples_ms)
        return (
            f"{over} of the first {len(result.samples_ms)} requests took {limit} or more, so p95 of {rule.n} "
            f"cannot be under {limit}; stopped there{machine}"
        )
    if len(rounds) == 1:
        p95 = percentile(result.samples_ms, rule.quantile)
        return (f"p95 {p95:.1f} ms {'<' if result.passed else '>='} {limit} over {len(result.samples_ms)} "
                f"requests{machine}")
    counted = [r for r in rounds if r.counts]
    won = sum(r.passed for r in counted)
    shown = ", ".join(f"{r.p95:.0f}" + ("" if r.counts else " (busy, not counted)") for r in rounds)
    first = "its first round was not clear of the limit" if rounds[0].counts else "its first round ran on a busy machine"
    return (
        f"p95 measured in {len(rounds)} rounds because {first}: {won} of {len(counted)} counted round(s) under "
        f"{limit}, the majority decides (round p95s: {shown} ms){machine}"
    )
