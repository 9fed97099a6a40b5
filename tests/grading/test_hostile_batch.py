"""Issue #11 end to end: every hostile sample in tests/samples/_hostile, graded in ONE real sandboxed batch next to
honest students, gets exactly its stated status, reason and points; the honest students' grades do not move; and
nothing the hostile code did survives the batch (no forged output, no escaped file, no process left).

The batch runs under bubblewrap with every hostile sample, and again in a container with those whose attack meets
the sandbox itself plus one sample of every other attack class (IN_CONTAINER says which and why): a second grading
of a trick the trusted side catches the same way whatever runs the kernel tests no more of the container."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from graded_samples import (
    HOSTILE_LAB,
    build_hostile,
    build_submission,
    lab_source,
    load_hostile,
    load_samples,
)

from autograder.grading import cgroups, containers
from autograder.grading.sandbox import batch_prefix, bwrap_works

# tests/ is on sys.path already: tests/conftest.py sits there (pytest puts a conftest's folder first)
ROOT = Path(__file__).resolve().parents[2]

# The batch runs once per sandbox kind: the grades must not depend on which sandbox ran the kernels.
pytestmark = [pytest.mark.slow]
KINDS = ("bwrap", "container")
HONEST = ["reference", "partly-done", "blank"]
HOSTILE = load_hostile()
# Under bubblewrap (the sandbox a Linux grader uses) every hostile sample is graded. In a container, the samples
# whose attack meets the sandbox itself (its file system, processes, limits, the course library's path inside),
# and one sample of every other attack class, each caught the same way whatever runs the kernel:
# - intake (archives, manifests, links, files over the limit, a student handing in twice): decided by the trusted
#   side before any sandbox exists; those that never reach a kernel cost nothing and are all kept;
# - a kernel that forges its replies (lying-kernel) or rewires IPython's execution (replaces-do-execute), and
#   values that compare equal to anything (always-equal-values): the tamper guard and the trusted side's own
#   comparisons, the same code in both kinds;
# - hidden tests quoted back (leaks-hidden-tests): found in the kernel's messages on the trusted side.
# The others of those classes are variations of the same trick; grading them twice costs a container start and a
# kernel each and tests no more of the container.
IN_CONTAINER = {
    # the attack meets the sandbox
    "forge-result-and-kill-worker", "sabotage-classmates", "shadows-the-course-library", "fills-the-connection-folder",
    "memory-in-children", "floods-output",
    # one of each other class
    "lying-kernel", "replaces-do-execute", "always-equal-values", "leaks-hidden-tests",
    # intake that never reaches a kernel (free)
    "dangling-symlink", "symlink-loop", "notebook-deflate64", "notebook-encrypted", "notebook-links-to-solutions",
}
assert {s.name for s in HOSTILE} >= IN_CONTAINER, sorted(IN_CONTAINER - {s.name for s in HOSTILE})
CASES = [(kind, s) for kind in KINDS for s in HOSTILE if kind == "bwrap" or s.name in IN_CONTAINER]
# The hidden tests of lab01 (solution source only): no feedback page may contain them.
HIDDEN_MARKERS = ['"/opt/conda/envs/course", "/opt/conda"', "### BEGIN HIDDEN TESTS", "minimum=(3, 13)",
                  "check_python((4, 0, 0))", "Y2hlY2tfcHl0aG9u"]  # the last: "check_python" in base64


@pytest.fixture(scope="module")
def batches() -> dict[str, dict[str, Any]]:
    """Each kind's batch, graded once for the whole module (the sample test takes its kind as a parameter, so it
    cannot share a parametrized fixture's instance)."""
    return {}


@pytest.fixture(scope="module", params=KINDS)
def batch(request: pytest.FixtureRequest, batches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _graded(request, batches, request.param)


def _graded(request: pytest.FixtureRequest, batches: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
    if kind not in batches:
        batches[kind] = _grade(request, kind)
    return batches[kind]


def _grade(request: pytest.FixtureRequest, kind: str) -> dict[str, Any]:
    from autograder.grading.engine import grade_class

    tmp_path_factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    why = bwrap_works() if kind == "bwrap" else request.getfixturevalue("container_engine")
    if why:
        pytest.skip(f"no {kind} sandbox here: {why}")

    lab = lab_source(HOSTILE_LAB)
    root = tmp_path_factory.mktemp(f"hostile-{kind}")
    subs = root / "submissions"
    samples = {s.name: s for s in load_samples(HOSTILE_LAB)}
    build_submission(None, lab, subs / "reference")
    for name in HONEST[1:]:
        build_submission(samples[name], lab, subs / name)
    graded_as = {s.name: build_hostile(s, lab, subs) for s in HOSTILE if kind == "bwrap" or s.name in IN_CONTAINER}
    started = time.monotonic()
    result = grade_class(lab, subs, root / "out", workers=2, sandbox=kind)
    seconds = time.monotonic() - started
    grades = (root / "out" / "grades.csv").read_text()
    time.sleep(4)  # the detached rewriter in sabotage-classmates would strike 3 s after its cell ran
    return {"root": root, "result": result, "graded_as": graded_as, "grades": grades, "samples": samples,
            "seconds": seconds, "kind": kind}


def _student(batch: dict[str, Any], name: str):
    parts = {p.subject: p for p in batch["result"].parts}
    assert name in parts, f"{name} missing from the batch; graded: {sorted(parts)}"
    return parts[name]


def _reason(outcome) -> str:
    return "; ".join([*outcome.data.get("flags", []), *outcome.notes])


@pytest.mark.parametrize(("kind", "sample"), CASES, ids=[f"{kind}-{s.name}" for kind, s in CASES])
def test_hostile_sample_gets_exactly_its_grade(request: pytest.FixtureRequest, batches: dict[str, dict[str, Any]],
                                               kind: str, sample) -> None:
    batch = _graded(request, batches, kind)
    got = _student(batch, batch["graded_as"][sample.name])
    tests = batch["result"].data["tests"]
    expected = sample.expected_points(tests)
    points = {c.name: c.points for c in got.checks if c.name in tests}
    assert points == expected, f"{sample.name}: {points} != {expected} ({got.status}: {_reason(got)})"
    assert got.status == sample.status, f"{sample.name}: status {got.status} ({_reason(got)})"
    assert sample.reason.lower() in f"{got.status} {_reason(got)}".lower(), _reason(got)


def test_a_limit_reached_is_named(batch: dict[str, Any]) -> None:
    """The memory cgroup stopped the children of memory-in-children: its outcome says so (bubblewrap sandboxes
    report the limits their cgroups recorded)."""
    if batch["kind"] != "bwrap" or cgroups.hierarchy("memory")[0] is None:
        pytest.skip("limits are read from a bubblewrap sandbox's cgroups")
    got = _student(batch, batch["graded_as"]["memory-in-children"])
    assert "memory limit" in _reason(got), _reason(got)


def test_honest_students_do_not_move(batch: dict[str, Any]) -> None:
    tests = batch["result"].data["tests"]
    for name in HONEST:
        got = _student(batch, name)
        expected = dict(tests) if name == "reference" else batch["samples"][name].expected_points(tests)
        assert {c.name: c.points for c in got.checks} == expected, (name, _reason(got))
        assert got.status == "completed" and not got.data.get("flags"), (name, got.status, _reason(got))


def test_outputs_are_the_graders_own(batch: dict[str, Any]) -> None:
    out = batch["root"] / "out"
    assert (out / "grades.csv").read_text() == batch["grades"], "grades.csv changed after the batch ended"
    rows = [line.split(",")[0] for line in batch["grades"].splitlines()[1:]]
    assert sorted(rows) == sorted({*HONEST, *batch["graded_as"].values()}), "every student listed, thieves too"
    assert "forged" not in batch["grades"] and "sabotaged" not in batch["grades"]
    for marker in HIDDEN_MARKERS:
        assert marker not in batch["grades"], f"grades.csv shows hidden-test source ({marker})"
        assert marker not in (out / "summary.json").read_text(), f"summary.json shows hidden-test source ({marker})"
    for page in (out / "feedback").glob("*.html"):
        text = page.read_text()
        assert "sabotaged" not in text, f"{page.name} was rewritten by a student"
        for marker in HIDDEN_MARKERS:
            assert marker not in text, f"{page.name} shows hidden-test source"
    assert not list(out.rglob("result.json")), "a forged result file was left in the outputs"
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}", "mlinfra-workbook") as gb:  # the parent's one gradebook
        for part in batch["result"].parts:
            assert gb.find_submission(HOSTILE_LAB, part.subject).score == part.score, part.subject


def test_nothing_escaped_and_no_process_left(batch: dict[str, Any]) -> None:
    assert not (ROOT / "PWNED-hostile-sample").exists(), "a submission wrote into the repository"
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / "00-sabotage.py").exists()
    left = [p.info for p in psutil.process_iter(["pid", "cmdline"])
            if p.info["cmdline"] and ("4242" in p.info["cmdline"] or
                                      any("hostile" in part and "grades.csv" in part for part in p.info["cmdline"]))]
    assert not left, f"student processes outlived the batch: {left}"
    prefix = batch_prefix((batch["root"] / "out" / "work").resolve() / "sandboxes")  # this batch's, not a parallel test's
    groups = cgroups.existing(prefix)
    assert not groups, f"pids cgroups outlived the batch: {groups}"
    if batch["kind"] == "container":
        mine = [n for n in containers.running() if n.startswith(prefix)]
        assert not mine, f"sandbox containers outlived the batch: {mine}"
    assert not (batch["root"] / "out" / "work" / "sandboxes").exists(), "work folders removed (no --keep-work)"


def test_each_kernel_serves_one_student(batch: dict[str, Any]) -> None:
    """The warm pool's kernel ids against the students: every kernel served one student, never two."""
    owners: dict[str, str] = {}
    for part in batch["result"].parts:
        for kernel in part.data.get("kernels", []):
            assert kernel not in owners, f"kernel {kernel} served {owners[kernel]} and {part.subject}"
            owners[kernel] = part.subject
    graded = [p for p in batch["result"].parts if p.status in ("completed", "flagged")]
    assert all(len(p.data.get("kernels", [])) == 1 for p in graded), [(p.subject, p.data.get("kernels"))
                                                                      for p in graded]
    warm = [p.subject for p in graded if p.data.get("warm")]
    assert warm, "the workers started kernels ahead (the warm pool), and students got them"
    print(f"\nhostile batch ({batch['kind']}): {len(batch['result'].parts)} students in {batch['seconds']:.1f} s; "
          f"{len(warm)} of {len(graded)} graded on a kernel started ahead")
