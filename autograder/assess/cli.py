"""`autograder assess`: score a served image classifier against the practical assessment's five requirements."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autograder.errors import UsageError
from autograder.reports import add_json_option

DESCRIPTION = """\
Score an image-classification service over real HTTP (on 127.0.0.1 with --app) against the contract
(mlinfra/contract.py), five requirements of 20 points each:

  1 deployed and reachable over HTTP: GET /health answers 200 with JSON
  2 processes image input: PNG and JPEG, grayscale and RGB, 28x28 and 224x224, all made in memory
  3 returns predictions with confidence scores: the schema, confidences in [0, 1] summing to at most 1, no
    label twice, most confident first, at most 5, and the same top-1 label for the same image twice; with
    --pack also the model's answers: the served model's labels, and its top-1 (the grader runs the same model
    on the same images) on 6 of 8 digit-like images
  4 latency: p95 under 500 ms at each size, every request a fresh image (a cache cannot answer it), after
    warm-up, over one keep-alive connection (up to --requests timed requests; clearly slow services stop
    after a few, and results near the limit are measured again),
    then --concurrency clients at once without errors. Each round records the machine's load; a round that
    failed because of other people's load is measured again when the machine is quieter (at most 3 times, every
    round shown), and one assessment's latency probes never run beside another's on the same machine
  5 basic error handling: not an image, corrupt, empty, 12 MB, missing field and wrong method each get a 4xx
    with a JSON reason, and the service answers /health after each one

The assessment passes when every requirement passes (100/100). Beside the score it reports, for information
only, where the latency goes: the served model's raw forward p50 (when the model folder loads: --model-dir, else
$MLINFRA_MODEL_DIR, else the workbook's models/digits-resnet18) against the service's p50, and requests/s with
1, 4 and 8 clients at once (a plot in the --report).

--pack scores a hand-in from `.venv/bin/autograder submit practical`: its service as with --app, plus the README's four
required sections (how to run, API, latency measured, limitations; 5 points each, 120 in all). Several packs are
scored one after the other (a batch: one hand-in that cannot be read is that student's outcome, "unreadable",
and any failure of one hand-in is its own outcome: the others are scored and --json is written). Each is named
by its path below the packs' common folder (alice/practical.zip); --report FILE.md then writes
FILE-alice-practical.md per hand-in. A hand-in whose submission.json is missing, names another student or
disagrees with its files is "flagged" with a note (scored all the same). submission.json is the learner's claim
only (nothing in it is signed): hand-ins of one batch whose service or README are the same or nearly so (their
lines compared, file names, layout and comments aside) are each flagged "identical to <other>'s hand-in".

Deadlines: 30 s for each whole answer (however it trickles in), 900 s for one assessment (then "stopped").

Who runs the app: with --pack (an instructor grading hand-ins) it runs in the grading sandbox (bubblewrap: no
network but the relayed port, no view of your home folder, the repository or your environment, and every
process it starts ends with the assessment); with --app it runs directly as you, which is right for your own app.
An instructor scoring someone else's app with --app passes --sandbox auto. --url and --torchserve only probe a
service that is already running: they start nothing.

While it waits for the service it shows the elapsed time; a service whose /health keeps answering the same 503
(e.g. "model folder ... lacks model.pt") stops the wait after a few seconds with that reason.
Exit 0 passed, 1 fell short (including a service that never becomes ready), 2 the command could not run (a bad
--app spec, a missing file, an unwritable --json or --report path).
"""

EPILOG = """\
examples:
  .venv/bin/autograder assess --app app.py:app                     start your app under uvicorn and score it
  .venv/bin/autograder assess --app mlinfra.service:app            the course's reference service
  .venv/bin/autograder assess --url http://127.0.0.1:8000          a service you already run
  .venv/bin/autograder assess --torchserve http://127.0.0.1:8085 --model digits
  .venv/bin/autograder assess --app app.py:app --report out/assessment.md --json out/assessment.json
  .venv/bin/autograder assess --pack alice-practical.zip --report out/alice.md    a practical hand-in
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
    what.add_argument(
        "--pack",
        metavar="ZIP_OR_DIR",
        type=Path,
        nargs="+",
        help="score practical hand-ins made by `.venv/bin/autograder submit practical` (service + README sections), one "
        "after the other; each app runs in the grading sandbox",
    )
    parser.add_argument("--model", metavar="NAME", help="the TorchServe model name (with --torchserve)")
    parser.add_argument(
        "--sandbox",
        choices=("auto", "bwrap", "none"),
        default=None,
        help="where the app runs: in the grading sandbox (auto/bwrap: no network, no view of your files; the "
        "default with --pack) or directly as you (none: the default with --app, for your own app)",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        metavar="DIR",
        help="the model folder the service serves, for the latency breakdown (default $MLINFRA_MODEL_DIR, "
        "else models/digits-resnet18 under the workbook)",
    )
    parser.add_argument(
        "--served-model",
        action="store_true",
        help="the service must serve the model in --model-dir (else $MLINFRA_MODEL_DIR): its answers are compared "
        "with that model's own forward, in requirement 3 and on every timed request of requirement 4 (always so "
        "with --pack; the deploy checks of lab05 and lab06 use it; a service of your own model: leave it off)",
    )
    parser.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip the informational breakdown (raw forward vs service, throughput at 1/4/8 clients)",
    )
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
    if args.sandbox is not None and not (args.app or args.pack):
        raise UsageError("--sandbox goes with --app or --pack: --url and --torchserve start nothing to sandbox")
    for url in (args.url, args.torchserve):
        if url and not url.startswith(("http://", "https://")):
            raise UsageError(f"{url!r} is not an http:// or https:// URL, e.g. http://127.0.0.1:8000")
    if args.requests < 20:
        raise UsageError(f"--requests {args.requests}: a p95 needs at least 20 samples; use 20 or more")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency {args.concurrency}: use 1 or more clients")
    if args.startup_timeout is not None and args.startup_timeout <= 0:
        raise UsageError(f"--startup-timeout {args.startup_timeout:g}: give a positive number of seconds")
    if args.model_dir is not None and not args.model_dir.is_dir():
        raise UsageError(f"--model-dir {args.model_dir}: no such folder; give the folder holding model.pt")
    for given in (args.report, None if args.json_out in (None, "-") else Path(args.json_out)):
        if given is not None:
            must_be_writable(given)
    if args.report is not None and args.report.suffix.lower() != ".md":
        raise UsageError(f"--report {args.report}: give a Markdown file name ending in .md")


def must_be_writable(path: Path) -> None:
    """Refuse an output path that cannot be written before the assessment runs, not after it: try it."""
    import tempfile

    from mlinfra.base.errors import unwritable

    try:
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as exc:
        raise unwritable(path, exc) from None


def run(args: argparse.Namespace) -> Any:
    """Parse, call the assessment (assessment.py), print the table (and write the report), return the Outcome for the runner."""
    check_args(args)
    with terminate_like_interrupt():
        return _run(args)


@contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """SIGTERM (a supervisor, `timeout`) stops the assessment as Ctrl-C does: the sandbox, its mounts and its
    folders are removed on the way out, not left behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> Any:
    from autograder.assess.assessment import Request, assess

    packs = args.pack or [None]
    sandbox = args.sandbox or ("auto" if args.pack else "none")
    if args.pack:
        from autograder.assess.sandboxed import sandbox_kind

        sandbox = sandbox_kind(sandbox)  # refused once, before the first hand-in
    outcomes = []
    labels = pack_labels(args.pack) if args.pack else [None]
    slugs = unique([_slug(label) for label in labels if label is not None])
    twins = alike_in_batch(args.pack, labels) if args.pack and len(args.pack) > 1 else []
    for n, (pack, label) in enumerate(zip(packs, labels, strict=True)):
        request = Request(app=args.app, url=args.url, torchserve=args.torchserve, model=args.model, pack=pack,
                          model_dir=args.model_dir, requests=args.requests, concurrency=args.concurrency,
                          startup_timeout=args.startup_timeout, breakdown=not args.no_breakdown, sandbox=sandbox,
                          label=label, served_model=args.served_model)
        report = args.report
        if report is not None and len(packs) > 1:
            report = report.with_name(f"{report.stem}-{slugs[n]}.md")
        if len(packs) == 1:
            outcomes.append(finish(assess(request), args, report))
            continue
        try:  # one hand-in's failure, of any kind, is its outcome: the batch goes on and --json is written
            outcomes.append(finish(flag_alike(assess(request), twins[n]), args, report))
        except UsageError as exc:  # e.g. a path given that is not there, or its report not writable
            outcomes.append(grader_error(pack, exc, status="missing" if "not found" in str(exc) else "grader error",
                                         label=label))
        except Exception as exc:  # noqa: BLE001 - any failure of one hand-in is its outcome, the batch goes on
            outcomes.append(grader_error(pack, exc, label=label))
    if len(outcomes) == 1:
        if args.app:
            _record_progress(args.app, outcomes[0])
        return outcomes[0]
    return batch(outcomes)


def alike_in_batch(packs: list[Path], labels: list[str]) -> list[list[str]]:
    """For each hand-in of a batch, a note per other hand-in whose service or README is (nearly) the same
    (manifest.alike): a copy with its submission.json rewritten is caught here, not by the manifest. Each pack is
    unpacked on its own for this, before any app runs; one that cannot be read is left out (its assessment says
    why)."""
    import shutil
    import tempfile

    from autograder.assess import handin, manifest

    prints: list[manifest.Fingerprint | None] = []
    with tempfile.TemporaryDirectory(prefix="assess-alike-") as tmp:
        for n, pack in enumerate(packs):
            into = Path(tmp) / str(n)
            try:
                prints.append(manifest.fingerprint(handin.unpack(pack, into)))
            except Exception:  # noqa: BLE001 - unreadable or missing: the hand-in's own assessment reports it
                prints.append(None)
            shutil.rmtree(into, ignore_errors=True)
    return manifest.alike(prints, labels, [os.path.realpath(p) for p in packs])


def flag_alike(result: Any, notes: list[str]) -> Any:
    """`result` flagged with `notes` (hand-ins alike in the batch), still scored: a person decides."""
    if notes:
        result.notes += notes
        if result.status == "completed":
            result.status = "flagged"
    return result


def _record_progress(app: str, outcome: Any) -> None:
    """A learner assessing their own service (an app in their workspace/, as the README shows): the start page
    shows this last score (autograder.progress). Any other app (the reference service, a test's) is not theirs."""
    from autograder.paths import repo_root, workspace_dir
    from autograder.progress import record_practical

    try:
        root = repo_root()
        path = Path(app.rpartition(":")[0] or app).resolve()
        if not path.is_relative_to(workspace_dir(root).resolve()):
            return
        record_practical(root, passed=outcome.passed, score=outcome.score, max_score=outcome.max_score)
    except (UsageError, OSError):
        pass  # outside the workbook (or a read-only one): nothing to show it on


def grader_error(pack: Path, exc: Exception, status: str = "grader error", label: str | None = None) -> Any:
    """A hand-in the machinery failed on (not the student's doing): its outcome in a batch, with the traceback
    logged, so the other hand-ins are still scored."""
    import traceback

    from mlinfra.base.results import Outcome

    print(f"{pack}: the assessment failed ({type(exc).__name__}: {str(exc)[:200]}); the others go on",
          file=sys.stderr)
    if status == "grader error":
        traceback.print_exc()
    return Outcome(f"hand-in {label or pack.name}", status=status, data={"target": {"pack": str(pack)}},
                   notes=[(f"the assessment failed: {type(exc).__name__}: {str(exc)[:200]}; assess this hand-in "
                           "again on its own")])


def _slug(label: str) -> str:
    import re

    name = label.replace(".zip", "") or "pack"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "pack"


def pack_labels(packs: list[Path]) -> list[str]:
    """Each hand-in's name in a batch: its path below the folder all the packs share (alice/practical.zip and
    bob/practical.zip, not practical.zip twice), a number added when the same one is given twice."""
    import os

    if len(packs) == 1:
        return [packs[0].name]
    full = [os.path.abspath(p) for p in packs]
    common = os.path.commonpath([os.path.dirname(p) for p in full])
    return unique([Path(os.path.relpath(p, common)).as_posix() for p in full], sep=" #")


def unique(names: list[str], sep: str = "-") -> list[str]:
    """`names` with a number added to the second and later of equal ones (name, name-2, name-3)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        candidate = name if seen[name] == 1 else f"{name}{sep}{seen[name]}"
        while candidate in names and candidate != name:
            seen[name] += 1
            candidate = f"{name}{sep}{seen[name]}"
        out.append(candidate)
    return out


def batch(outcomes: list[Any]) -> Any:
    """Several hand-ins' outcomes as one (its parts), with a line per hand-in."""
    from mlinfra.base.output import printable
    from mlinfra.base.results import Outcome

    print("\nbatch:")
    for o in outcomes:  # a subject holds the hand-in's file name: the learner's text
        print(f"  {printable(o.subject)}: {o.status}, {o.score:g}/{o.max_score:g}")
    notes = [f"{sum(o.passed for o in outcomes)} of {len(outcomes)} hand-ins passed"]
    return Outcome("assess --pack", notes=notes, parts=outcomes)


def finish(result: Any, args: argparse.Namespace, report: Path | None = None) -> Any:
    """Print the human rendering; the runner writes --json from the returned Outcome (stdout is stderr with -).
    The report is written here, once the service (and its sandbox) is gone."""
    from autograder.assess.report import markdown, terminal, to_outcome
    from mlinfra.base.errors import unwritable

    print(terminal(result))
    report = report if report is not None else args.report
    if report is not None:
        try:
            path = markdown(result, report)
        except OSError as exc:
            raise unwritable(report, exc) from None
        print(f"report: {path}")
    return to_outcome(result)
