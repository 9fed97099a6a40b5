"""`autograder assess`: score a served image classifier against the practical assessment's five requirements."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from autograder.reports import add_json_option, write_json

DESCRIPTION = """\
Score an image-classification service over real HTTP (on 127.0.0.1 with --app) against the contract
(mlinfra/contract.py), five requirements of 20 points each:

  1 deployed and reachable over HTTP: GET /health answers 200 with JSON
  2 processes image input: PNG and JPEG, grayscale and RGB, 28x28 and 224x224, all made in memory
  3 returns predictions with confidence scores: the schema, confidences in [0, 1], most confident first,
    at most 5, and the same top-1 label for the same image twice
  4 latency: p95 under 500 ms at each size, after warm-up, over one keep-alive connection (up to --requests
    timed requests; clearly slow services stop after a few, and results near the limit are measured again),
    then --concurrency clients at once without errors
  5 basic error handling: not an image, corrupt, empty, 12 MB, missing field and wrong method each get a 4xx
    with a JSON reason, and the service answers /health after each one

The assessment passes when every requirement passes (100/100). Exit 0 passed, 1 fell short (including a service
that never becomes ready), 2 the command could not run (a bad --app spec, a missing file).
"""

EPILOG = """\
examples:
  autograder assess --app app.py:app                     start your app under uvicorn and score it
  autograder assess --app mlinfra.service:app            the course's reference service
  autograder assess --url http://127.0.0.1:8000          a service you already run
  autograder assess --torchserve http://127.0.0.1:8085 --model digits
  autograder assess --app app.py:app --report out/assessment.md --json out/assessment.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "assess",
        help="score a served image classifier (the practical assessment)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--app",
        metavar="MODULE_OR_FILE:ATTR",
        help="start this ASGI app under uvicorn on a free 127.0.0.1 port, score it, stop it",
    )
    what.add_argument("--url", metavar="URL", help="score a service already running at URL")
    what.add_argument(
        "--torchserve",
        metavar="URL",
        help="score a TorchServe inference API at URL (e.g. http://127.0.0.1:8085); needs --model",
    )
    parser.add_argument("--model", metavar="NAME", help="the TorchServe model name (with --torchserve)")
    add_json_option(parser)
    parser.add_argument(
        "--report",
        metavar="FILE.md",
        type=Path,
        help="write a Markdown report to FILE.md and a latency histogram beside it",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=50,
        metavar="N",
        help="timed requests per image size for the latency check (default 50, at least 20)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="C",
        help="clients sending at once in the concurrency check (default 4)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds to wait for the service to become ready (default 60 with --app, else 15)",
    )
    parser.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    if args.torchserve and not args.model:
        raise UsageError(
            "--torchserve needs --model NAME: the model's name in TorchServe (see GET :8081/models)"
        )
    if args.model and not args.torchserve:
        raise UsageError("--model goes with --torchserve URL")
    for url in (args.url, args.torchserve):
        if url and not url.startswith(("http://", "https://")):
            raise UsageError(f"{url!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8000")
    if args.requests < 20:
        raise UsageError(f"--requests {args.requests}: a p95 needs at least 20 samples; use 20 or more")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency {args.concurrency}: use 1 or more clients")
    if args.startup_timeout is not None and args.startup_timeout <= 0:
        raise UsageError(f"--startup-timeout {args.startup_timeout:g}: give a positive number of seconds")
    if args.report is not None and args.report.suffix.lower() != ".md":
        raise UsageError(f"--report {args.report}: give a Markdown file name ending in .md")


def run(args: argparse.Namespace) -> int:
    check_args(args)
    from autograder.assess.probes import Options

    opts = Options(requests=args.requests, concurrency=args.concurrency)
    if args.app:
        from autograder.assess.server import AppSpec

        spec = AppSpec.parse(
            args.app
        )  # a bad spec or a missing file is a UsageError (exit 2) before any start
        result = assess_app(spec, opts, args.startup_timeout or 60.0)
    else:
        from autograder.assess.targets import ContractTarget, TorchServeTarget

        target: Any = (
            TorchServeTarget(args.torchserve, args.model) if args.torchserve else ContractTarget(args.url)
        )
        result = assess_target(target, opts, args.startup_timeout or 15.0, {"kind": target.kind})
    return finish(result, args)


def assess_app(spec: Any, opts: Any, timeout_s: float) -> Any:
    from autograder.assess.probes import say
    from autograder.assess.server import UvicornServer
    from autograder.assess.targets import ContractTarget

    with UvicornServer(spec) as server:
        for attempt in range(3):
            server.start()
            say(f"started uvicorn {spec.target} on {server.url} (pid {server.proc.pid}); waiting for /health")
            result = assess_target(
                ContractTarget(server.url),
                opts,
                timeout_s,
                {"kind": "app", "app": spec.target, "description": f"{spec.target} at {server.url}"},
                exited=server.exit_code,
                log_tail=server.log_tail,
            )
            # Another process can take the free port between our probe and uvicorn's bind: try another port.
            if (
                server.exit_code() is not None
                and any("address already in use" in line.lower() for line in server.log_tail())
                and attempt < 2
            ):
                server.stop()
                continue
            return result
    return result


def assess_target(
    target: Any,
    opts: Any,
    timeout_s: float,
    info: dict[str, Any],
    exited: Any = lambda: None,
    log_tail: Any = list,
) -> Any:
    from autograder.assess.probes import never_came_up, run_all, say
    from autograder.assess.report import Assessment
    from autograder.assess.server import wait_until_ready
    from autograder.assess.targets import new_client

    info = {"description": target.describe(), **info, "url": getattr(target, "base_url", "")}
    with new_client() as client:
        readiness = wait_until_ready(lambda: target.ready(client), timeout_s, exited)
    if not readiness.ready:
        reason = f"never became ready ({target.readiness_rule()}): {readiness.reason}"
        return Assessment(info, never_came_up(reason), startup_seconds=None, server_log=log_tail())
    say(f"ready after {readiness.seconds:.1f} s")
    criteria, evidence = run_all(target, readiness.reply, readiness.seconds, opts, progress_bar)
    return Assessment(info, criteria, evidence, readiness.seconds, server_log=log_tail())


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


def finish(result: Any, args: argparse.Namespace) -> int:
    from autograder.assess.report import markdown, terminal, to_json

    # With `--json -` stdout is the machine's: the table goes to stderr then.
    out = sys.stderr if args.json_out == "-" else sys.stdout
    print(terminal(result), file=out)
    if args.report is not None:
        path = markdown(result, args.report)
        print(f"report: {path}", file=out)
    write_json(to_json(result), args.json_out)
    return 0 if result.passed else 1
