"""The assessment itself (`autograder assess`'s engine, below its face cli.py): start or reach a service, wait
for it, score it, and measure where its latency goes.

Returns an `Assessment` (report.py turns it into an Outcome, a table and a Markdown report); the CLI is a thin face
over `assess`. Nothing here prints results: progress goes to stderr through `probes.say`.
"""

from __future__ import annotations

import dataclasses
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
    # Where the learner's app runs: "none" starts it directly as the caller (a learner's own app), "auto"/"bwrap"
    # in the grading sandbox (autograder/assess/sandboxed.py). --pack defaults to the sandbox (cli.py).
    sandbox: str = "none"
    # How a hand-in is named in a batch (its path below the packs' common folder, cli.py): its report and lines.
    label: str | None = None
    # The service must serve the model in model_dir (else $MLINFRA_MODEL_DIR): its answers are compared with that
    # model's own forward (requirement 3's "the model's answers", and every timed answer of requirement 4). Always
    # so for a hand-in (--pack), and for the deploy checks of lab05 and lab06, which hand the service the course
    # model themselves; not for a learner's own --app/--url, which may serve a model of their own.
    served_model: bool = False


# The whole assessment of one service, breakdown included, on the trusted side's clock: a service that answers
# every request just inside its own limit (targets.REQUEST_TIMEOUT_S) cannot hold a batch longer than this. An
# honest service needs 1 to 5 minutes; one that never answers at all about 8 (each request's 30 s).
ASSESS_BUDGET_S = 900.0


def assess(req: Request) -> Any:
    """Score the service `req` names; returns an `Assessment`."""
    from autograder.assess import deadlines
    from autograder.assess.probes import Options

    opts = Options(requests=req.requests, concurrency=req.concurrency)
    if req.served_model or req.pack is not None:
        from mlinfra.modelstore import model_dir_from_env

        opts = dataclasses.replace(opts, model_dir=(req.model_dir or model_dir_from_env()).resolve())
    with deadlines.budget(ASSESS_BUDGET_S, f"the assessment's {ASSESS_BUDGET_S:g} s ran out (stopped: too slow)"):
        return _assess(req, opts)


def _assess(req: Request, opts: Any) -> Any:
    if req.pack is not None:
        return assess_pack(req, opts)
    if req.app:
        from autograder.assess.sandboxed import sandbox_kind
        from autograder.assess.server import AppSpec

        spec = AppSpec.parse(req.app)  # a bad spec or a missing file is a UsageError (exit 2) before any start
        kind = sandbox_kind(req.sandbox)
        from autograder.assess.handin import HandinProblem
        from autograder.errors import UsageError

        try:
            result = assess_app(app_server(spec.app_dir, spec.module, spec.attr, kind, req), opts,
                                req.startup_timeout or 60.0, req)
        except HandinProblem as exc:  # the caller's own app's folder, too big to copy into the sandbox
            raise UsageError(f"{exc}: the app's folder is copied into the sandbox whole; move what it does not "
                             "need out of it") from None
        result.target["sandbox"] = kind
        return result
    from autograder.assess.targets import ContractTarget, TorchServeTarget

    target: Any = TorchServeTarget(req.torchserve, req.model) if req.torchserve else ContractTarget(req.url or "")
    return assess_target(target, opts, req.startup_timeout or 15.0, {"kind": target.kind}, req=req)


def assess_pack(req: Request, opts: Any) -> Any:
    """A hand-in from `autograder submit practical`: its README checked, then its service scored like --app (in
    the grading sandbox unless req.sandbox is "none"). A hand-in that cannot be read is the student's outcome
    ("unreadable", naming the entry at fault), never the tool's failure."""
    import tempfile

    from autograder.assess import handin, manifest
    from autograder.assess.probes import never_came_up
    from autograder.assess.report import Assessment
    from autograder.assess.sandboxed import sandbox_kind

    assert req.pack is not None
    kind = sandbox_kind(req.sandbox)  # a UsageError (exit 2) before anything is unpacked
    # The hand-in serves the course model the sandbox is given: its answers are compared with this model's own
    # (opts.model_dir, set by assess()).
    label = req.label or req.pack.name
    info = {"kind": "pack", "pack": str(req.pack), "label": label, "description": f"hand-in {label}", "sandbox": kind}
    with tempfile.TemporaryDirectory(prefix="assess-pack-") as tmp:
        try:
            unpacked = handin.unpack(req.pack, Path(tmp) / "handin")
        except handin.HandinProblem as exc:
            result = Assessment(info, never_came_up(f"the hand-in cannot be read: {exc}"), status="unreadable")
            result.handin = handin.unreadable_checks(exc)
            return result
        # The README is read before the app starts: what is scored never passes through the learner's code.
        checks = handin.pack_checks(unpacked)
        flags = manifest.notes(req.pack, unpacked, label)
        if unpacked.app is None:
            result = Assessment(info, never_came_up(f"the hand-in has no {handin.SERVICE_DIR}/{handin.APP_FILE}"))
        else:
            try:
                result = assess_app(app_server(unpacked.app.parent, "app", "app", kind, req), opts,
                                    req.startup_timeout or 60.0, req)
            except handin.HandinProblem as exc:  # a limit broken while copying it into the sandbox
                result = Assessment(info, never_came_up(f"the hand-in cannot be read: {exc}"), status="unreadable")
                result.handin = handin.unreadable_checks(exc)
                return result
            result.target = {**result.target, **info}
        result.handin = checks
    if flags:  # scored all the same; a person looks at why (the notes)
        result.notes += flags
        if result.status == "completed":
            result.status = "flagged"
    return result


def app_server(folder: Path | None, module: str, attr: str, kind: str, req: Request) -> Any:
    """The server for a learner's app: direct (UvicornServer, as the caller) or in the grading sandbox."""
    if kind == "none":
        from autograder.assess.server import AppSpec, UvicornServer

        return UvicornServer(AppSpec(module, attr, folder))
    from autograder.assess.sandboxed import SandboxedServer
    from mlinfra.modelstore import model_dir_from_env

    model = req.model_dir if req.model_dir is not None else model_dir_from_env()
    return SandboxedServer(folder, module, attr, model.resolve(), kind)


def assess_app(server: Any, opts: Any, timeout_s: float, req: Request | None = None) -> Any:
    """Start `server` (a UvicornServer or a SandboxedServer), score it, stop it: the result is returned only once
    the server and everything it started are gone."""
    from autograder.assess.probes import say
    from autograder.assess.targets import ContractTarget

    with server:
        server.start()
        assert server.proc is not None
        where = "in the grading sandbox" if type(server).__name__ == "SandboxedServer" else "directly"
        say(f"started uvicorn {server.target} {where} on {server.url} (pid {server.proc.pid}); waiting for /health")
        # Its processes are known: the latency verdict can tell its own slowness from the machine's load.
        opts = dataclasses.replace(opts, service_pid=server.proc.pid)
        result = assess_target(
            ContractTarget(server.url),
            opts,
            timeout_s,
            {"kind": "app", "app": server.target, "description": f"{server.target} at {server.url}"},
            exited=server.exit_code,
            log_tail=server.log_tail,
            req=req,
        )
        server.stop()
        result.server_log = server.log_tail()  # read again once it has stopped: its last words included
    return result


def assess_target(
    target: Any,
    opts: Any,
    timeout_s: float,
    info: dict[str, Any],
    exited: Any = lambda: None,
    log_tail: Any = list,
    req: Request | None = None,
) -> Any:
    from autograder.assess import deadlines
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
    stopped = deadlines.ran_out(outermost=True)
    if stopped:  # what ran before is scored; the rest failed at once, each saying why
        result.status, result.stopped = "stopped", stopped
        say(f"stopped: {stopped}")
    if (req is None or req.breakdown) and not stopped:
        result.breakdown = where_latency_goes(target, readiness.reply.body, evidence, req)
    return result


# The breakdown is information only, measured after the service passed the latency check (p95 under 500 ms): a
# service that stalls under its load costs the batch at most BREAKDOWN_BUDGET_S, and each of its requests at most
# BREAKDOWN_REQUEST_S (8 clients queueing behind a 500 ms forward wait 4 s); the first that gets no answer ends it.
BREAKDOWN_BUDGET_S = 60.0
BREAKDOWN_REQUEST_S = 10.0


class _UntilStalled:
    """`target` for the breakdown: once one request gets no answer, every later one fails at once, unsent."""

    def __init__(self, target: Any) -> None:
        self.target, self.stalled = target, ""

    def predict(self, client: Any, sample: Any) -> Any:
        from autograder.assess.targets import Reply

        if self.stalled:
            return Reply(None, error=self.stalled)
        reply = self.target.predict(client, sample)
        if reply.status is None and not self.stalled:
            self.stalled = reply.error or "no answer"
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def where_latency_goes(target: Any, health: Any, evidence: Any, req: Request | None) -> Any:
    """Raw forward vs the service, and throughput at 1, 4, 8 clients: information, measured when it makes sense,
    within its own budget (BREAKDOWN_BUDGET_S, BREAKDOWN_REQUEST_S a request)."""
    from autograder.assess import breakdown, deadlines
    from autograder.assess.probes import LOCK_HOLD_S, latency_lock, say
    from mlinfra.modelstore import model_dir_from_env

    folder = (req.model_dir if req and req.model_dir else model_dir_from_env()).resolve()
    timed = [s for s in evidence.latency if s.samples_ms and not s.error]
    if not timed or not all(s.passed for s in evidence.latency):
        return breakdown.Breakdown(model_dir=str(folder), reason="the latency check did not pass, so the service "
                                   "was not loaded further; fix requirement 4 first")
    say("where the latency goes: the model alone, then 1, 4 and 8 clients at once (information, not scored)")
    # Its load (8 clients at once) would weigh on another assessment's latency probes: one at a time, like them,
    # and never held longer than they may hold it.
    seconds = min(LOCK_HOLD_S, BREAKDOWN_BUDGET_S)
    watched = _UntilStalled(target)
    try:
        with latency_lock(), deadlines.budget(seconds, f"the breakdown's {seconds:g} s ran out") as budget, \
                deadlines.request_limit(BREAKDOWN_REQUEST_S, f"no complete answer within {BREAKDOWN_REQUEST_S:g} s "
                                        "(the breakdown's limit a request)"):
            got = breakdown.measure(watched, folder, health, {s.label: s.stats()["p50"] for s in timed}, say=say)
            if watched.stalled or budget.ran_out:
                why = watched.stalled or budget.reason
                say(f"latency breakdown stopped: {why}")
                got.reason = (f"the service stopped answering under its load ({why}), so it was stopped there "
                              f"(at most {seconds:g} s in all); information only, the score stands")
            return got
    except Exception as exc:  # noqa: BLE001  information only: whatever fails here, the score stands
        why = f"{type(exc).__name__}: {str(exc)[:200]}".rstrip(": ")
        say(f"latency breakdown not measured: {why}")
        return breakdown.Breakdown(model_dir=str(folder), reason=f"it failed ({why}); the score stands")


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


