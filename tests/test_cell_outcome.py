"""One classification of a graded cell's run, shared by self-check and grading (autograder.notebooks.cell_outcome)."""

from __future__ import annotations

import nbformat
import pytest

from autograder.notebooks import cell_outcome
from mlinfra.base.results import ERROR, FAILED, NOT_RUN, PASSED, TIMEOUT


def cell(outputs: list[dict], count: int | None = 1) -> nbformat.NotebookNode:
    node = nbformat.v4.new_code_cell("assert f() == 1")
    node.execution_count = count
    node.outputs = [nbformat.from_dict(o) for o in outputs]
    return node


def error(ename: str, evalue: str = "") -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


@pytest.mark.parametrize(("outputs", "count", "timed_out", "status", "message"), [
    ([], 1, False, PASSED, ""),
    ([{"output_type": "stream", "name": "stdout", "text": "hi"}], 1, False, PASSED, ""),
    ([error("AssertionError", "f() gave 2")], 1, False, FAILED, "AssertionError: f() gave 2"),
    ([error("AssertionError")], 1, False, FAILED, "AssertionError"),
    ([error("ZeroDivisionError", "division by zero")], 1, False, ERROR, "ZeroDivisionError: division by zero"),
    ([error("KeyboardInterrupt")], 1, False, TIMEOUT, "ran past 30 s and was interrupted"),
    ([error("CellTimeoutError", "x")], 1, False, TIMEOUT, "ran past 30 s and was interrupted"),
    ([], 1, True, TIMEOUT, "ran past 30 s and was interrupted"),  # interrupted before it wrote anything
    ([], None, False, NOT_RUN, "the kernel died"),
])
def test_a_cell_is_classified_the_same_way_everywhere(outputs: list[dict], count: int | None, timed_out: bool,
                                                      status: str, message: str) -> None:
    assert cell_outcome(cell(outputs, count), 30, timed_out=timed_out, not_run="the kernel died") == (status, message)
