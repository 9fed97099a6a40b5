"""lab06's graded deploy check against red team 3's images (tests/assess/open_findings/rt3): a service answering a
constant without the model loses requirements 3 and 4 (finding 4); a graded container reaches nothing of the
grading machine, neither its address nor its 127.0.0.1 (finding 5); a graded build's RUN steps are held to the
lab's memory, process and file-size limits (finding 6); a graded build starts only from the course's base image
or its own earlier stages (finding 7)."""

from __future__ import annotations

import socket
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder import container_engine as eng
from autograder.dockerfile.bases import BASE_RULE, foreign_sources
from autograder.dockerfile.build import Caps, build_and_assess
from autograder.dockerfile.rules import lint

ROOT = Path(__file__).resolve().parents[2]
BASE = "python:3.11-slim-bookworm"
DIGEST = "sha256:" + "ab" * 32


def engine_or_skip() -> eng.Engine:
    from autograder.errors import UsageError

    try:
        return eng.detect(ROOT)
    except UsageError as exc:
        pytest.skip(f"no container engine: {exc}")


def write(folder: Path, dockerfile: str, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".dockerignore").write_text(".git\n")
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(textwrap.dedent(text))
    path = folder / "Dockerfile"
    path.write_text(textwrap.dedent(dockerfile).lstrip())
    return path


# ---- finding 7: what a graded build may start from ------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"FROM {BASE}\n",
    f"FROM docker.io/library/{BASE} AS deps\nRUN true\nFROM deps\nCOPY --from=deps /a /a\nCOPY --from=0 /b /b\n",
    f"ARG PY={BASE}\nFROM $PY\n",
    f"FROM {BASE} AS w\nFROM {BASE}\nRUN --mount=type=bind,from=w,target=/w true\n",
    f"FROM {BASE}@{DIGEST}\n",
])
def test_the_course_base_and_earlier_stages_are_allowed(text: str) -> None:
    assert foreign_sources(text, digests=[DIGEST]) == []


@pytest.mark.parametrize(("text", "line", "why"), [
    ("FROM localhost/autograder/lab06-docker:latest\n", 1, "not the course's base image"),
    (f"FROM {BASE}\nCOPY --from=localhost/autograder/lab06-docker:latest /srv /srv\n", 2, "not the course's"),
    (f"FROM {BASE}\nRUN --mount=type=bind,from=localhost/mlinfra-sandbox:1,target=/x cp -r /x /y\n", 2, "not the"),
    (f"FROM {BASE} AS a\nONBUILD COPY --from=localhost/autograder/lab06-docker:latest / /\nFROM a\n", 2, "not the"),
    ("ARG IMG=localhost/autograder/lab06-docker:latest\nFROM ${IMG}\n", 2, "not the course's base image"),
    ("FROM ${MLINFRA_GRADED_BATCH}\n", 1, "a variable"),
    ("FROM $NOWHERE\n", 1, "a variable"),
    (f"FROM {BASE}@sha256:{'cd' * 32}\n", 1, "that digest is not the course base's"),
    ("FROM python:3.12-slim\n", 1, "not the course's base image"),
    (f"FROM {BASE}\nFROM later AS later\n", 2, "not the course's"),  # a stage only counts once it is defined
])
def test_anything_else_is_a_finding_naming_the_line(text: str, line: int, why: str) -> None:
    [finding] = foreign_sources(text, digests=[DIGEST])
    assert finding.rule == BASE_RULE and finding.line == line and why in finding.message, finding
    assert "FROM python:3.11-slim-bookworm" in finding.fix


@pytest.mark.container
def test_a_graded_build_from_an_image_of_the_grading_machine_is_not_built(tmp_path: Path) -> None:
    """Red team 3's Dockerfile: FROM an image someone built on the grading machine. It is there (a second tag of
    the course's base here: no storage), so without the check it would build."""
    engine = engine_or_skip()
    other = "localhost/autograder/rt3-someone-elses:latest"
    engine.run("tag", BASE, other)
    try:
        path = write(tmp_path, f"FROM {other}\nCMD [\"python\", \"-m\", \"http.server\"]\n")
        outcome = build_and_assess(path, lint(path, hadolint=False), tag="autograder-test/foreign:1",
                                   isolated=True, assess=False, log=lambda m: None, keep_image=False)
        assert not outcome.built and outcome.error, outcome.summary()
        assert outcome.error.startswith("not built: line 1: FROM localhost/autograder/rt3-someone-elses:latest: "
                                        "not the course's base image"), outcome.error
        assert engine.run("image", "exists", "autograder-test/foreign:1", check=False).returncode != 0
    finally:
        engine.run("rmi", other, check=False)  # the tag only: the base image stays


# ---- finding 4: the answers must be the staged model's ---------------------------------------------------------

CONSTANT_SERVICE = '''
    """No model: the contract's shape, a constant answer, and the contract's 4xx answers."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ANSWER = {"predictions": [{"label": l, "confidence": c}
                              for l, c in (("4", 0.6), ("9", 0.3), ("1", 0.05), ("7", 0.03), ("0", 0.01))]}


    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def send(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path == "/health":
                return self.send(200, {"status": "ok"})
            self.send(405 if self.path == "/predict" else 404, {"detail": "no"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            if self.path != "/predict":
                return self.send(404, {"detail": "not found"})
            if n > 10 * 1024 * 1024 + 4096:
                return self.send(413, {"detail": "too large"})
            if b'name="file"' not in body:
                return self.send(422, {"detail": "missing field file"})
            boundary = body.split(b"\\r\\n", 1)[0]
            part = body.split(b"\\r\\n\\r\\n", 1)[1].rsplit(b"\\r\\n" + boundary, 1)[0]
            if not part:
                return self.send(400, {"detail": "empty"})
            if part.startswith(b"\\x89PNG\\r\\n\\x1a\\n"):
                ok = part.endswith(b"IEND\\xaeB`\\x82")
            elif part.startswith(b"\\xff\\xd8\\xff"):
                ok = part.endswith(b"\\xff\\xd9")
            else:
                return self.send(415, {"detail": "not a PNG or JPEG"})
            if not ok:
                return self.send(400, {"detail": "does not decode"})
            self.send(200, ANSWER)


    ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
'''


@pytest.mark.slow
@pytest.mark.container
def test_a_constant_answer_service_loses_requirements_3_and_4(tmp_path: Path, tiny_model: Path) -> None:
    """Red team 3's fake: the contract's form, no model, one answer for everything. Graded against the model the
    image was built with (the stand-in: its top-1 varies with the image), requirement 3 (the model's answers) and
    4 (every timed answer checked) fail; the form-only requirements 1, 2 and 5 still pass, so it is the answers
    that are judged. Before the fix it scored 100/100."""
    engine_or_skip()
    path = write(tmp_path / "fake", f"""
        FROM {BASE}
        COPY fake.py /app/fake.py
        USER 10001
        EXPOSE 8000
        CMD ["python", "/app/fake.py"]
        """, fake_py=CONSTANT_SERVICE)
    outcome = build_and_assess(path, lint(path, hadolint=False), model_dir=tiny_model, tag="autograder-test/fake:1",
                               isolated=True, log=lambda m: None, keep_image=False, requests=20, health_timeout=60)
    assert outcome.built and outcome.healthy, outcome.summary()
    criteria = (outcome.assessment or {}).get("criteria") or []
    assert [c["passed"] for c in criteria] == [True, True, False, False, True], \
        [(c["name"], c["points"], c.get("verdict")) for c in criteria]


# ---- finding 5: a graded container has no network --------------------------------------------------------------

def host_addresses() -> list[str]:
    """This machine's own IPv4 addresses other than loopback (the grading machine's address a container saw)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False).stdout
    found = [line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in line]
    return [a for a in found if not a.startswith("127.")]


@pytest.fixture
def host_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A listener of the grading machine on every address (its 127.0.0.1 and its own address): what reaches it."""
    got: list[bytes] = []
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    got.append(conn.recv(200))
                except OSError:
                    got.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1]), got
    finally:
        stop.set()
        thread.join(5)
        server.close()


PROBE = '''
    """Before serving: try to reach the grading machine at each address given."""
    import http.server, socket, sys
    for host in sys.argv[2:]:
        try:
            with socket.create_connection((host, int(sys.argv[1])), timeout=3) as s:
                s.sendall(b"FROM-GRADED-CONTAINER via " + host.encode())
        except OSError:
            pass
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
'''


@pytest.mark.container
def test_a_graded_container_reaches_nothing_of_the_grading_machine(tmp_path: Path, host_listener) -> None:
    """Red team 3's probe: at start the image connects to a listener on the grading machine's own address, on
    127.0.0.1 and on the engine's host gateways, then serves. Graded (build_and_assess isolated), it becomes
    healthy through the relay and nothing reaches the listener; the same image run as before the fix (a
    published port, slirp4netns) does reach it, so the probe would tell."""
    engine = engine_or_skip()
    if engine.name != "podman":
        pytest.skip("the control run's networking is podman's (slirp4netns)")
    port, got = host_listener
    targets = [*host_addresses(), "127.0.0.1", "10.0.2.2", "10.0.2.3", "172.17.0.1"]
    args = ", ".join(f'"{a}"' for a in [str(port), *targets])
    path = write(tmp_path / "probe", f"""
        FROM {BASE}
        COPY probe.py /app/probe.py
        USER 10001
        EXPOSE 8000
        CMD ["python", "/app/probe.py", {args}]
        """, probe_py=PROBE)
    tag = "autograder-test/egress:1"
    try:
        outcome = build_and_assess(path, lint(path, hadolint=False), tag=tag, isolated=True, assess=False,
                                   log=lambda m: None, keep_image=True, health_timeout=60,
                                   run_args=("--memory=512m", "--pids-limit=64"))
        assert outcome.built and outcome.healthy, outcome.summary()
        assert got == [], got
        if eng.os.geteuid() != 0:
            pytest.skip("the offline relay needs root; the control run needs nothing more")
        control = eng.run_container(engine, tag, 8000, hardened=True)
        try:
            eng.wait_healthy(control, lambda: _http_ok(control.port), 60)
        finally:
            control.stop()
        assert got and all(g.startswith(b"FROM-GRADED-CONTAINER") for g in got), got
    finally:
        eng.remove_image(engine, tag)


def _http_ok(port: int) -> bool:
    from autograder.dockerfile.build import http_ok

    return http_ok(f"http://127.0.0.1:{port}/")


@pytest.mark.container
def test_the_offline_relay_reaches_only_the_container_port(tmp_path: Path) -> None:
    """The relay connects inside the container's namespace: its port answers, and the container's network has
    nothing but loopback (no interface a packet could leave by)."""
    engine = engine_or_skip()
    if eng.os.geteuid() != 0:
        pytest.skip("the offline relay needs root")
    path = write(tmp_path / "tiny", f"""
        FROM {BASE}
        CMD ["python", "-c", "import http.server as s; s.HTTPServer(('127.0.0.1', 8000), s.SimpleHTTPRequestHandler).serve_forever()"]
        """)
    tag = "autograder-test/relay:1"
    eng.build(engine, path.parent, path, tag, isolated=True, network="none")
    try:
        box = eng.run_container(engine, tag, 8000, hardened=True, offline=True)
        try:
            # a service on the container's own loopback is reached too: the relay is inside its namespace
            eng.wait_healthy(box, lambda: _http_ok(box.port), 60)
            links = engine.run("exec", box.name, "cat", "/proc/net/dev").stdout
            assert [ln.split(":")[0].strip() for ln in links.splitlines()[2:]] == ["lo"], links
        finally:
            box.stop()
        assert box.relay is None
    finally:
        eng.remove_image(engine, tag)


# ---- finding 6: a graded build's RUN steps are limited ---------------------------------------------------------

# Small limits, so the attacks stay small on a shared machine; the lab's own (Caps' defaults: 4096 MB, 512
# processes, a 2048 MB file, 4096 MB written) are the same mechanism, and the reference builds under them
# (test_deploy.py).
SMALL = Caps(build_s=300, image_mb=100, memory_mb=256, pids=64, cpus=1.0, disk_mb=300)


@pytest.mark.container
@pytest.mark.parametrize(("run", "limit"), [
    ("for i in $(seq 1 200); do sleep 60 & done; wait", "the limit of 64 processes and threads"),
    ("python -c \"b = b'x' * (600 << 20); print(len(b))\"", "the memory limit of a graded build (256 MB)"),
    ("dd if=/dev/zero of=/big bs=1M count=200", "wrote a file over the limit of a graded build (100 MB a file)"),
    ("for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=/f$i bs=1M count=90; done; sleep 60",
     "wrote over 300 MB (the disk limit of a graded build"),
], ids=["processes", "memory", "file-size", "disk"])
def test_a_graded_build_is_stopped_at_its_limits_naming_the_limit(tmp_path: Path, run: str, limit: str) -> None:
    """Red team 3's RUN step (1004 processes, a 3 GB file) in small: each limit stops the build within seconds
    (the attacks would run for a minute otherwise: `sleep 60`), and the error names it. Without the limits each
    of these builds succeeds."""
    import time

    engine = engine_or_skip()
    if engine.name != "podman" or eng.os.geteuid() != 0:
        pytest.skip("graded builds' cgroup limits need podman run by root")
    path = write(tmp_path / "limits", f"FROM {BASE}\nRUN {run}\nCMD [\"true\"]\n")
    started = time.monotonic()
    outcome = build_and_assess(path, lint(path, hadolint=False), tag="autograder-test/limits:1", isolated=True,
                               assess=False, log=lambda m: None, keep_image=False, caps=SMALL)
    took = time.monotonic() - started
    assert not outcome.built and outcome.error and limit in outcome.error, outcome.error
    assert outcome.error.startswith("the build was stopped: "), outcome.error
    assert took < 50, f"{took:.0f} s: not stopped at the limit"
