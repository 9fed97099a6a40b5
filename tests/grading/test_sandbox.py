"""The sandbox itself, probed with plain Python processes inside it: under bubblewrap (~0.1 s a test) and in a
container (podman or Docker, ~0.5 s a test). Each test runs for both kinds; a kind that cannot run here skips
with the reason. The container kind gets its engine from scripts/container-engine.sh (installs podman where
there is no engine: root, Debian/Ubuntu), as the Docker lab's tests do."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autograder.errors import UsageError
from autograder.grading import cgroups, containers, sandbox
from autograder.grading.sandbox import Limits, Spec, bwrap_works, release_connection, run_in_sandbox, teardown

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("bwrap", "container")


@pytest.fixture(params=KINDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spec]:
    why = bwrap_works() if request.param == "bwrap" else request.getfixturevalue("container_engine")
    if why:
        pytest.skip(f"no {request.param} sandbox here: {why}")
    spec = Spec(work=tmp_path / "box" / "home", conn=tmp_path / "box" / "conn", kind=request.param,
                limits=Limits(memory_mb=1024, cpu_seconds=20, file_mb=8, processes=48))
    yield spec
    # A root grader's connection folder is a tmpfs of its own, released with the kernel that used it (as the
    # grading worker does), or it would stay mounted under pytest's temporary folders.
    teardown(spec)
    release_connection(spec.conn)


def probe(spec: Spec, code: str, *args: str) -> dict:
    spec.work.mkdir(parents=True, exist_ok=True)
    spec.conn.mkdir(parents=True, exist_ok=True)
    result = run_in_sandbox([sys.executable, "-c", textwrap.dedent(code), *args], spec)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_network_but_loopback(spec: Spec) -> None:
    with socket.socket() as server:  # a port open on the host's loopback: unreachable from inside
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        got = probe(spec, """
            import json, socket, sys
            out = {}
            try:
                socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2); out["host"] = "reached"
            except OSError as exc:
                out["host"] = type(exc).__name__
            try:
                socket.create_connection(("192.0.2.1", 80), timeout=2); out["outside"] = "reached"
            except OSError as exc:
                out["outside"] = str(exc)
            s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
            c = socket.create_connection(s.getsockname(), timeout=2); out["loopback"] = "ok"
            print(json.dumps(out))
        """, str(port))
    assert got["host"] != "reached" and got["outside"] != "reached"
    assert "unreachable" in got["outside"].lower()
    assert got["loopback"] == "ok", "loopback is up inside (a kernel hangs without it)"


def test_sees_neither_solutions_nor_repo_nor_home(spec: Spec, tmp_path: Path) -> None:
    secret = tmp_path / "box" / "gradebook.db"  # beside the work folder, as the course folders are
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("grades")
    got = probe(spec, """
        import json, os, sys
        paths = sys.argv[1:]
        print(json.dumps({p: os.path.exists(p) for p in paths}))
    """, str(ROOT / "solutions"), str(ROOT / "solutions" / "lab01-environment" / "lab01-environment.ipynb"),
        str(ROOT / "README.md"), str(ROOT / "tests"), str(secret), str(Path.home() / ".ipython"), "/root/.ssh",
        str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "mlinfra" / "__init__.py"))
    visible = {p for p, seen in got.items() if seen}
    assert visible == {str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "mlinfra" / "__init__.py")}, visible


def test_grader_invisible_and_unkillable(spec: Spec) -> None:
    got = probe(spec, """
        import json, os, sys
        host_pid = int(sys.argv[1])
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        try:
            os.kill(host_pid, 9); killed = "yes"
        except OSError as exc:
            killed = type(exc).__name__
        for pid in pids:
            if pid != os.getpid():
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        print(json.dumps({"pids": pids, "killed": killed, "me": os.getpid()}))
    """, str(os.getpid()))
    assert len(got["pids"]) <= 3, f"the sandbox sees other processes: {got['pids']}"
    assert got["killed"] in ("ProcessLookupError", "PermissionError")
    assert psutil.pid_exists(os.getpid())


def test_writes_stay_in_the_work_folder(spec: Spec, tmp_path: Path) -> None:
    targets = [str(ROOT / "escaped.txt"), str(ROOT / ".venv" / "escaped.txt"), "/usr/escaped.txt",
               str(tmp_path / "escaped.txt"), str(spec.work.parent / "escaped.txt"), "/escaped.txt"]
    got = probe(spec, """
        import json, sys
        out = {}
        for path in sys.argv[1:]:
            try:
                open(path, "w").write("x"); out[path] = "written"
            except OSError as exc:
                out[path] = type(exc).__name__
        open("mine.txt", "w").write("ok")
        print(json.dumps(out))
    """, *targets)
    for path in targets:
        assert not Path(path).exists(), f"{path} was written from inside the sandbox ({got[path]})"
    assert (spec.work / "mine.txt").read_text() == "ok"


def test_limits_apply_inside(spec: Spec) -> None:
    got = probe(spec, """
        import json, resource
        out = {"data": resource.getrlimit(resource.RLIMIT_DATA)[0], "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
               "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0]}
        try:
            bytearray(2 * 1024**3); out["alloc"] = "ok"
        except MemoryError:
            out["alloc"] = "MemoryError"
        try:
            with open("big", "wb") as fh:
                fh.seek(64 * 1024 * 1024); fh.write(b"x")
            out["big"] = "ok"
        except OSError as exc:
            out["big"] = exc.errno
        print(json.dumps(out))
    """)
    assert got["data"] == 1024 * 1024 * 1024 and got["cpu"] == 20 and got["fsize"] == 8 * 1024 * 1024
    assert got["alloc"] == "MemoryError" and got["big"] == 27  # EFBIG


def test_memory_limit_stops_a_hog(spec: Spec) -> None:
    """Touching more memory than the limit ends in MemoryError (RLIMIT_DATA) or the process killed (a container's
    memory cgroup): never in the allocation succeeding."""
    spec.work.mkdir(parents=True, exist_ok=True)
    spec.conn.mkdir(parents=True, exist_ok=True)
    result = run_in_sandbox([sys.executable, "-c", textwrap.dedent("""
        try:
            block = bytearray(2 * 1024**3)
            block[::4096] = b"x" * len(block[::4096])
            print("allocated")
        except MemoryError:
            print("MemoryError")
    """)], spec)
    assert "allocated" not in result.stdout, "2 GB went through a 1 GB limit"
    assert "MemoryError" in result.stdout or result.returncode in (137, -9), (result.returncode, result.stderr)


def test_process_limit_holds_for_root_too(spec: Spec) -> None:
    """The sandbox's tasks (threads count) stop at its limit, whoever grades: a pids cgroup or the engine's
    --pids-limit, since RLIMIT_NPROC does not bind root."""
    if spec.kind == "bwrap" and os.geteuid() == 0 and cgroups.hierarchy()[0] is None:
        pytest.skip(f"no process limit for a root grader here: {cgroups.hierarchy()[1]}")
    got = probe(spec, """
        import json, threading, time
        started, error = 0, ""
        try:
            for _ in range(200):
                threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
                started += 1
        except RuntimeError as exc:
            error = str(exc)
        print(json.dumps({"started": started, "error": error}))
    """)
    assert got["started"] < 48 and "thread" in got["error"], got


def test_nothing_of_the_sandbox_is_left(spec: Spec) -> None:
    """After its command ends, the sandbox's cgroup or container is gone."""
    probe(spec, """
        import json
        print(json.dumps({}))
    """)
    if spec.kind == "container":
        assert containers.running(str(spec.work)) == []
    else:
        assert cgroups.tasks(spec.name) == 0
        parent = cgroups.hierarchy()[0]
        assert parent is None or not (parent / spec.name).exists()


def test_no_process_survives_the_sandbox(spec: Spec) -> None:
    probe(spec, """
        import json, subprocess
        for _ in range(5):
            subprocess.Popen(["sleep", "4243"], start_new_session=True)
        print(json.dumps({"spawned": 5}))
    """)
    left = [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "4243"]]
    assert not left, f"processes outlived their sandbox: {left}"


def test_no_sandbox_refuses_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.bwrap_works.cache_clear()
    containers.engine_or_reason.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)  # no bwrap, no docker, no podman
    try:
        with pytest.raises(UsageError) as info:
            sandbox.choose("auto")
        message = str(info.value)
        assert "make sandbox" in message and "make container-engine" in message and "--sandbox none" in message
        assert "\n" not in message
        for kind, hint in (("bwrap", "make sandbox"), ("container", "no container engine")):
            with pytest.raises(UsageError, match=hint):
                sandbox.choose(kind)
        assert sandbox.choose("none") == "none"
        with pytest.raises(UsageError):
            sandbox.choose("chroot")
    finally:
        sandbox.bwrap_works.cache_clear()
        containers.engine_or_reason.cache_clear()


def test_grade_refuses_without_a_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI says it in one line and exits 2."""
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    env = {**os.environ, "PATH": str(Path(sys.executable).parent) + ":/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", "lab01-environment", str(tmp_path / "subs"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, check=False,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "make sandbox" in lines[0], lines


def test_sweep_tears_down_what_a_dead_worker_left(spec: Spec, tmp_path: Path) -> None:
    """A worker killed mid-student leaves its sandbox running (a container outlives its client; a cgroup its
    launcher): the batch's sweep finds it by the batch's name prefix and removes it."""
    sandboxes = tmp_path / "work" / "sandboxes"
    left = Spec(work=sandboxes / "abc" / "home", conn=tmp_path / "conn", kind=spec.kind, limits=spec.limits)
    left.work.mkdir(parents=True)
    left.conn.mkdir()
    cmd, env = sandbox.wrap([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(300)"], left)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    proc.kill()  # the "worker" dies without tearing down
    proc.wait(timeout=30)
    assert left.name.startswith(sandbox.batch_prefix(sandboxes))
    assert sandbox.sweep(sandboxes, spec.kind) == [left.name]
    assert sandbox.sweep(sandboxes, spec.kind) == []
    if spec.kind == "container":
        assert containers.running(str(left.work)) == []
    else:
        assert cgroups.tasks(left.name) == 0


def test_process_limit_says_what_holds_and_when_nothing_does(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.process_limit("container") == "the engine's --pids-limit"
    monkeypatch.setattr(cgroups, "hierarchy", lambda controller="pids": (None, "no writable pids cgroup (test)"))
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    # a root grader's bubblewrap sandbox runs as the unprivileged sandbox user, whom RLIMIT_NPROC binds
    assert sandbox.process_limit("bwrap") == "RLIMIT_NPROC"
    assert sandbox.process_limit("none") == "none: no writable pids cgroup (test)"
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert sandbox.process_limit("bwrap") == "RLIMIT_NPROC"
    monkeypatch.setattr(cgroups, "hierarchy",
                        lambda controller="pids": (Path("/sys/fs/cgroup/pids/mlinfra-sandbox"), ""))
    assert sandbox.process_limit("bwrap") == "a pids cgroup"


def test_a_batch_without_a_process_limit_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """summary.json's notes tell the instructor when nothing bounds a submission's processes."""
    from autograder.grading.engine import prepare_batch

    monkeypatch.setattr(sandbox, "process_limit", lambda kind: "none: no writable pids cgroup (test)")
    (tmp_path / "subs").mkdir()
    plan = prepare_batch("lab01-environment", tmp_path / "subs", tmp_path / "work", sandbox="none")
    assert any("no limit on the processes" in n and "no writable pids cgroup (test)" in n for n in plan.notes)


def test_no_privilege_inside_even_for_a_root_grader(spec: Spec) -> None:
    """Student code is an unprivileged user with no capability and no_new_privs, and cannot remount the course
    read-write, mount a cgroup hierarchy, or make a user namespace to get capabilities back."""
    got = probe(spec, """
        import ctypes, json, os, subprocess
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
        libc = ctypes.CDLL(None, use_errno=True)
        def attempt(*args):
            return libc.mount(*args) == 0
        course = os.path.dirname(os.__file__).encode()
        out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
               "caps": {k: int(status[k], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb")},
               "nnp": status["NoNewPrivs"].strip(),
               "remount": attempt(None, course, None, 0x20 | 0x1000, None),  # MS_REMOUNT | MS_BIND, rw
               "cgroupfs": attempt(b"cgroup", b"/tmp", b"cgroup", 0, b"pids"),
               "userns": libc.unshare(0x10000000) == 0}
        try:
            open(os.path.join(os.path.dirname(os.__file__), "os.py"), "a").close(); out["write"] = "ok"
        except OSError as exc:
            out["write"] = exc.errno
        print(json.dumps(out))
    """)
    assert got["uid"] != 0 and got["gid"] != 0 and 0 not in got["groups"], got
    assert got["caps"] == {"CapEff": 0, "CapPrm": 0, "CapBnd": 0, "CapInh": 0, "CapAmb": 0}, got
    assert got["nnp"] == "1" and not got["remount"] and not got["cgroupfs"] and not got["userns"], got
    assert got["write"] in (1, 13, 30), got  # EPERM, EACCES, EROFS


def test_a_root_graders_sandbox_runs_as_nobody_on_the_host(spec: Spec) -> None:
    """Seen from the host, every process of a bubblewrap sandbox belongs to the unprivileged sandbox user."""
    if spec.kind != "bwrap" or os.geteuid() != 0:
        pytest.skip("a root grader's bubblewrap sandbox")
    sandbox.prepare(spec)
    cmd, env = sandbox.wrap(["/bin/sh", "-c", "echo up; exec sleep 30"], spec)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        inside = psutil.Process(proc.pid).children(recursive=True)
        assert inside and {p.uids().real for p in inside} == {sandbox.SANDBOX_HOST_ID}
        assert {p.uids().effective for p in [psutil.Process(proc.pid), *inside]} == {sandbox.SANDBOX_HOST_ID}
    finally:
        proc.kill()
        proc.wait()
        sandbox.teardown(spec)


def test_memory_and_disk_are_bounded_for_the_sandbox_as_a_whole(spec: Spec) -> None:
    """Three children of 600 MB each do not fit a 1 GB sandbox (each is under the per-process limit), and the
    sandbox's /tmp and tmpfs home stop at their size."""
    if spec.kind == "bwrap" and cgroups.hierarchy("memory")[0] is None:
        pytest.skip(f"no memory cgroup here: {cgroups.hierarchy('memory')[1]}")
    spec.tmpfs_home = True
    spec.limits.disk_mb = 64
    spec.limits.file_mb = 512
    got = probe(spec, """
        import json, os, subprocess, sys
        hog = "b = bytearray(600 * 1024**2); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(2)"
        kids = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(3)]
        codes = [k.wait() for k in kids]
        out = {"codes": codes}
        for where in ("/tmp/fill", "fill"):
            try:
                with open(where, "wb") as fh:
                    for _ in range(100):
                        fh.write(b"x" * 1024**2)
                out[where] = "ok"
            except OSError as exc:
                out[where] = exc.errno
            if os.path.exists(where):
                os.remove(where)
        print(json.dumps(out))
    """)
    assert any(code != 0 for code in got["codes"]), got
    if spec.kind == "bwrap" and os.geteuid() == 0:
        assert got["fill"] == 28, got  # ENOSPC: the tmpfs home
    assert got["/tmp/fill"] == 28, got


def test_the_airflow_template_is_copied_inside_and_cannot_be_changed(spec: Spec, request: pytest.FixtureRequest,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A graded kernel's `autograder dag --run` copies the grader's migrated Airflow database (bound read-only,
    the file alone) instead of migrating its own. Airflow's database is in WAL mode, whose readers write beside it,
    which a read-only bind forbids: the template is read as immutable."""
    import shutil
    import sqlite3
    import tempfile

    from autograder.grading.run import airflow_template_bind
    from mlinfra import airflow_home

    # Outside /tmp, as the workbook's .state/ is: a folder bound under the sandbox's own /tmp would be writable.
    folder = Path(tempfile.mkdtemp(prefix="test-airflow-template-", dir=ROOT / ".state"))
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    monkeypatch.setenv(airflow_home.TEMPLATE_ENV, str(folder / "templates"))
    assert airflow_template_bind() == ((), {}), "nothing is bound before the template is made"
    template = airflow_home.template_path()
    template.parent.mkdir(parents=True)
    db = sqlite3.connect(template)
    db.execute("pragma journal_mode=wal")  # as Airflow leaves its database: a reader would make files beside it
    db.execute("create table made_here (filler blob)")
    db.execute("insert into made_here values (?)", (b"x" * (airflow_home.MIGRATED_BYTES * 2),))
    db.commit()
    db.close()  # the last connection: its log is written back into the file
    (template.parent / "secret-beside-it").write_text("not for the sandbox")
    readonly, env = airflow_template_bind()
    spec.readonly, spec.env = readonly, env
    got = probe(spec, """
        import json, sqlite3, sys
        from pathlib import Path
        from mlinfra import airflow_home
        template = airflow_home.template()  # found migrated: never migrates in here
        copy = Path.home() / "airflow" / "airflow.db"
        airflow_home.copy_database(template, copy, immutable=True)
        rows = sqlite3.connect(copy).execute("select count(*) from made_here").fetchone()[0]
        try:
            sqlite3.connect(template).execute("insert into made_here values (1)").connection.commit()
            written = True
        except sqlite3.Error:
            written = False
        print(json.dumps({"template": str(template), "rows": rows, "written": written,
                          "beside": (template.parent / "secret-beside-it").exists()}))
    """)
    assert got == {"template": str(template), "rows": 1, "written": False, "beside": False}, got


def test_a_graded_kernels_sandbox_has_its_own_accounts(tmp_path: Path) -> None:
    """The host's /etc/passwd and /etc/group name its accounts; a graded kernel's bubblewrap sandbox (as the
    grading worker makes it, run.new_spec) sees its own: root, its user and nobody."""
    from types import SimpleNamespace

    from autograder.grading.run import new_spec

    why = bwrap_works()
    if why:
        pytest.skip(f"no bwrap sandbox here: {why}")
    plan = SimpleNamespace(work_dir=str(tmp_path / "batch"), sandbox="bwrap", file_mb=8)
    lab = SimpleNamespace(memory_mb=1024, notebook_timeout=20)
    spec = new_spec(plan, lab)  # type: ignore[arg-type]
    try:
        got = probe(spec, """
            import getpass, grp, json, os, pwd
            print(json.dumps({"users": sorted(p.pw_name for p in pwd.getpwall()),
                              "groups": sorted(g.gr_name for g in grp.getgrall()),
                              "me": getpass.getuser(), "home": pwd.getpwuid(os.getuid()).pw_dir}))
        """)
    finally:
        teardown(spec)
        release_connection(spec.conn)
    assert got == {"users": ["nobody", "root", "sandbox"], "groups": ["nogroup", "root", "sandbox"],
                   "me": "sandbox", "home": str(spec.work)}, got


def test_the_sandboxs_first_process_shows_no_binds_or_settings(spec: Spec) -> None:
    """Pid 1 of a bubblewrap sandbox is bubblewrap: its options (every host folder bound, every variable set) reach
    it by descriptor, so neither its command line nor its open files show them to the code inside."""
    got = probe(spec, """
        import json, os
        def read(path):
            try:
                with open(path, "rb") as f:
                    return f.read().decode(errors="replace")
            except OSError:
                return ""
        texts = []
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            texts.append(read(f"/proc/{pid}/cmdline").replace("\\0", " "))
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                fds = []
            texts += [read(f"/proc/{pid}/fd/{fd}") for fd in fds if fd not in ("0", "1", "2")]
        print(json.dumps({"shown": sorted({w for t in texts for w in ("--setenv", "--ro-bind", "--bind")
                                           if w + " " in t or w + "\\0" in t})}))
    """)
    assert got == {"shown": []}, got
