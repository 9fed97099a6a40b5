"""The assessment's engine: start or reach a service, wait for it, score it, and measure where its latency goes.

Returns an `Assessment` (report.py turns it into an Outcome, a table and a Markdown report); the CLI is a thin face
over `assess`. Nothing here prints results: progress goes to stderr through `probes.say`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Request:
    """What to assess and how (the CLI's arguments, parsed and checked)."""

    app: str | None = None
    url: str | None = None
    torchserve: str | None = None
    model: str | None = None
    pack: Path | None = None
    model_dir: Path | None = None
    requests: int = 50
    concurrency: int = 4
    startup_timeout: float | None = None
    breakdown: bool = True


def assess(req: Request) -> Any:
    """Score the service `req` names; returns an `Assessment`."""
    from autograder.assess.probes import Options

    opts = Options(requests=req.requests, concurrency=req.concurrency)
    if req.pack is not None:
        return assess_pack(req, opts)
    if req.app:
        from autograder.assess.server import AppSpec

        spec = AppSpec.parse(req.app)  # a bad spec or a missing file is a UsageError (exit 2) before any start
        return assess_app(spec, opts, req.startup_timeout or 60.0, req)
    from autograder.assess.targets import ContractTarget, TorchServeTarget

    target: Any = TorchServeTarget(req.torchserve, req.model) if req.torchserve else ContractTarget(req.url or "")
    return assess_target(target, opts, req.startup_timeout or 15.0, {"kind": target.kind}, req=req)


def assess_pack(req: Request, opts: Any) -> Any:
    """A hand-in from `autograder submit practical`: its service scored like --app, its README checked."""
    import tempfile

    from autograder.assess import handin
    from autograder.assess.probes import never_came_up
    from autograder.assess.report import Assessment
    from autograder.assess.server import AppSpec

    assert req.pack is not None
    with tempfile.TemporaryDirectory(prefix="assess-pack-") as tmp:
        unpacked = handin.unpack(req.pack, Path(tmp))
        info = {"kind": "pack", "pack": str(req.pack), "description": f"hand-in {req.pack.name}"}
        if unpacked.app is None:
            result = Assessment(info, never_came_up(f"the hand-in has no {handin.SERVICE_DIR}/{handin.APP_FILE}"))
        else:
            spec = AppSpec.parse(f"{unpacked.app}:app")
            result = assess_app(spec, opts, req.startup_timeout or 60.0, req)
            result.target = {**result.target, **info,
                             "description": f"hand-in {req.pack.name} ({result.target.get('url', '')})"}
        result.handin = handin.pack_checks(unpacked)
    return result


def assess_app(spec: Any, opts: Any, timeout_s: float, req: Request | None = None) -> Any:
    from autograder.assess.probes import say
    from autograder.assess.server import UvicornServer
    from autograder.assess.targets import ContractTarget

    with UvicornServer(spec) as server:
        server.start()
        assert server.proc is not None
        say(f"started uvicorn {spec.target} on {server.url} (pid {server.proc.pid}); waiting for /health")
        return assess_target(
            ContractTarget(server.url),
            opts,
            timeout_s,
            {"kind": "app", "app": spec.target, "description": f"{spec.target} at {server.url}"},
            exited=server.exit_code,
            log_tail=server.log_tail,
            req=req,
        )


def assess_target(
    target: Any,
    opts: Any,
    timeout_s: float,
    info: dict[str, Any],
    exited: Any = lambda: None,
    log_tail: Any = list,
    req: Request | None = None,
) -> Any:
    from autograder.assess.probes import never_came_up, run_all, say
    from autograder.assess.report import Assessment
    from autograder.assess.server import wait_until_ready
    from autograder.assess.targets import new_client

    info = {"description": target.describe(), **info, "url": getattr(target, "base_url", "")}
    with new_client() as client:
        readiness = wait_until_ready(lambda: target.ready(client), timeout_s, exited, what=target.describe())
    if not readiness.ready:
        reason = f"never became ready ({target.readiness_rule()}): {readiness.reason}"
        return Assessment(info, never_came_up(reason), startup_seconds=None, server_log=log_tail())
    say(f"ready after {readiness.seconds:.1f} s")
    criteria, evidence = run_all(target, readiness.reply, readiness.seconds, opts, progress_bar)
    result = Assessment(info, criteria, evidence, readiness.seconds, server_log=log_tail())
    if req is None or req.breakdown:
        result.breakdown = where_latency_goes(target, readiness.reply.body, evidence, req)
    return result


def where_latency_goes(target: Any, health: Any, evidence: Any, req: Request | None) -> Any:
    """Raw forward vs the service, and throughput at 1, 4, 8 clients: information, measured when it makes sense."""
    from autograder.assess import breakdown
    from autograder.assess.probes import say
    from mlinfra.modelstore import model_dir_from_env

    folder = (req.model_dir if req and req.model_dir else model_dir_from_env()).resolve()
    timed = [s for s in evidence.latency if s.samples_ms and not s.error]
    if not timed or not all(s.passed for s in evidence.latency):
        return breakdown.Breakdown(model_dir=str(folder), reason="the latency check did not pass, so the service "
                                   "was not loaded further; fix requirement 4 first")
    say("where the latency goes: the model alone, then 1, 4 and 8 clients at once (information, not scored)")
    return breakdown.measure(target, folder, health, {s.label: s.stats()["p50"] for s in timed}, say=say)


def progress_bar(name: str, total: int) -> Any:
    """A tqdm bar on a terminal (silent in CI logs); returns the function that advances it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"  {name}", unit="req", leave=False, disable=None)

    def tick() -> None:  # a round near the limit is measured again: the bar then simply stays closed
        if not bar.disable:
            bar.update(1)
            if bar.n >= total:
                bar.close()

    return tick


