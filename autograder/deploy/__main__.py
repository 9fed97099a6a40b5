"""`python -m autograder.deploy _inner fd:N|SOCK PORT -- COMMAND...`: what the lab05 deploy check runs inside the
grading sandbox (torchserve_sandbox.py): TorchServe in the foreground, its inference port relayed to a unix
socket (a listening one handed down as descriptor N, or one it binds at SOCK). Not for use by hand.
"""

from __future__ import annotations

import sys

from autograder.deploy.torchserve_sandbox import inner_main

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_inner":
        sys.exit(inner_main(sys.argv[2:]))
    sys.exit("usage: python -m autograder.deploy _inner fd:N|SOCK PORT -- COMMAND... (used by the TorchServe check)")
