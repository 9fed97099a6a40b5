"""`autograder`: one command, verbs named after what a person wants to do.

Every verb lives in its own module, which registers its sub-parser through `register(subparsers)` and sets
`func(args)`, returning an Outcome (or `Done`). Modules import their heavy dependencies (torch, nbgrader, airflow)
inside `func`, so `autograder --help` stays instant. The process contract (exit codes, `--json`, one-line errors)
is `mlinfra.base.runner`'s, the same for every verb (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mlinfra.base import runner
from mlinfra.base.errors import UsageError

# verb -> module that registers it; order is the order of `autograder --help`.
COMMANDS: dict[str, str] = {
    "check": "autograder.check",
    "submit": "autograder.submit",
    "grade": "autograder.grading.cli",
    "review": "autograder.review",
    "release": "autograder.release",
    "quiz": "autograder.quiz.cli",
    "assess": "autograder.assess.cli",
    "dag": "autograder.dag.cli",
    "dockerfile": "autograder.dockerfile.cli",
    "doctor": "autograder.doctor",
    "class": "autograder.classbook.cli",
}

EPILOG = """\
learner:     .venv/bin/autograder check lab01-environment      self-check your workspace copy of a lab
             .venv/bin/autograder quiz take module01           take a quiz in the terminal
             .venv/bin/autograder assess --app app.py:app      score your deployed model (the practical)
instructor:  .venv/bin/autograder release                      regenerate labs/ from solutions/
             .venv/bin/autograder grade LAB SUBMISSIONS/       batch-grade a class into grades.csv + feedback
exit codes:  0 passed, 1 the work fell short, 2 the command could not run (the message says why), 130 Ctrl-C
"""


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="autograder",
        description="Release, self-check and grade the workbook's labs; take quizzes; assess a served model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=runner.ArgumentParser)
    for verb, module_name in COMMANDS.items():
        try:
            importlib.import_module(module_name).register(sub)
        except Exception as exc:  # noqa: BLE001 - one broken verb must not take the others down with it
            _register_broken(sub, verb, module_name, exc)
    return parser


def _register_broken(sub: argparse._SubParsersAction, verb: str, module_name: str, exc: Exception) -> None:
    reason = f"{module_name} failed to load ({type(exc).__name__}: {exc}); reinstall with `make setup`"
    parser = sub.add_parser(verb, help=f"(unavailable: {type(exc).__name__})", add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(args: argparse.Namespace) -> int:
        raise UsageError(reason)

    parser.set_defaults(func=unavailable)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return runner.EXIT_COULD_NOT_RUN
    return runner.run(f"autograder {args.command}", lambda: args.func(args), json_out=getattr(args, "json_out", None))


if __name__ == "__main__":
    sys.exit(main())
