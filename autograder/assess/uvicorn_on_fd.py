"""Serve an ASGI app with uvicorn on a listening socket the assessment bound and passed down (``--fd N``).

Why not uvicorn's own ``--fd``: it wraps the descriptor as a Unix-domain socket (uvicorn/config.py), so asyncio
never turns Nagle's algorithm off on the TCP connections it accepts, and every answer written in two parts (headers,
then body) waits for the client's delayed ACK: about 40 ms a request, which would swamp the latency being
measured. Here the socket is rebuilt with its real family (``socket.socket(fileno=...)`` asks the kernel) and given
to ``uvicorn.Server.run(sockets=...)``.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m autograder.assess.uvicorn_on_fd", description=__doc__)
    parser.add_argument("app", help="MODULE:ATTR, as uvicorn imports it")
    parser.add_argument("--fd", type=int, required=True,
                        help="a listening socket's file descriptor (TCP, or unix inside the grading sandbox)")
    parser.add_argument("--app-dir", help="folder put first on sys.path before importing the app")
    args = parser.parse_args(argv)
    if args.app_dir:
        sys.path.insert(0, args.app_dir)
    import uvicorn

    # Family, type and protocol come from the kernel: AF_INET for a direct assessment, AF_UNIX in the sandbox
    # (autograder/assess/sandboxed.py), where Nagle's algorithm does not apply.
    sock = socket.socket(fileno=args.fd)
    server = uvicorn.Server(uvicorn.Config(args.app, access_log=False))
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
