"""`assess --pack` runs each hand-in's app in the grading sandbox: an import-time payload cannot read solutions/,
the home folder or the grader's environment, cannot write outside its own folder, and nothing it starts outlives
the assessment; the report is written by the trusted side once the sandbox is gone."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from autograder.cli import main
from autograder.grading.sandbox import bwrap_works, course_readonly_paths

ROOT = Path(__file__).parents[2]
README = ("# s\n## How to run\nuvicorn app:app\n## API\nPOST /predict\n## Latency\np95 4 ms\n"
          "## Limitations\ndigits only\n")

PAYLOAD = '''
import json as _json, os as _os, subprocess as _sp, sys as _sys
_STATUS = {}
def _attempt(name, fn):
    try:
        fn()
        _STATUS[name] = "LEAK"
    except BaseException as exc:
        _STATUS[name] = "blocked " + type(exc).__name__
_attempt("solutions", lambda: open(%(solution)r).read())
_attempt("canary", lambda: open(%(canary)r).read())
_attempt("home", lambda: open(%(home)r).read())
_attempt("real home", lambda: [n for n in _os.listdir(%(real_home)r) if n not in %(allowed)r] or 1 / 0)
_attempt("secret", lambda: _os.environ["ASSESS_TEST_SECRET"] + 1)
_attempt("write outside", lambda: open(%(outside)r, "w").write("pwned"))
_attempt("write repo", lambda: open(%(repo_file)r, "w").write("pwned"))
# Writes are attempted; the test looks for them on the host (the sandbox's own view may take a write, in a
# tmpfs of its own, and that is no harm).
# A daemon in a session of its own, holding a port, that keeps rewriting the report after assess exits.
_DAEMON = %(daemon)r
_sp.Popen([_sys.executable, "-c", _DAEMON], start_new_session=True, stdin=_sp.DEVNULL, stdout=_sp.DEVNULL,
          stderr=_sp.DEVNULL)
print("PROBE " + _json.dumps(_STATUS), flush=True)
'''

DAEMON = '''
import os, socket, time  # %(marker)s
if os.fork():
    os._exit(0)
os.setsid()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", %(port)d)); s.listen(1)
except OSError:
    pass
for _ in range(600):
    for path in (%(report)r, %(outside)r):
        try:
            open(path, "w").write("120 / 120 (rewritten by a daemon)")
        except OSError:
            pass
    time.sleep(0.1)
'''


def hostile_pack(tmp_path: Path, name: str, marker: str, *, serve: bool, port: int) -> Path:
    canary = tmp_path / "instructor" / "solutions" / "hidden.txt"
    canary.parent.mkdir(parents=True, exist_ok=True)
    canary.write_text("hidden tests")
    home_canary = tmp_path / "instructor" / "home" / ".netrc"
    home_canary.parent.mkdir(parents=True, exist_ok=True)
    home_canary.write_text("machine example.org password hunter2")
    values = {
        "solution": str(ROOT / "solutions" / "lab07-api" / "app.py"),
        "canary": str(canary),
        "home": str(home_canary),
        "real_home": str(Path.home()),
        # What the sandbox may show of the real home folder: the path down to a course folder bound inside it
        # (a uv-managed interpreter lives under ~/.local), nothing else.
        "allowed": sorted({Path(p).relative_to(Path.home()).parts[0] for p in course_readonly_paths()
                           if Path(p).is_relative_to(Path.home())}),
        "outside": str(tmp_path / f"{name}-outside.txt"),
        "repo_file": str(ROOT / f".{name}-pwned"),
    }
    daemon = DAEMON % {"marker": marker, "port": port, "report": str(tmp_path / f"report-{name}-practical.md"),
                       "outside": values["outside"]}
    payload = PAYLOAD % {**values, "daemon": daemon}
    if serve:
        head, future, rest = (ROOT / "solutions" / "lab07-api" / "app.py").read_text().partition(
            "from __future__ import annotations\n")
        app = head + future + payload + rest
    else:  # fail at import, carrying what the payload found into the traceback the grader shows
        app = payload + "raise RuntimeError('PROBE ' + _json.dumps(_STATUS))\n"
    pack = tmp_path / f"{name}-practical.zip"
    with zipfile.ZipFile(pack, "w") as zf:
        zf.writestr("service/app.py", app)
        zf.writestr("README.md", README)
        zf.writestr("model_card.json", "{}")
    return pack


def survivors(marker: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc.pid)
        except psutil.Error:
            pass
    return found


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.skipif(bool(bwrap_works()), reason=f"needs bubblewrap: {bwrap_works()}")
def test_hostile_hand_ins_are_contained_and_honest_scores_unchanged(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlinfra.base.procs import free_port

    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    monkeypatch.setenv("ASSESS_TEST_SECRET", "s3cr3t-token-4711")
    marker = f"hostile-daemon-{os.getpid()}-{time.time_ns()}"
    port = free_port()
    crash = hostile_pack(tmp_path, "crash", marker, serve=False, port=port)
    serving = hostile_pack(tmp_path, "serving", marker, serve=True, port=port)
    honest = tmp_path / "honest-practical.zip"
    with zipfile.ZipFile(honest, "w") as zf:
        zf.writestr("service/app.py", (ROOT / "solutions" / "lab07-api" / "app.py").read_text())
        zf.writestr("README.md", README)
        zf.writestr("model_card.json", "{}")
    out, report = tmp_path / "batch.json", tmp_path / "report.md"
    code = main(["assess", "--pack", str(crash), str(serving), str(honest), "--requests", "20", "--no-breakdown",
                 "--json", str(out), "--report", str(report)])
    finished = time.monotonic()
    result = json.loads(out.read_text())
    assert code == 1  # the crashing hand-in falls short
    # A batch's parts are plain outcomes: the assessment's own keys are under "data".
    parts = {p["subject"].split(" ")[1].split("-")[0]: {**p["data"], **p} for p in result["parts"]}
    assert all(p["target"]["sandbox"] == "bwrap" for p in parts.values())

    # What the payload found, in its own words (the traceback the grader shows for the hand-in that crashed).
    log = "\n".join(parts["crash"]["server_log"])
    probe = json.loads(log[log.index("PROBE {") + 6:].split("}", 1)[0] + "}")
    assert set(probe) == {"solutions", "canary", "home", "real home", "secret", "write outside", "write repo"}
    assert not [k for k in ("solutions", "canary", "home", "real home", "secret") if probe[k] == "LEAK"], probe

    # Nothing it started is left, and nothing outside its sandbox was written, then or later.
    time.sleep(max(0.0, 2.0 - (time.monotonic() - finished)))
    assert survivors(marker) == []
    assert not port_open(port)
    assert not list(tmp_path.glob("*-outside.txt"))
    assert not list(ROOT.glob(".*-pwned"))
    for name in ("crash", "serving", "honest"):
        assert "rewritten by a daemon" not in (tmp_path / f"report-{name}-practical.md").read_text()
    assert "s3cr3t-token-4711" not in out.read_text()

    # A hostile app that serves is scored like any other, and the honest one as when graded alone.
    alone_out = tmp_path / "alone.json"
    main(["assess", "--pack", str(honest), "--requests", "20", "--no-breakdown", "--json", str(alone_out)])
    alone = json.loads(alone_out.read_text())
    for p in (parts["serving"], parts["honest"]):
        assert p["max_score"] == 120
        failed = [c["number"] for c in p["criteria"] if not c["passed"]]
        assert failed in ([], [4]), failed  # latency is wall time: never asserted here (test_latency_fair.py)
    assert [c["points"] for c in parts["honest"]["criteria"][:3] + parts["honest"]["criteria"][4:]] == \
        [c["points"] for c in alone["criteria"][:3] + alone["criteria"][4:]]


@pytest.mark.skipif(bool(bwrap_works()), reason=f"needs bubblewrap: {bwrap_works()}")
def test_the_relay_socket_is_out_of_the_sandboxs_reach(tmp_path: Path) -> None:
    """The trusted relay connects to a socket path: that path must lie where nothing in the sandbox can write, or
    the app could swap it for a link to another socket of the host (another student's service)."""
    from autograder.assess.sandboxed import SandboxedServer

    service = tmp_path / "service"
    service.mkdir()
    (service / "app.py").write_text("async def app(scope, receive, send):\n    pass\n")
    with SandboxedServer(service, "app", "app", None) as server:
        server.start()
        writable = (server.spec.work, server.spec.conn)
        sock = server.relay_dir / "app.sock"
        assert sock.exists() and not any(sock.is_relative_to(w) for w in writable)
        assert not any(server.relay_dir.is_relative_to(p) for p in server.spec.readonly)


@pytest.mark.skipif(bool(bwrap_works()), reason=f"needs bubblewrap: {bwrap_works()}")
def test_the_apps_folder_cannot_fill_the_disk(tmp_path: Path) -> None:
    """Many files, each under the file-size limit, stop at the folder's own size cap (a root grader's tmpfs)."""
    import os

    from autograder.assess.sandboxed import DISK_MB, SandboxedServer

    if os.geteuid() != 0:
        pytest.skip("a size-capped folder of its own needs a root grader (an unprivileged one has its disk quota)")
    service = tmp_path / "service"
    service.mkdir()
    (service / "app.py").write_text(
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(100):\n"
        "        with open(f'fill{i}', 'wb') as f:\n"
        "            for _ in range(32):\n"
        "                f.write(b'x' * (1 << 20))\n"
        "                written += 1\n"
        "except OSError as exc:\n"
        "    print('STOPPED', written, exc.errno, flush=True)\n"
        "print('WROTE', written, flush=True)\n"
        "async def app(scope, receive, send):\n    pass\n")
    with SandboxedServer(service, "app", "app", None) as server:
        server.start()
        for _ in range(200):
            if any(line.startswith("WROTE") for line in server.log_tail()):
                break
            time.sleep(0.1)
        log = server.log_tail()
    wrote = [int(line.split()[1]) for line in log if line.startswith("WROTE")]
    assert wrote and wrote[0] <= DISK_MB, log
    assert any(line.startswith("STOPPED") for line in log), log
