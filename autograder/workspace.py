"""The learner's workspace and `make lab`: personal copies of the released labs in an ignored folder, made on
first open, so `git pull` never conflicts and labs/ stays exactly as released; then JupyterLab at the start page.

`python -m autograder.workspace open` is what `make lab` runs. It
- keeps all of Jupyter's config, data and runtime files under .state/jupyter/ (nothing in ~/.jupyter or
  ~/.local/share/jupyter), with the learner's nbgrader tools only (see docs/setup.md);
- refreshes the learner's start page, workspace/START-HERE.ipynb, by executing modules/START-HERE.ipynb, so its
  prerequisites and progress sections show results when opened;
- prints the URL Jupyter really serves (port and token read from Jupyter's own server-info file) once it answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.labs import lab_names
from autograder.paths import labs_dir, repo_root, state_dir, workspace_dir
from mlinfra.base import runner
from mlinfra.base.errors import UsageError
from mlinfra.base.runner import EXIT_PASSED

START_PAGE = Path("modules") / "START-HERE.ipynb"
LEARNER_START_PAGE = Path("workspace") / "START-HERE.ipynb"

# nbgrader's instructor tools, switched off in the learner's Jupyter (the names nbgrader 0.9 registers). The
# assignment and course lists need an nbgrader exchange (a JupyterHub class), which self-paced learners lack; the
# Nbgrader menu only opens those panels. The Validate button (validate-assignment) stays.
INSTRUCTOR_LAB_EXTENSIONS = ("@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                             "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list",
                             "@jupyter/nbgrader:menu")
# JupyterLab's news pop-up asks to fetch announcements from the internet: the course works offline.
OFFLINE_LAB_EXTENSIONS = ("@jupyterlab/apputils-extension:announcements",)
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list",
                                "nbgrader.server_extensions.assignment_list")
READY_TIMEOUT = 180.0


def ensure_workspace(root: Path) -> list[str]:
    """Copy every released lab that the learner does not have yet; never overwrite their work."""
    created = []
    for name in lab_names(root, source=False):
        dest = workspace_dir(root) / name
        if not dest.exists():
            shutil.copytree(labs_dir(root) / name, dest)
            created.append(name)
    return created


# ------------------------------------------------------------------------------------------ Jupyter's own folders


def jupyter_dirs(root: Path) -> dict[str, Path]:
    base = state_dir(root) / "jupyter"
    return {"JUPYTER_CONFIG_DIR": base / "config", "JUPYTER_DATA_DIR": base / "data",
            "JUPYTER_RUNTIME_DIR": base / "runtime", "IPYTHONDIR": state_dir(root) / "ipython"}


def jupyter_env(root: Path) -> dict[str, str]:
    """The environment for the learner's Jupyter: its folders inside .state/, the venv's tools first on PATH."""
    env = dict(os.environ, WORKBOOK_ROOT=str(root))
    for name, path in jupyter_dirs(root).items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    return env


def write_jupyter_config(config_dir: Path, *, instructor: bool = False) -> None:
    """The learner's (or, with `instructor`, the instructor's) Jupyter set-up, written on every open."""
    off = not instructor
    config_dir.mkdir(parents=True, exist_ok=True)
    server = {"ServerApp": {"jpserver_extensions": {name: not off for name in INSTRUCTOR_SERVER_EXTENSIONS},
                            # the start page's progress recomputed each time it is opened
                            "contents_manager_class": "autograder.startpage_server.StartPageContentsManager"}}
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server, indent=2) + "\n")
    (config_dir / "labconfig").mkdir(exist_ok=True)
    page = {"disabledExtensions": {**{name: off for name in INSTRUCTOR_LAB_EXTENSIONS},
                                   **{name: True for name in OFFLINE_LAB_EXTENSIONS}}}
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2) + "\n")
    # nbgrader's extensions warn "No nbgrader_config.py" unless one exists on Jupyter's config path. Grading
    # configures nbgrader in code (autograder/nbgrader_course.py), so this file deliberately sets nothing.
    (config_dir / "nbgrader_config.py").write_text(
        "# Written by `make lab` (autograder/workspace.py). Deliberately empty: the course configures nbgrader in\n"
        "# code for release and grading; this file only tells nbgrader's Jupyter extensions that none is missing.\n")


# --------------------------------------------------------------------------------------------- the start page


def _relink(text: str) -> str:
    """Links in modules/START-HERE.ipynb are relative to modules/; the learner's copy sits in workspace/."""
    return re.sub(r"\]\((?!https?:|#|/|\.\./)([^)]+)\)", r"](../modules/\1)", text)


def render_start_page(root: Path, timeout: float = 120.0) -> Path:
    """Execute the start page in a fresh kernel and store the result as the learner's copy (ignored by git).
    Runs in its own process (`start-page`), so `make lab`'s long-lived process holds no kernel machinery."""
    import nbclient
    import nbformat
    from jupyter_client.manager import KernelManager

    source = root / START_PAGE
    nb = nbformat.read(source, as_version=4)
    # ipc: no kernel port to clash or warn about. Its sockets go in a short temporary folder: a unix socket path
    # longer than about 107 bytes (a deep checkout's .state/jupyter/runtime) cannot be bound.
    with tempfile.TemporaryDirectory(prefix="mlw-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc")
        km.connection_file = str(Path(sockets) / "kernel.json")
        km.ip = str(Path(sockets) / "k")
        nbclient.NotebookClient(nb, km=km, timeout=timeout, startup_timeout=60,
                                resources={"metadata": {"path": str(source.parent)}}, allow_errors=True).execute()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _relink(cell.source)
    note = nbformat.v4.new_markdown_cell(
        "*Your start page: your progress is recomputed each time you open it (the rest when you run `make lab`). "
        "Edits here are overwritten: the course's source is `modules/START-HERE.ipynb`.*")
    note.metadata["tags"] = ["refreshed-by-make-lab"]
    nb.cells.insert(0, note)
    dest = root / LEARNER_START_PAGE
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dest)
    return dest


def refresh_start_page(root: Path, env: dict[str, str], timeout: float = 180.0) -> Path | None:
    """Run `start-page` in a child process with Jupyter's folders; None (and why, printed) when it fails."""
    try:
        done = subprocess.run([sys.executable, "-m", "autograder.workspace", "start-page"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"start page: not ready within {timeout:g} s; opening {START_PAGE} instead (run its cells yourself)")
        return None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        print(f"start page: could not run it ({last[:160]}); opening {START_PAGE} instead (run its cells yourself)")
        return None
    return root / LEARNER_START_PAGE


def server_info(runtime_dir: Path, pid: int) -> dict | None:
    """What Jupyter wrote about the server of process `pid` (url, port, token), once it is listening."""
    path = runtime_dir / f"jpserver-{pid}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or caught mid-write: the caller polls again


def wait_until_serving(proc: subprocess.Popen, runtime_dir: Path, timeout: float = READY_TIMEOUT) -> dict:
    """Poll Jupyter's server-info file, then its /api/status, until the server answers. Jupyter offers no other
    readiness signal to a parent process, so this polls (the base's wait_until, which also watches the process)."""
    import httpx

    from mlinfra.base.wait import NotReady, wait_until

    def answers() -> dict | None:
        info = server_info(runtime_dir, proc.pid)
        if info:
            try:
                answer = httpx.get(info["url"].rstrip("/") + "/api/status",
                                   params={"token": info.get("token", "")}, timeout=5)
                if answer.status_code == 200:
                    return info
            except httpx.HTTPError:
                pass  # listening but not answering yet
        return None

    try:
        return wait_until(answers, process=proc, timeout=timeout, interval=0.5, what="JupyterLab")
    except NotReady as exc:
        if exc.exit_code is not None:
            raise UsageError(f"JupyterLab exited with code {exc.exit_code} before serving (its messages are "
                             "above); fix what they name and rerun `make lab`") from None
        raise UsageError(f"JupyterLab did not answer within {timeout:g} s (its messages are above); "
                         "stop it with Ctrl-C and rerun `make lab`") from None


def lab_url(info: dict, start: Path) -> str:
    url = f"{info['url'].rstrip('/')}/lab/tree/{start.as_posix()}"
    return f"{url}?token={info['token']}" if info.get("token") else url


def open_lab(root: Path, port: int, open_browser: bool, *, instructor: bool = False,
             refresh: bool = True) -> int:
    created = ensure_workspace(root)
    if created:
        print(f"workspace: copied {', '.join(created)} into {workspace_dir(root)}/ (your copies; edit those)")
    env = jupyter_env(root)
    write_jupyter_config(Path(env["JUPYTER_CONFIG_DIR"]), instructor=instructor)
    start = Path("README.md")
    if (root / START_PAGE).is_file():
        start = START_PAGE
        if refresh:
            print("start page: checking your machine and progress (a few seconds)...", flush=True)
            began = time.monotonic()
            rendered = refresh_start_page(root, env)
            if rendered is not None:
                start = rendered.relative_to(root)
                print(f"start page: ready in {time.monotonic() - began:.0f} s ({start})", flush=True)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--ip", "127.0.0.1", "--port", str(port),
           f"--ServerApp.root_dir={root}", str(start)]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses to run as root without it (containers, CI boxes)
    print(f"starting JupyterLab on 127.0.0.1 (port {port}, or the next free one)...", flush=True)
    proc = subprocess.Popen(cmd, cwd=root, env=env)
    # SIGTERM (a supervisor, `timeout`) must stop Jupyter too: turn it into an exit that runs the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        info = wait_until_serving(proc, Path(env["JUPYTER_RUNTIME_DIR"]))
        moved = f" (port {port} was taken, so Jupyter chose {info['port']})" if int(info["port"]) != port else ""
        print(f"\nJupyterLab is ready{moved}; open this URL (Ctrl-C here to stop):\n    {lab_url(info, start)}\n",
              flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        print("\nstopping JupyterLab...", flush=True)
        return EXIT_PASSED
    finally:
        if proc.poll() is None:
            proc.terminate()  # Jupyter shuts down cleanly on SIGTERM (kernels included)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = runner.ArgumentParser(
        prog="python -m autograder.workspace",
        description="Make the learner's lab copies and open the workbook in JupyterLab (what `make lab` runs). "
        "Jupyter's config, data and runtime files stay in .state/jupyter/.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("ensure", help="copy released labs into workspace/ (never overwrites)")
    sub.add_parser("start-page", help="run modules/START-HERE.ipynb into workspace/START-HERE.ipynb (open does it)")
    opener = sub.add_parser("open", help="ensure the workspace, refresh the start page, open JupyterLab at it")
    opener.add_argument("--port", type=int, default=8888, help="port to try first (Jupyter moves on if taken)")
    opener.add_argument("--no-browser", action="store_true", help="print the URL only")
    opener.add_argument("--no-refresh", action="store_true",
                        help="open the start page without running it first (faster; its results stay blank)")
    opener.add_argument("--instructor", action="store_true",
                        help="keep nbgrader's instructor tools (formgrader, create assignment) switched on")
    return parser


def run(args: argparse.Namespace) -> int:
    root = repo_root()
    if args.action == "ensure":
        created = ensure_workspace(root)
        print(f"workspace: {len(created)} lab(s) copied" + (f": {', '.join(created)}" if created else ""))
        return EXIT_PASSED
    if args.action == "start-page":
        print(f"start page: {render_start_page(root)}")
        return EXIT_PASSED
    return open_lab(root, args.port, not args.no_browser, instructor=args.instructor, refresh=not args.no_refresh)


def main(argv: list[str] | None = None) -> int:
    return runner.main("make lab", build_parser(), argv, body=run)


if __name__ == "__main__":
    sys.exit(main())
