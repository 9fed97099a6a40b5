"""lab06's graded builds reach nothing and leave nothing: an ADD of a URL is a finding and is never built; a graded
build runs where nothing is reachable even past the lint; the build time, the image size and the container's life
are capped and reported when hit; everything a student's check made is removed (unless it is kept)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

from autograder import container_engine as eng
from autograder.dockerfile.build import Caps, build_and_assess
from autograder.dockerfile.rules import REMOTE_RULE, lint

ROOT = Path(__file__).resolve().parents[2]
LABEL = "autograder-build-isolation-test"
BASE = "python:3.11-slim-bookworm"
SLOW_BASE = "localhost/autograder-build-isolation-slow:1"  # the course's base image (scripts/container-engine.sh makes it offline)
# A service that answers 200 on any path: healthy at once, for the checks that need a running container.
TINY_SERVER = ('CMD ["python", "-c", "import http.server as s; s.HTTPServer((\'0.0.0.0\', 8000), '
               'type(\'H\', (s.BaseHTTPRequestHandler,), {\'do_GET\': lambda self: (self.send_response(200), '
               'self.end_headers())})).serve_forever()"]')


class Grader(http.server.BaseHTTPRequestHandler):
    """A service of the grading machine on its 127.0.0.1: it counts every request it gets."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Grader.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"grader secret")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def grader_service() -> Iterator[int]:
    Grader.hits = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Grader)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def dockerfile(folder: Path, *lines: str, base: str = BASE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".dockerignore").write_text(".git\n")
    path = folder / "Dockerfile"
    # The label marks every image this test's builds make (the final one and any layer after it), so what they
    # leave is told apart from images other tests build at the same time.
    path.write_text("\n".join([f"FROM {base}", *lines[:1], f"LABEL {LABEL}=1", *lines[1:]]) + "\n")
    return path


@pytest.mark.parametrize("line", ["ADD http://127.0.0.1:9/x /x", 'ADD ["https://example.org/a", "/a"]',
                                  "ADD $URL /x", "ADD git@github.com:a/b.git /b", "ONBUILD ADD ftp://h/x /x",
                                  "ADD --checksum=sha256:00 data /d"])
def test_remote_sources_are_a_finding(tmp_path: Path, line: str) -> None:
    result = lint(dockerfile(tmp_path, line), hadolint=False)
    (finding,) = [f for f in result.findings if f.rule == REMOTE_RULE]
    assert finding.line == 2 and finding.failing and "COPY" in finding.fix
    assert not [f for f in lint(dockerfile(tmp_path / "ok", "ADD local.txt /x"), hadolint=False).findings
                if f.rule == REMOTE_RULE]


def engine_or_skip() -> eng.Engine:
    from autograder.errors import UsageError

    try:
        return eng.detect(ROOT)
    except UsageError as exc:
        pytest.skip(f"no container engine: {exc}")


def images(engine: eng.Engine) -> set[str]:
    """The images this test's builds made that are still there."""
    return set(engine.run("images", "-a", "-q", "--no-trunc", "--filter", f"label={LABEL}=1",
                          check=False).stdout.split())


@pytest.mark.container
def test_a_graded_build_with_a_remote_add_is_refused_and_reaches_nothing(tmp_path: Path,
                                                                         grader_service: int) -> None:
    engine = engine_or_skip()
    path = dockerfile(tmp_path, f"ADD http://127.0.0.1:{grader_service}/secret /secret", TINY_SERVER)
    before = images(engine)
    outcome = build_and_assess(path, lint(path, hadolint=False), tag="autograder-test/remote:1", isolated=True,
                               assess=False, log=lambda m: None, keep_image=False)
    assert not outcome.built and "not built: line 2" in (outcome.error or "") and "COPY" in (outcome.error or "")
    assert Grader.hits == [] and images(engine) == before


@pytest.mark.container
def test_the_builder_itself_reaches_nothing_past_the_lint(tmp_path: Path, grader_service: int) -> None:
    """Design for the class: even an ADD the lint did not see (here, built straight through engine.build) finds no
    network, so the grading machine's own services stay out of reach."""
    engine = engine_or_skip()
    if engine.name != "podman" or not eng.unreachable_prefix(engine):
        pytest.skip("the unreachable builder needs podman run by root (Docker builds in its daemon)")
    path = dockerfile(tmp_path, f"ADD http://127.0.0.1:{grader_service}/secret /secret")
    with pytest.raises(eng.EngineError):
        eng.build(engine, tmp_path, path, "autograder-test/past-lint:1", isolated=True, network="none")
    assert Grader.hits == []
    eng.remove_image(engine, "autograder-test/past-lint:1")


@pytest.mark.container
def test_build_time_and_image_size_are_capped_and_reported(tmp_path: Path) -> None:
    engine = engine_or_skip()
    before = images(engine)
    # The builder names its working container after the base: a base of this test's own name (a second tag of
    # the course's base: no storage) tells its working containers from builds running beside it.
    engine.run("tag", BASE, SLOW_BASE)
    try:
        slow = dockerfile(tmp_path / "slow", "RUN sleep 31337", base=SLOW_BASE)
        outcome = build_and_assess(slow, lint(slow, hadolint=False), tag="autograder-test/slow:1", isolated=True,
                                   assess=False, log=lambda m: None, keep_image=False, caps=Caps(build_s=5),
                                   bases=(BASE, SLOW_BASE))
        assert not outcome.built and "took over 5 s" in (outcome.error or "")
        # Stopped means stopped: no RUN step still running (reparented away), no working container of it left.
        assert not [p.pid for p in psutil.process_iter(["cmdline"]) if "31337" in " ".join(p.info["cmdline"] or [])]
        names = engine.run("ps", "-a", "--external", "--format", "{{.Names}}", check=False).stdout.split()
        assert not [n for n in names if n.startswith("autograder-build-isolation-slow")], names
    finally:
        engine.run("rmi", SLOW_BASE, check=False)  # the tag only: the base image stays
    big = dockerfile(tmp_path / "big", TINY_SERVER)
    outcome = build_and_assess(big, lint(big, hadolint=False), tag="autograder-test/big:1", isolated=True,
                               assess=False, log=lambda m: None, keep_image=False, caps=Caps(image_mb=50))
    assert not outcome.built and "over the 50 MB limit" in (outcome.error or "")
    assert images(engine) == before


@pytest.mark.container
def test_everything_a_check_made_is_removed_unless_kept(tmp_path: Path) -> None:
    engine = engine_or_skip()
    path = dockerfile(tmp_path, "EXPOSE 8000", TINY_SERVER)
    before = images(engine)
    outcome = build_and_assess(path, lint(path, hadolint=False), tag="autograder-test/tiny:1", isolated=True,
                               assess=False, log=lambda m: None, keep_image=False, health_timeout=60)
    assert outcome.built and outcome.healthy, outcome.error
    assert images(engine) == before
    assert engine.run("ps", "-a", "-q", "--filter", "name=autograder-", check=False).stdout.strip() == ""
    kept = build_and_assess(path, lint(path, hadolint=False), tag="autograder-test/tiny:1", isolated=True,
                            assess=False, log=lambda m: None, keep_image=True, health_timeout=60)
    try:
        assert kept.built and images(engine) - before
    finally:
        eng.remove_image(engine, "autograder-test/tiny:1")
    assert images(engine) == before
