"""Red-team findings against `assess --pack` (issue #22), each turned into a fast test: a hand-in's failure of any
kind is its own outcome and the batch goes on; no answer, however it trickles, outlasts its deadline; the latency
lock is never held past its budget; the unscored breakdown never replaces the score."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.assess import assessment, deadlines, handin, probes, targets
from autograder.cli import main

# Each section holds a line of real text under its own heading (handin.BODY_RULE): a heading over `1 ms` is no section.
RUN, API, LATENCY, LIMITS = ("uvicorn app:app --host 127.0.0.1 --port 8000", "POST /predict with the image in the field file",
                             "p95 4 ms measured with autograder assess", "digits only, no batching, no authentication")
README = f"# s\n## How to run\n{RUN}\n## API\n{API}\n## Latency\n{LATENCY}\n## Limitations\n{LIMITS}\n"


def zipped(path: Path, entries: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def run_batch(tmp_path: Path, *packs: Path, extra: tuple[str, ...] = ()) -> tuple[int, dict]:
    out = tmp_path / "result.json"
    code = main(["assess", "--pack", *map(str, packs), "--requests", "20", "--no-breakdown", "--json", str(out),
                 *extra])
    return code, json.loads(out.read_text())


# --- 1. batch-abort-nested-dirs ---------------------------------------------------------------------------------


def test_the_zip_check_counts_folders_like_the_sandbox_copy(tmp_path: Path) -> None:
    """1,001 one-file folders: 2,002 entries once folders count, refused at unpacking, naming the entry."""
    entries = [(f"service/d{i}/f.txt", b"x") for i in range(1001)] + [("service/app.py", b"")]
    pack = zipped(tmp_path / "nested-practical.zip", entries)
    with pytest.raises(handin.HandinProblem) as caught:
        handin.unpack(pack, tmp_path / "out")
    assert caught.value.entry.startswith("service/d") and "more than 2000 entries" in str(caught.value)
    # the same tree as a folder: the copy's count (folders included) refuses it the same way
    with pytest.raises(handin.HandinProblem, match="more than 2000 entries"):
        handin.copy_folder(_tree(tmp_path / "tree", 1001), tmp_path / "copy", [])


def _tree(folder: Path, n: int) -> Path:
    for i in range(n):
        (folder / f"d{i}").mkdir(parents=True)
        (folder / f"d{i}" / "f.txt").write_text("x")
    return folder


def test_any_failure_of_one_hand_in_is_its_outcome_and_the_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit broken in the sandbox copy -> unreadable; an exception -> grader error; a path that is not there ->
    missing; the hand-ins around them are scored and --json is written (exit 1, never 2)."""
    good = no_service_pack(tmp_path / "good-practical.zip", "good")
    copy = zipped(tmp_path / "copy-practical.zip", [("README.md", README.encode()), ("service/app.py", b"")])
    boom = zipped(tmp_path / "boom-practical.zip", [("README.md", README.encode()), ("service/app.py", b"")])

    def copy_folder(src: Path, into: Path, skipped: list[str]) -> None:  # the sandbox's copy of service/
        raise handin.HandinProblem(src, "d804/f.txt", "more than 2000 entries")

    monkeypatch.setattr(handin, "copy_folder", copy_folder)
    real_assess_pack = assessment.assess_pack

    def assess_pack(req: assessment.Request, opts: object) -> object:
        if req.pack is not None and req.pack.name.startswith("boom"):
            raise RuntimeError("a bug in the tool")
        return real_assess_pack(req, opts)

    monkeypatch.setattr(assessment, "assess_pack", assess_pack)
    code, result = run_batch(tmp_path, good, copy, boom, tmp_path / "absent-practical.zip", good)
    assert code == 1
    statuses = [p["status"] for p in result["parts"]]
    assert statuses == ["completed", "unreadable", "grader error", "missing", "completed"]
    unreadable = result["parts"][1]
    assert any("d804/f.txt" in c["message"] for c in unreadable["checks"])


# --- 2. slow-answer-stalls-batch --------------------------------------------------------------------------------


@pytest.fixture
def trickler() -> Iterator[dict[str, int]]:
    """Raw HTTP servers on 127.0.0.1: '1xx' answers `102 Processing` forever, 'body' sends its body a byte at a
    time, each every 0.2 s (the red team's services, 15 times faster)."""
    servers, ports = [], {}
    for mode in ("1xx", "body"):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        servers.append(srv)
        ports[mode] = srv.getsockname()[1]

        def accept(srv: socket.socket = srv, mode: str = mode) -> None:
            while True:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn, mode), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
    yield ports
    for srv in servers:
        srv.close()


def handle(conn: socket.socket, mode: str) -> None:
    try:
        while conn.recv(1 << 16).startswith(b"GET /health"):  # healthy at once, on a keep-alive connection
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        if mode == "body":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(1000):
            conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n" if mode == "1xx" else b" ")
            time.sleep(0.2)
    except OSError:
        pass
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["1xx", "body"])
def test_a_trickling_answer_ends_at_the_whole_requests_deadline(
    mode: str, trickler: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(targets, "REQUEST_TIMEOUT_S", 1.0)
    with targets.new_client() as client:
        start = time.monotonic()
        reply = targets.send(client, "POST", f"http://127.0.0.1:{trickler[mode]}/predict", content=b"x")
    assert time.monotonic() - start < 2.5
    assert reply.status is None and "no complete answer within 1 s" in (reply.error or "")


def test_a_budget_that_ran_out_fails_every_later_request_at_once(trickler: dict[str, int]) -> None:
    with deadlines.budget(0.8, "the assessment's budget ran out") as budget, targets.new_client() as client:
        start = time.monotonic()
        first = targets.send(client, "GET", f"http://127.0.0.1:{trickler['body']}/")
        second = targets.send(client, "GET", f"http://127.0.0.1:{trickler['body']}/")
        assert time.monotonic() - start < 2.0
        assert first.error == second.error == "the assessment's budget ran out"
        assert budget.ran_out and deadlines.ran_out(outermost=True) == "the assessment's budget ran out"
    assert deadlines.ran_out() == ""


def test_an_assessment_past_its_budget_is_stopped_with_what_ran_scored(
    trickler: dict[str, int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from autograder.assess.report import to_outcome

    lock = str(tmp_path / "latency.lock")  # not the machine's: another assessment may be timing there
    monkeypatch.setattr(probes.latency_lock.__wrapped__, "__defaults__", (lock, probes.LOCK_WAIT_S))
    monkeypatch.setattr(targets, "REQUEST_TIMEOUT_S", 0.5)
    monkeypatch.setattr(assessment, "ASSESS_BUDGET_S", 2.0)
    start = time.monotonic()
    result = assessment.assess(assessment.Request(url=f"http://127.0.0.1:{trickler['body']}", breakdown=False))
    assert time.monotonic() - start < 6.0
    assert result.status == "stopped" and "ran out" in result.stopped
    assert result.criteria[0].passed and not any(c.passed for c in result.criteria[1:])
    outcome = to_outcome(result)
    assert outcome.status == "stopped" and outcome.score == 20 and "Stopped" in outcome.notes[-1]


class Trickling:
    """A probes.Target whose predictions go to the trickling server."""

    kind = "contract"

    def __init__(self, port: int) -> None:
        self.base = targets.ContractTarget(f"http://127.0.0.1:{port}")

    def __getattr__(self, name: str) -> object:
        return getattr(self.base, name)


def test_the_latency_lock_is_not_held_past_its_budget_and_a_waiter_says_by_whom(
    tmp_path: Path, trickler: dict[str, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = str(tmp_path / "latency.lock")
    monkeypatch.setattr(probes, "LOCK_PATH", lock)
    monkeypatch.setattr(probes.latency_lock.__wrapped__, "__defaults__", (lock, probes.LOCK_WAIT_S))
    monkeypatch.setattr(probes, "LOCK_HOLD_S", 1.5)
    monkeypatch.setattr(targets, "REQUEST_TIMEOUT_S", 1.0)
    opts = probes.Options(requests=20, quiet_wait_s=0.0)
    done: dict[str, float] = {}

    def hostile() -> None:
        with targets.new_client() as client:
            start = time.monotonic()
            crit = probes.latency(Trickling(trickler["body"]), client, opts, probes.Evidence())
            done["s"], done["passed"] = time.monotonic() - start, crit.passed

    thread = threading.Thread(target=hostile)
    thread.start()
    for _ in range(100):  # until the hostile assessment holds the lock (the holder writes its pid into it)
        if Path(lock).exists() and Path(lock).read_text().startswith(f"{os.getpid()} "):
            break
        time.sleep(0.05)
    with probes.latency_lock(lock, wait_s=10) as waited:
        pass
    thread.join(10)
    assert done["passed"] is False and done["s"] < 4.0
    assert 0.3 < waited < 4.0
    err = capsys.readouterr().err
    assert f"pid {os.getpid()} has held it for" in err


# --- 5. breakdown-stall-grader-error -----------------------------------------------------------------------------


def test_a_failing_breakdown_is_dropped_with_a_note_and_the_score_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    import threading as th

    from autograder.assess import breakdown
    from autograder.assess.latency import SizeResult

    def measure(*args: object, **kwargs: object) -> object:
        raise th.BrokenBarrierError()

    monkeypatch.setattr(breakdown, "measure", measure)
    evidence = probes.Evidence(latency=[SizeResult("28x28", True, [5.0] * 20)])
    req = assessment.Request(model_dir=tiny_model)
    got = assessment.where_latency_goes(targets.ContractTarget("http://127.0.0.1:9"), {}, evidence, req)
    assert not got.measured and "BrokenBarrierError" in got.reason and "the score stands" in got.reason


def test_a_throughput_probe_whose_warm_up_stalls_says_so(trickler: dict[str, int],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from autograder.assess import breakdown, images

    monkeypatch.setattr(targets, "REQUEST_TIMEOUT_S", 1.5)
    target = targets.ContractTarget(f"http://127.0.0.1:{trickler['body']}")
    with pytest.raises(RuntimeError, match="stopped answering during the throughput probe"):
        breakdown.throughput(target, images.make_sample("PNG", "L", 28), 2, 4, barrier_timeout=0.5)


# --- 4. cache-passes-latency ---------------------------------------------------------------------------------------


class CachingModel:
    """The red team's service as a probes.Target: 1.5 s for an image it has not seen, 2 ms for a repeat."""

    kind = "contract"

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.names: list[str] = []
        self.lock = threading.Lock()

    def predict(self, client: object, sample: object) -> targets.Reply:
        import hashlib

        key = hashlib.sha256(sample.data).hexdigest()  # type: ignore[attr-defined]
        with self.lock:
            repeat = key in self.seen
            self.seen[key] = self.seen.get(key, 0) + 1
            self.names.append(sample.filename)  # type: ignore[attr-defined]
        body = {"predictions": [{"label": "0", "confidence": 0.9}]}
        return targets.Reply(200, body, "{}", 2.0 if repeat else 1500.0, None, True)


def test_latency_probes_cannot_be_answered_from_a_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = str(tmp_path / "latency.lock")
    monkeypatch.setattr(probes.latency_lock.__wrapped__, "__defaults__", (lock, probes.LOCK_WAIT_S))
    model = CachingModel()
    evidence = probes.Evidence()
    crit = probes.latency(model, None, probes.Options(requests=20, quiet_wait_s=0.0), evidence)  # type: ignore[arg-type]
    assert not crit.passed  # (the verdict's wording depends on the machine's load: the samples do not)
    assert evidence.latency[0].samples_ms and min(evidence.latency[0].samples_ms) == 1500.0
    assert all(n == 1 for n in model.seen.values())  # warm-up included: never the same image twice
    assert not any("probe" in name or "rgb" in name.lower() for name in model.names) and len(set(model.names)) > 1


def test_every_concurrent_and_throughput_request_is_a_fresh_image() -> None:
    from autograder.assess import breakdown, images

    model = CachingModel()
    got = probes.concurrent(model, 28, clients=3, per_client=4)  # type: ignore[arg-type]
    assert got.requests == 12 and len(model.seen) == 12
    model = CachingModel()
    breakdown.throughput(model, images.make_sample("PNG", "RGB", 28), 2, 6)
    assert len(model.seen) == 8 and all(n == 1 for n in model.seen.values())  # 2 warm-ups + 6 timed


# --- 3. no-model-full-score -------------------------------------------------------------------------------------


class Answers:
    """A probes.Target answering /predict with `answer(sample)`: the course model's own (`honest`), or a fake's."""

    kind = "contract"

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def predict(self, client: object, sample: object) -> targets.Reply:
        body = {"predictions": self.answer(sample)}  # type: ignore[operator]
        return targets.Reply(200, body, json.dumps(body), 1.0, None, True)


def fakes(model: object) -> dict[str, object]:
    import hashlib

    from autograder.assess import agreement

    labels = model.labels  # type: ignore[attr-defined]

    def by_hash(sample: object) -> str:
        return labels[hashlib.sha256(sample.data).digest()[0] % len(labels)]  # type: ignore[attr-defined]

    return {
        "honest": lambda s: agreement.expected(model, s),
        "no model": lambda s: [{"label": by_hash(s), "confidence": 0.6}, {"label": "class-0" if by_hash(s) != "class-0"
                               else "class-1", "confidence": 0.2}],
        "banana": lambda s: [{"label": "banana", "confidence": 0.5}, {"label": "car", "confidence": 0.3}],
        "sum 5": lambda s: [{"label": x, "confidence": 1.0} for x in labels[:5]],
        "ties": lambda s: [{"label": labels[3], "confidence": 0.2}] * 5,
        "one": lambda s: [{"label": "0", "confidence": 1.0}],
    }


@pytest.mark.parametrize("kind", ["honest", "no model", "banana", "sum 5", "ties", "one"])
def test_only_the_served_models_answers_score_requirement_3(kind: str, tiny_model: Path) -> None:
    from autograder.assess import agreement, images

    model, why = agreement.load(tiny_model)
    assert model is not None, why
    target = Answers(fakes(model)[kind])
    samples = images.valid_samples()
    replies = {s.name: target.predict(None, s) for s in samples}
    crit = probes.confidences(target, None, samples, replies, tiny_model)  # type: ignore[arg-type]
    failed = {c.name for c in crit.checks if not c.passed}
    assert len(crit.checks) == 6
    expected = {"honest": set(), "no model": {"the model's answers"}, "banana": {"the model's answers"},
                "sum 5": {"confidences in [0, 1]", "the model's answers"}, "ties": {"schema", "the model's answers"},
                "one": {"the model's answers"}}[kind]
    assert failed == expected, [c.message for c in crit.checks if not c.passed]
    assert crit.passed == (kind == "honest")


def test_without_a_model_folder_the_form_is_still_checked() -> None:
    """--app / --url (a learner's own service and labels): no comparison, but a sum over 1 or a repeated label
    still fails."""
    from autograder.assess import images

    target = Answers(lambda s: [{"label": "dark", "confidence": 0.7}, {"label": "dark", "confidence": 0.6}])
    samples = images.valid_samples()
    replies = {s.name: target.predict(None, s) for s in samples}
    crit = probes.confidences(target, None, samples, replies)  # type: ignore[arg-type]
    assert {c.name for c in crit.checks if not c.passed} == {"schema", "confidences in [0, 1]"}
    assert len(crit.checks) == 5


# --- 6. terminal-escape-injection --------------------------------------------------------------------------------

FORGED = "\x1b[1A\x1b[2K\x1b[32mScore 120/120: PASSED\x1b[0m\x1b[8m"


def test_a_hand_ins_text_reaches_the_terminal_and_report_with_its_control_characters_shown(tmp_path: Path) -> None:
    from autograder.assess import report
    from autograder.assess.sandboxed import SandboxedServer
    from mlinfra.base.output import printable

    readme = README.replace("## How to run", "## How to run \x1b[8m")
    card = {"name": "tiny\n\n## Score 120/120: PASSED\n" + FORGED, "architecture": "x\u202ey", "input_size": 28}
    unpacked = handin.Unpacked(tmp_path, readme, card, ["demo/\x1b[2J\x1b[H.md"], None)
    server = SandboxedServer(None, "app", "app", None)
    try:
        server.log_path.write_bytes(f"started\n{FORGED}\n\x1b[2J\x1b[Hcleared\n".encode())
        log = server.log_tail()
    finally:
        server.close()
    result = report.Assessment({"description": "hand-in x\x1b[8m.zip"}, probes.never_came_up("no app"),
                               server_log=log, handin=handin.pack_checks(unpacked))
    shown = report.terminal(result)
    written = report.markdown(result, tmp_path / "r.md").read_text()
    for text in (shown, written):
        assert "\x1b" not in text and "\u202e" not in text
        assert "\\x1b[8m" in text and "\\x1b[2J" in text
        assert not any(line.lstrip("#| ").startswith("Score 120/120") for line in text.splitlines())
    assert printable(card["name"]) in shown  # the name shown whole, on its own line's field
    assert "## Score 120/120" not in written.replace("\\n## Score", "")


def test_printable_escapes_every_control_character_and_keeps_the_rest() -> None:
    from mlinfra.base.output import printable

    text = "".join(map(chr, range(0xA0))) + "é€\u202e\u2066✓"
    shown = printable(text)
    assert all(ch.isprintable() for ch in shown)
    assert shown.endswith("é€\\u202e\\u2066✓") and "\\x1b" in shown and "\\x9b" in shown and "\\n" in shown
    assert printable("a\nb", keep_newlines=True) == "a\nb"
    # the second red team's variation: Unicode's own line breaks and invisible characters, not only C0/C1
    assert printable("name\u2028## Score 120/120\u2029\u200b\ufeff") == "name\\u2028## Score 120/120\\u2029\\u200b\\ufeff"
    assert printable("a b") == "a b"


# --- 7. same-name-reports-overwrite ------------------------------------------------------------------------------


def manifest_for(student: str, files: dict[str, bytes]) -> bytes:
    import hashlib

    return json.dumps({"student": student, "lab": "practical",
                       "files": {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}}).encode()


def no_service_pack(path: Path, student: str | None) -> Path:
    """A pack with no service (scored without starting anything) and, unless None, a manifest naming `student`."""
    files = {"README.md": README.encode(), "model_card.json": b"{}"}
    entries = list(files.items()) + ([("submission.json", manifest_for(student, files))] if student else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    return zipped(path, entries)


def test_equal_names_in_a_batch_get_their_own_reports_and_lines(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    alice = no_service_pack(tmp_path / "in" / "alice" / "practical.zip", "alice")
    bob = no_service_pack(tmp_path / "in" / "bob" / "practical.zip", "alice")  # bob's upload, alice's manifest
    code, result = run_batch(tmp_path, alice, bob, alice, extra=("--report", str(tmp_path / "out" / "r.md")))
    assert code == 1
    subjects = [p["subject"] for p in result["parts"]]
    assert subjects == ["hand-in alice/practical.zip", "hand-in bob/practical.zip", "hand-in alice/practical.zip #2"]
    reports = sorted(p.name for p in (tmp_path / "out").glob("*.md"))
    assert reports == ["r-alice-practical-2.md", "r-alice-practical.md", "r-bob-practical.md"]
    assert [p["data"]["target"]["pack"] for p in result["parts"]] == [str(alice), str(bob), str(alice)]
    statuses = [p["status"] for p in result["parts"]]
    assert statuses == ["completed", "flagged", "completed"]
    assert any("names the student 'alice'" in n and "bob's" in n for n in result["parts"][1]["notes"])
    assert "bob/practical.zip: flagged" in capsys.readouterr().out


def test_a_missing_or_forged_manifest_is_flagged(tmp_path: Path) -> None:
    from autograder.assess import manifest

    files = {"README.md": README.encode(), "service/app.py": b"print('listed')\n"}
    forged = zipped(tmp_path / "cy-practical.zip", [*files.items(), ("service/extra.py", b""),
                                                    ("submission.json", manifest_for("cy", {**files, "README.md": b"x"}))])
    unpacked = handin.unpack(forged, tmp_path / "a")
    notes = manifest.notes(forged, unpacked, "cy-practical.zip")
    assert any("README.md changed after it was packed" in n for n in notes)
    assert any("'service/extra.py'" in n and "not in submission.json" in n for n in notes)
    bare = zipped(tmp_path / "dee-practical.zip", list(files.items()))
    assert "no submission.json" in manifest.notes(bare, handin.unpack(bare, tmp_path / "b"), "dee")[0]
    assert manifest.notes(forged.with_name("x"), unpacked, "x") != []


def test_of_an_entry_given_twice_the_copy_the_manifest_lists_is_the_one_that_runs(tmp_path: Path) -> None:
    from autograder.assess import manifest

    listed, other = b"print('the packed one')\n", b"print('slipped in')\n"
    pack = tmp_path / "eve-practical.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        zipped(pack, [("service/app.py", listed), ("submission.json", manifest_for("eve", {"service/app.py": listed})),
                      ("service/app.py", other)])
    unpacked = handin.unpack(pack, tmp_path / "a")
    assert (tmp_path / "a" / "service" / "app.py").read_bytes() == listed
    assert any("in the archive twice" in n for n in manifest.notes(pack, unpacked, "eve-practical.zip"))


# --- Second red team (2026-12-06) ---------------------------------------------------------------------------------
# --- 2. grader-code-readable-in-sandbox ---------------------------------------------------------------------------

ROOT = Path(__file__).parents[2]

LOOKS_AROUND = '''
import getpass, json, os, sys
seen = {"user": getpass.getuser(), "passwd": open("/etc/passwd").read(), "group": open("/etc/group").read(),
        "hosts": open("/etc/hosts").read(), "repo": sorted(os.listdir(%(root)r)) if os.path.isdir(%(root)r) else [],
        "grader": os.path.exists(%(grader)r)}
try:
    import autograder
    seen["import autograder"] = str(autograder.__path__)
except ImportError:
    seen["import autograder"] = "blocked"
import mlinfra.contract  # what a service needs is there
for key, value in seen.items():  # a line each: the log shows 400 characters a line
    print("SEEN " + json.dumps([key, value]), flush=True)
async def app(scope, receive, send):
    pass
'''


@pytest.mark.skipif(bool(__import__("autograder.grading.sandbox").grading.sandbox.bwrap_works()),
                    reason="needs bubblewrap")
def test_the_apps_sandbox_shows_no_grader_code_and_no_host_accounts(tmp_path: Path) -> None:
    """The app sees mlinfra, the venv and its own folder: not autograder/ (the probes' order, the other graders),
    no other folder of the repository, and a passwd/group/hosts of its own instead of the host's."""
    import pwd

    from autograder.assess.sandboxed import SandboxedServer
    from autograder.grading.sandbox import course_readonly_paths

    service = tmp_path / "service"
    service.mkdir()
    (service / "app.py").write_text(LOOKS_AROUND % {"root": str(ROOT), "grader": str(ROOT / "autograder")})
    with SandboxedServer(service, "app", "app", None) as server:
        server.start()
        for _ in range(300):
            log = server.log_tail(40)
            if any(line.startswith("SEEN ") for line in log) or server.exit_code() is not None:
                break
            time.sleep(0.05)
        for _ in range(100):  # the launcher (run without autograder/) gets uvicorn serving
            if any("Application startup complete" in line for line in server.log_tail(40)):
                break
            time.sleep(0.05)
        log = server.log_tail(40)
    seen = dict(json.loads(line[5:]) for line in log if line.startswith("SEEN "))
    assert len(seen) == 7, log
    assert seen["import autograder"] == "blocked" and seen["grader"] is False
    needed = {Path(p).relative_to(ROOT).parts[0] for p in course_readonly_paths(grader_code=False)
              if Path(p).is_relative_to(ROOT)}
    assert set(seen["repo"]) <= needed and "autograder" not in needed, seen["repo"]
    assert seen["user"] == "sandbox"
    users = {line.split(":")[0] for line in seen["passwd"].splitlines()}
    assert users <= {"root", "sandbox", "nobody"}, users
    host_only = {p.pw_name for p in pwd.getpwall()} - {"root", "nobody"}
    assert not users & host_only
    assert {line.split(":")[0] for line in seen["group"].splitlines()} <= {"root", "sandbox", "nogroup"}
    assert all("localhost" in line for line in seen["hosts"].splitlines() if line.strip())
    assert any("Application startup complete" in line for line in log), log


def test_a_graded_kernel_still_sees_the_grading_package() -> None:
    """The app sandbox's narrower view is its own: a kernel's sandbox (the default) keeps autograder/."""
    import autograder
    from autograder.grading.sandbox import course_readonly_paths
    from autograder.grading.spec import Spec

    package = str(Path(autograder.__file__).resolve().parent)
    assert package in course_readonly_paths() and package not in course_readonly_paths(grader_code=False)
    assert Spec(work=Path("w"), conn=Path("c")).grader_code is True


# --- 3. forged-manifest-copy -------------------------------------------------------------------------------------

LONG_README = README + "".join(f"\nMeasured run {i}: p50 {i + 3} ms, p95 {i + 5} ms on the lab machine.\n"
                               for i in range(10))


def service_pack(path: Path, student: str, files: dict[str, bytes], readme: str = README) -> Path:
    entries = {**{f"service/{k}": v for k, v in files.items()}, "README.md": readme.encode(),
               "model_card.json": b"{}"}
    path.parent.mkdir(parents=True, exist_ok=True)
    return zipped(path, [*entries.items(), ("submission.json", manifest_for(student, entries))])


def disguised(source: str) -> dict[str, bytes]:
    """A copy of `source` as a copier hides it: the code moved into a module of another name (app.py a one-line
    import), comments added, re-indented and re-spaced, other quotes, a junk statement after every import, a junk
    file beside it."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = (len(line) - len(stripped)) // 4
        if stripped.startswith("#"):
            continue  # their comments out, ours in
        if stripped.startswith(("import ", "from ")) and not stripped.endswith("("):
            stripped += "; _ = 0"
        if stripped.count('"') == 2 and "'" not in stripped and "f\"" not in stripped:
            stripped = stripped.replace('"', "'")
        lines.append("  " * indent + stripped.replace(" = ", "=") + "   # my own work")
    return {"app.py": b"from server_impl import app  # noqa\n", "server_impl.py": "\n".join(lines).encode(),
            "notes.txt": b"\n".join(f"todo item number {i} for later".encode() for i in range(30))}


def test_a_copied_hand_in_with_a_rewritten_manifest_is_flagged_beside_the_original(tmp_path: Path) -> None:
    from autograder.assess import cli

    reference = (ROOT / "solutions" / "lab07-api" / "app.py").read_text()
    original = service_pack(tmp_path / "classmate-practical.zip", "classmate", {"app.py": reference.encode()})
    copy = service_pack(tmp_path / "forged-practical.zip", "forged", disguised(reference))
    own = service_pack(tmp_path / "dana-practical.zip", "dana",
                       {"app.py": (ROOT / "labs" / "lab07-api" / "app.py").read_bytes()})
    packs = [original, copy, own, original]
    labels = cli.pack_labels(packs)
    notes = cli.alike_in_batch(packs, labels)
    assert any("forged-practical.zip's hand-in" in n and "service/" in n for n in notes[0]), notes[0]
    assert any("classmate-practical.zip's hand-in" in n for n in notes[1]), notes[1]
    assert notes[2] == []  # the course's starter alone is nobody's copy
    assert not any("classmate-practical.zip's" in n for n in notes[0] + notes[3])  # the same pack given twice


def test_a_batch_flags_each_of_two_identical_readmes_and_still_scores_them(tmp_path: Path) -> None:
    alice = no_service_pack(tmp_path / "alice-practical.zip", "alice")
    bob = zipped(tmp_path / "bob-practical.zip", [("README.md", LONG_README.encode()), ("model_card.json", b"{}"),
                                                  ("submission.json", manifest_for("bob", {}))])
    cy = zipped(tmp_path / "cy-practical.zip", [("README.md", LONG_README.replace("\n", "\n\n").encode()),
                                                ("model_card.json", b"{}"),
                                                ("submission.json", manifest_for("cy", {}))])
    code, result = run_batch(tmp_path, alice, bob, cy)
    assert code == 1
    parts = {p["subject"]: p for p in result["parts"]}
    assert parts["hand-in alice-practical.zip"]["status"] == "completed"  # a short README alike tells nothing
    for me, other in (("bob", "cy"), ("cy", "bob")):
        part = parts[f"hand-in {me}-practical.zip"]
        assert part["status"] == "flagged" and part["data"]["score"] == 20
        assert any(f"README identical to {other}-practical.zip's hand-in" in n for n in part["notes"]), part["notes"]


# --- 4. breakdown-stall-holds-batch ------------------------------------------------------------------------------


@pytest.fixture
def stalls_under_load() -> Iterator[int]:
    """A service that answers /predict at once while it has one connection, and trickles a byte every 0.2 s once
    several clients are connected (what the breakdown's 4 and 8 clients are; the scored probes use one)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(32)
    open_now = [0]
    lock = threading.Lock()
    body = json.dumps({"predictions": [{"label": "class-0", "confidence": 0.9}]}).encode()

    def read_request(conn: socket.socket, buf: bytes) -> tuple[bytes, bytes] | None:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(rest) < length:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return None
            rest += chunk
        return head, rest[length:]

    def serve(conn: socket.socket) -> None:
        with lock:
            open_now[0] += 1
        buf = b""
        try:
            while (got := read_request(conn, buf)) is not None:
                _, buf = got
                with lock:
                    crowded = open_now[0] > 1
                if not crowded:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(1000):
                    conn.sendall(b" ")
                    time.sleep(0.2)
        except OSError:
            pass
        finally:
            with lock:
                open_now[0] -= 1
            conn.close()

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


def test_a_service_stalling_under_the_breakdowns_load_costs_it_seconds_not_minutes(
    stalls_under_load: int, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autograder.assess.latency import SizeResult

    lock = str(tmp_path / "latency.lock")
    monkeypatch.setattr(probes.latency_lock.__wrapped__, "__defaults__", (lock, probes.LOCK_WAIT_S))
    # The lock's own hold limit as it was before the breakdown had a budget of its own, shortened so that this
    # test ends (in 45 s, failing) where a breakdown without one would hold the batch.
    monkeypatch.setattr(probes, "LOCK_HOLD_S", 45.0)
    monkeypatch.setattr(assessment, "BREAKDOWN_REQUEST_S", 2.0, raising=False)  # 10 s in use: the test's time
    evidence = probes.Evidence(latency=[SizeResult("28x28", True, [5.0] * 20)])
    target = targets.ContractTarget(f"http://127.0.0.1:{stalls_under_load}")
    start = time.monotonic()
    got = assessment.where_latency_goes(target, {}, evidence, assessment.Request(model_dir=tiny_model))
    took = time.monotonic() - start
    assert took < 15, took
    assert got.throughput.get(1, 0) > 0  # one client: answered at once
    assert not got.measured and "stopped answering under its load" in got.reason and "the score stands" in got.reason
    assert "within 2 s" in got.reason


def test_the_breakdowns_budget_is_a_minute_and_its_requests_are_short() -> None:
    assert assessment.BREAKDOWN_BUDGET_S <= 60 and assessment.BREAKDOWN_REQUEST_S <= 10


# --- 6. readme-sections-in-html-comment --------------------------------------------------------------------------

SHOWN = "# My service\n\nNothing here yet.\n"
FOUR = README.removeprefix("# s\n")
HIDDEN_READMES = {
    "html comment": SHOWN + "<!--\n" + FOUR + "-->\n",
    "the red team's": "# My service\n<!--\n## How to run\nx\n## API\nx\n## Latency\n1 ms\n## Limitations\nx\n-->\n"
                      "Nothing here yet.\n",
    "comment never closed": SHOWN + "<!--\n" + FOUR,
    "fenced code": SHOWN + "```markdown\n" + FOUR + "```\n",
    "tilde fence": SHOWN + "~~~\n" + FOUR + "~~~\n",
    "indented code": SHOWN + "\n" + "".join(f"    {line}\n" for line in FOUR.splitlines()),
    "div hidden": SHOWN + "<div hidden>\n\n" + FOUR + "\n</div>\n",
    "display none": SHOWN + '<div style="display:none">\n\n' + FOUR + "\n</div>\n",
    "template": SHOWN + "<template>\n\n" + FOUR + "\n</template>\n",
    "invisible headings": SHOWN + "".join(f"## \u200b\u2063\n{body}\n" for body in FOUR.splitlines()[1::2]),
    "headings in inline comments": SHOWN + FOUR.replace("## ", "## <!-- ").replace("\nuv", " -->\nuv")
    .replace("API\n", "API -->\n").replace("Latency\n", "Latency -->\n").replace("Limitations\n", "Limitations -->\n"),
}
SHOWN_READMES = {
    "plain": SHOWN + FOUR,
    "in details": SHOWN + "<details>\n<summary>More</summary>\n\n" + FOUR + "\n</details>\n",
    "setext headings": SHOWN + f"How to run\n----------\n{RUN}\n\nAPI\n---\n{API}\n\nLatency\n-------\n{LATENCY}\n\n"
                       f"Limitations\n-----------\n{LIMITS}\n",
    "zero-width inside a word": SHOWN + FOUR.replace("API", "A\u200bPI"),
}


@pytest.mark.parametrize("kind", list(HIDDEN_READMES))
def test_readme_sections_a_reader_never_sees_do_not_score(kind: str) -> None:
    checks = handin.check_readme(HIDDEN_READMES[kind])
    assert [c.points for c in checks] == [0, 0, 0, 0], [(c.name, c.message) for c in checks]


@pytest.mark.parametrize("kind", list(SHOWN_READMES))
def test_readme_sections_a_reader_sees_score(kind: str) -> None:
    checks = handin.check_readme(SHOWN_READMES[kind])
    assert [c.points for c in checks] == [handin.SECTION_POINTS] * 4, [(c.name, c.message) for c in checks]


def test_a_section_whose_body_is_hidden_is_empty() -> None:
    readme = SHOWN + FOUR.replace(LIMITS, f"<!-- {LIMITS} -->").replace(LATENCY, "\u200b")
    failed = {c.name: c.message for c in handin.check_readme(readme) if not c.points}
    assert set(failed) == {"README: limitations", "README: latency measured"}
    assert "is empty" in failed["README: limitations"] and "is empty" in failed["README: latency measured"]
