"""Issue #12, the per-student fixed cost: the kernel client ready without jupyter_client's IOPub drain, the kernel
killed at once and reaped in the background, nbgrader's bookkeeping with its SQL compiled once and no fsync. Each
must change nothing but the time: these tests check what they keep (no wall-time assertion)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import jsonschema
import pytest

from autograder.nbgrader_course import fast_bookkeeping


def _start_kernel(tmp_path: Path):
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="python3")
    km.connection_file = str(tmp_path / "kernel.json")
    return km


def test_client_is_ready_and_sees_the_first_cells_output(tmp_path: Path) -> None:
    """Without the 0.2 s drain, IOPub must still be subscribed when the first cell runs: its output arrives."""
    from autograder.notebooks import kill_now, wait_until_ready

    async def run() -> list[str]:
        km = _start_kernel(tmp_path)
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            await wait_until_ready(kc, 60, km.is_alive)
            msg_id = kc.execute("print('first output')")
            texts = []
            while True:
                msg = await kc.iopub_channel.get_msg(timeout=30)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    texts.append(msg["content"]["text"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return texts
        finally:
            kc.stop_channels()
            kill_now(km)
            await km.shutdown_kernel(now=True)

    assert asyncio.run(run()) == ["first output\n"]


def test_ready_wait_reports_a_dead_kernel(tmp_path: Path) -> None:
    from autograder.notebooks import kill_now, wait_until_ready

    async def run() -> None:
        km = _start_kernel(tmp_path)
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kill_now(km)
        try:
            await wait_until_ready(kc, 30, km.is_alive)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    with pytest.raises(RuntimeError, match="died"):
        asyncio.run(run())


def test_a_reaped_kernel_is_dead_after_join(tmp_path: Path) -> None:
    """The kernel killed at a notebook's end and handed to a reaper is gone (process and sandbox) once the worker
    has joined its reapers, which it does before it reports the student."""
    import psutil

    pytest.importorskip("nbgrader")
    from autograder.grading import execute, kernels, sandbox
    from autograder.grading.run import StudentRun, WorkerState

    spec = sandbox.Spec(work=tmp_path / "box" / "home", conn=tmp_path / "conn", kind="none")
    state = WorkerState(prestart=True)
    kernels.prestart(state, spec)
    warm = kernels.take_warm(state)
    assert warm is not None and not state.warm
    km = warm[0]
    pid = km.provisioner.pid
    assert psutil.pid_exists(pid)
    assert [entry[1] for entry in state.launched] == [pid]
    run = StudentRun(spec, state, warm_km=km)
    execute.kill_now(km)
    run.reapers.append(execute._reap_in_background(km))
    assert execute.join_reapers(run, timeout=30) == []
    assert not run.reapers
    gone = not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert gone, f"kernel {pid} still running after its reaper was joined"
    assert not km.has_kernel


def _gradebook(tmp_path: Path) -> str:
    from nbgrader.api import Gradebook

    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(url, "course") as gb:
        gb.add_assignment("lab")
    return url


def test_bookkeeping_gradebooks_same_rows_no_fsync_and_undone(tmp_path: Path) -> None:
    pytest.importorskip("nbgrader")
    import nbgrader.api
    from nbgrader.api import Gradebook
    from nbgrader.nbgraderformat import common

    before = nbgrader.api.create_engine, common.jsonschema
    template = _gradebook(tmp_path).removeprefix("sqlite:///")
    urls = []
    for name in ("a", "b"):  # two students' gradebooks, one process: the shared SQL cache must not mix them
        (tmp_path / name).mkdir()
        shutil.copyfile(template, tmp_path / name / "gradebook.db")
        urls.append(f"sqlite:///{tmp_path / name / 'gradebook.db'}")
    with fast_bookkeeping():
        assert (nbgrader.api.create_engine, common.jsonschema) != before
        for url, student in zip(urls, ("alice", "bob"), strict=False):
            with Gradebook(url, "course") as gb:
                gb.update_or_create_student(student)
                gb.update_or_create_submission("lab", student)
                with gb.engine.connect() as conn:
                    sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                assert sync == 0, "a student's throwaway gradebook is written without fsync"
    assert (nbgrader.api.create_engine, common.jsonschema) == before
    for url, student in zip(urls, ("alice", "bob"), strict=False):
        rows = sqlite3.connect(url.removeprefix("sqlite:///")).execute("SELECT id FROM student").fetchall()
        assert rows == [(student,)], f"{url}: {rows}"


def test_bookkeeping_schema_check_raises_what_jsonschema_raises() -> None:
    pytest.importorskip("nbgrader")
    from nbgrader.nbgraderformat.v3 import MetadataValidatorV3

    validator = MetadataValidatorV3()
    bad = {"grade": "yes", "solution": False, "locked": True, "grade_id": "t", "points": 1, "schema_version": 3}
    good = {**bad, "grade": True}
    with pytest.raises(jsonschema.ValidationError) as plain:
        jsonschema.validate(bad, validator.schema)
    with fast_bookkeeping():
        from autograder.nbgrader_course import _SCHEMA_CHECKER

        _SCHEMA_CHECKER.validate(good, validator.schema)
        with pytest.raises(jsonschema.ValidationError) as ours:
            _SCHEMA_CHECKER.validate(bad, validator.schema)
    assert ours.value.message == plain.value.message


def test_bookkeeping_alembic_head_is_nbgraders() -> None:
    """A new gradebook is stamped with the same schema revision as nbgrader's `alembic heads` subprocess gives."""
    pytest.importorskip("nbgrader")
    import nbgrader.api

    from autograder.nbgrader_course import ensure_venv_tools_on_path

    ensure_venv_tools_on_path()
    original = nbgrader.api.get_alembic_version
    with fast_bookkeeping():
        ours = nbgrader.api.get_alembic_version()
    assert nbgrader.api.get_alembic_version is original
    assert ours == original() and len(ours) == 12, ours


def test_bookkeeping_creates_tables_only_where_missing(tmp_path: Path) -> None:
    """A new gradebook still gets every table; a complete one is not asked about each table again; undone on exit."""
    pytest.importorskip("nbgrader")
    import nbgrader.api
    from nbgrader.api import Gradebook
    from sqlalchemy import event

    metadata = nbgrader.api.Base.metadata
    full = _gradebook(tmp_path).removeprefix("sqlite:///")
    with fast_bookkeeping():
        assert "create_all" in vars(metadata)
        new = tmp_path / "new.db"
        with Gradebook(f"sqlite:///{new}", "course"):
            pass
        tables = {r[0] for r in sqlite3.connect(new).execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(metadata.tables) <= tables
        pragmas: list[str] = []
        with Gradebook(f"sqlite:///{full}", "course") as gb:
            pass
        engine = nbgrader.api.create_engine(f"sqlite:///{full}")
        event.listen(engine, "before_cursor_execute", lambda *a: pragmas.append(a[2]))
        metadata.create_all(bind=engine)
        assert not [p for p in pragmas if p.upper().startswith("PRAGMA") and "table_info" in p.lower()], pragmas
        engine.dispose()
        assert gb is not None
    assert "create_all" not in vars(metadata)
