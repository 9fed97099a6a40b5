"""The learner's workspace: personal copies of the released labs in an ignored folder, made on first open, so
`git pull` never conflicts and labs/ stays exactly as released. `python -m autograder.workspace open` is what
`make lab` runs."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograder.labs import lab_names
from autograder.paths import labs_dir, repo_root, workspace_dir

START_PAGE = Path("modules") / "START-HERE.ipynb"


def ensure_workspace(root: Path) -> list[str]:
    """Copy every released lab that the learner does not have yet; never overwrite their work."""
    created = []
    for name in lab_names(root, source=False):
        dest = workspace_dir(root) / name
        if not dest.exists():
            shutil.copytree(labs_dir(root) / name, dest)
            created.append(name)
    return created


def open_lab(root: Path, port: int, open_browser: bool) -> int:
    created = ensure_workspace(root)
    if created:
        print(f"workspace: copied {', '.join(created)} into {workspace_dir(root)}/ (your copies; edit those)")
    start = START_PAGE if (root / START_PAGE).is_file() else Path("README.md")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--ip", "127.0.0.1", "--port", str(port),
           f"--ServerApp.root_dir={root}", str(start)]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to run as root without it (containers, CI boxes)
    print(f"opening JupyterLab at http://127.0.0.1:{port}/lab/tree/{start} (Ctrl-C to stop)")
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    try:
        return subprocess.call(cmd, cwd=root, env=env)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.workspace",
                                     description="Make the learner's lab copies and open the workbook.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("ensure", help="copy released labs into workspace/ (never overwrites)")
    opener = sub.add_parser("open", help="ensure the workspace, then open JupyterLab at the start page")
    opener.add_argument("--port", type=int, default=8888)
    opener.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.action == "ensure":
        created = ensure_workspace(root)
        print(f"workspace: {len(created)} lab(s) copied" + (f": {', '.join(created)}" if created else ""))
        return 0
    return open_lab(root, args.port, not args.no_browser)


if __name__ == "__main__":
    sys.exit(main())
