"""nbgrader's executor, with every kernel in its sandbox and the tamper guard run before each graded test cell.

Imports nbgrader at module level: only grading workers import this module.
"""

from __future__ import annotations

import ast
import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from nbclient.util import run_sync
from nbgrader.preprocessors import Execute

from autograder.grading import kernels, provisioner, seals, tamper
from autograder.grading.provisioner import SandboxKernelManager
from autograder.grading.run import StudentRun
from autograder.notebooks import kill_now, start_ready_client

# What a student's outputs may weigh in the grader's memory: beyond CELL_OUTPUT_BYTES a cell's further outputs are
# dropped (with a note in the cell); beyond STUDENT_OUTPUT_BYTES the kernel is stopped (the run's output log says so).
CELL_OUTPUT_BYTES = 1_000_000
STUDENT_OUTPUT_BYTES = 10_000_000


def _weight(content: Any) -> int:
    """About how many bytes a message's content holds (its strings, however nested)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):  # each container weighs what its JSON does at least, `{}` included
        return 2 + sum(len(str(k)) + 4 + _weight(v) for k, v in content.items())
    if isinstance(content, (list, tuple)):
        return 2 + sum(1 + _weight(v) for v in content)
    return 8


def _discard(km: Any) -> None:
    try:
        kernels.discard(km)
    finally:
        # jupyter_client's sync calls made an event loop for this thread: close it, or every student would
        # leave a selector and its file descriptors behind in a long-lived worker
        loop: asyncio.AbstractEventLoop | None
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = None
        if loop is not None and not loop.is_running():
            loop.close()


def _reap_in_background(km: Any) -> threading.Thread:
    """jupyter_client waits for a killed kernel by polling every 0.1 s: do that, and the sandbox's teardown, while
    nbgrader scores the notebook."""
    thread = threading.Thread(target=_discard, args=(km,), name="kernel-reaper", daemon=True)
    thread.start()
    return thread


def join_reapers(run: StudentRun, timeout: float = 30.0) -> list[str]:
    """Wait for every kernel of the run handed to a reaper to be dead and torn down; returns the names of reapers
    still running after `timeout` (the caller then kills what is left by pid)."""
    deadline = time.monotonic() + timeout
    late = []
    while run.reapers:
        thread = run.reapers.pop()
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            late.append(thread.name)
    return late


class SandboxedExecute(Execute):
    """Execute with the sandbox's kernel manager, an immediate kernel kill at the end (nothing of the student's
    survives, and a graceful shutdown costs up to seconds), and the guard around graded cells.

    nbgrader builds its preprocessors from their classes, so the student's run comes as a class attribute of a
    subclass made for that run (`autograde_preprocessors(run)`)."""

    run: StudentRun

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["kernel_manager_class"] = SandboxKernelManager
        super().__init__(*args, **kwargs)
        self.shutdown_kernel = "immediate"
        self._guarded_kc: Any = None
        self._cell_bytes: dict[int, int] = {}
        self._student_bytes = 0
        self._stopped = False

    def output(self, outs: Any, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        """nbclient's, within the output caps: what is past them is dropped, and a flood stops the kernel."""
        from nbformat.v4 import new_output

        size = _weight(msg.get("content"))
        self._student_bytes += size
        before = self._cell_bytes.get(cell_index, 0)
        self._cell_bytes[cell_index] = before + size
        if self._student_bytes > STUDENT_OUTPUT_BYTES:
            if not self._stopped:
                self._stopped = True
                self.run.output_log.append(f"the notebook printed more than {STUDENT_OUTPUT_BYTES // 1_000_000} MB: its "
                                  "kernel was stopped")
                if self.km is not None:
                    kill_now(self.km)
            return None
        if before + size > CELL_OUTPUT_BYTES:
            if before <= CELL_OUTPUT_BYTES:
                outs.append(new_output("stream", name="stdout", text=f"\n[output past {CELL_OUTPUT_BYTES // 1000} kB "
                                       "dropped by the grader]\n"))
                self.run.output_log.append(f"cell {cell_index + 1}'s output past {CELL_OUTPUT_BYTES // 1000} kB was dropped")
            return None
        return super().output(outs, msg, display_id, cell_index)

    async def _async_user_expr(self, expr: str) -> Any:
        assert self.kc is not None
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"r": expr},
                                 allow_stdin=False)
        while True:
            msg = await self.kc.shell_channel.get_msg(timeout=max(10, self.timeout or 30))
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                break
        result = msg.get("content", {}).get("user_expressions", {}).get("r", {})
        if result.get("status") != "ok":
            raise RuntimeError(f"{result.get('ename', 'no reply')}: {str(result.get('evalue', ''))[:120]}")
        text = result.get("data", {}).get("text/plain", "")
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    _user_expr = run_sync(_async_user_expr)

    def create_kernel_manager(self) -> Any:
        """nbclient's, with the student's sandbox and the worker's state given to the kernel manager."""
        name = str(getattr(self, "kernel_name", "") or self.nb.metadata.get("kernelspec", {}).get("name") or "")
        self.kernel_name = name
        names = {"kernel_name": name} if name else {}
        self.km = self.kernel_manager_class(self.run.spec, self.run.worker, config=self.config, **names)
        return self.km

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        started = time.monotonic()
        await super().async_start_new_kernel(**kwargs)
        self.run.add_time("kernel start", time.monotonic() - started)

    async def async_start_new_kernel_client(self) -> Any:
        started = time.monotonic()
        result = await start_ready_client(self)  # nbclient's, without jupyter_client's 0.2 s IOPub drain
        self.run.add_time("kernel ready", time.monotonic() - started)
        return result

    async def _async_cleanup_kernel(self) -> None:
        started = time.monotonic()
        await super()._async_cleanup_kernel()
        self.run.add_time("kernel kill", time.monotonic() - started)

    # nbclient binds the sync faces to its own coroutines at class creation: rebind them to ours.
    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)
    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def _guard(self, expr: str, label: str) -> Any:
        started = time.monotonic()
        try:
            return self._user_expr(expr)
        except Exception as exc:  # noqa: BLE001 - a kernel that breaks the guard is flagged, never trusted
            self.run.guard_log.append((label, [f"the grader's guard did not answer ({str(exc)[:100]})"]))
            return None
        finally:
            self.run.add_time("guard", time.monotonic() - started)

    def preprocess(self, nb: Any, resources: Any = None, km: Any = None) -> Any:
        warm, self.run.warm_km = self.run.warm_km, None  # taken once
        if warm is None or km is not None:
            return super().preprocess(nb, resources, km)
        folder = ((resources or {}).get("metadata") or {}).get("path")
        if folder:
            provisioner.stage_work_folder(Path(folder), warm.spec.work)
        try:
            return super().preprocess(nb, resources, km=warm)
        finally:
            started = time.monotonic()
            try:
                if self.kc is not None:
                    self.kc.stop_channels()
            finally:
                kill_now(warm)
                self.run.reapers.append(_reap_in_background(warm))  # never reused; the worker joins it before it answers
                self.run.add_time("kernel kill", time.monotonic() - started)

    def preprocess_cell(self, cell: Any, resources: Any, index: int) -> Any:
        if cell.cell_type != "code" or not cell.source.strip():
            return super().preprocess_cell(cell, resources, index)
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        label = f"cell {index + 1}" + (f" ({meta['grade_id']})" if meta.get("grade_id") else "")
        if self._guarded_kc is not self.kc:
            self._guarded_kc = self.kc
            self._guard(tamper.setup_expression(), "kernel start")
            self._guard(seals.setup_expression(), "kernel start")
        sealed = seals.SealedCell(cell.source)
        if meta.get("grade"):
            restored = self._guard(tamper.RESTORE_EXPRESSION, label)
            if isinstance(restored, list) and restored:
                self.run.guard_log.append((label, [str(r) for r in restored]))
            sealed = seals.seal_cell(cell.source) if self.run.seal_hidden_tests else sealed
        started = time.monotonic()
        original, cell.source = cell.source, sealed.source
        try:
            result = super().preprocess_cell(cell, resources, index)
        finally:
            cell.source = original  # what nbgrader records and checksums is the cell as written
        self.run.add_time("cells", time.monotonic() - started)
        if sealed.seals:
            self._judge_seals(cell, sealed, label)
        if meta.get("locked") and not meta.get("solution"):  # the course's own code: what it binds is trusted
            names = tamper.defined_names(cell.source)
            if names:
                self._guard(tamper.keep_expression(names), label)
        return result


    def _judge_seals(self, cell: Any, sealed: seals.SealedCell, label: str) -> None:
        """The trusted side's verdict on a graded cell's sealed checks (seals.py): a failing one becomes the cell's
        error output, which is what nbgrader scores; a kernel that claimed a clean run without recording them, or
        sent what cannot be read, is logged as lying."""
        from nbformat.v4 import new_output

        started = time.monotonic()
        try:
            reply = self._user_expr(seals.TAKE_EXPRESSION)
        except Exception:  # noqa: BLE001 - no answer is judged as no values recorded
            reply = None
        self.run.add_time("seals", time.monotonic() - started)
        kernel_error = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        verdict = seals.judge(sealed, reply, kernel_error)
        if not kernel_error and (verdict.missing or verdict.unreadable):
            why = verdict.unreadable or f"it reported a clean run but never ran {len(verdict.missing)} of its " \
                                       f"{len(sealed.seals)} hidden checks"
            self.run.seal_log.append((label, why))
            verdict.failure = verdict.failure or "a hidden test failed"
        if verdict.failure and not kernel_error:
            cell.outputs.append(new_output("error", ename="AssertionError", evalue=verdict.failure,
                                           traceback=[f"AssertionError: {verdict.failure}"]))


def autograde_preprocessors(run: StudentRun) -> list[type]:
    """nbgrader's autograde steps (nbgrader/converters/autograde.py), with our executor, bound to the student's
    run, in place of its own."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
        SaveAutoGrades,
    )

    # same name, so the executor's configuration (config.SandboxedExecute, config.Execute) reaches it unchanged
    executor = type("SandboxedExecute", (SandboxedExecute,), {"run": run, "__module__": __name__})
    return [executor, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
            AssignLatePenalties, CheckCellMetadata]
