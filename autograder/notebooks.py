"""`autograder check`: not built yet (placeholder so the CLI loads while it is written)."""

from __future__ import annotations

import argparse

from autograder.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check", help="(not built yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("'check' is not built yet")
