"""Sealed hidden tests (autograder/grading/seals.py) and the redaction of hidden-test text (redact.py), as plain
functions: what the kernel is sent, how the trusted side judges what it recorded, and what a learner may read."""

from __future__ import annotations

import base64
import sys

import pytest

from autograder.grading import seals
from autograder.grading.redact import REDACTED, HiddenText

CELL = '''result = f(2)
assert result == 4, "visible: the student has this one"
### BEGIN HIDDEN TESTS
assert f(3) == 9, "three squared is nine"
assert g("/a",
         "/b") is True
assert 0.5 < ratio(1, 2) + 0.25
assert abs(h() - 1.0) < 1e-9
with ctx():
    assert [1, 2] == pair(
        1), f"pair(1) gave {pair(1)}"
### END HIDDEN TESTS
'''


def _kernel() -> object:
    """The seal module as a kernel gets it (installed in this process, as the kernel installs it)."""
    exec(compile(seals.KERNEL_CODE, "<grader-seals>", "exec"), {})  # noqa: S102 - the grader's own code
    return sys.modules[seals.MODULE]


def test_the_kernel_never_receives_a_hidden_expected_value_or_message() -> None:
    sealed = seals.seal_cell(CELL)
    assert [(s.expected, s.op) for s in sealed.seals] == [(9, "=="), (True, "is"), (0.5, ">"), (1e-9, "<"),
                                                          ([1, 2], "==")]
    hidden = sealed.source.split(seals.BEGIN)[1]
    for secret in ("== 9", "three squared", "is True", "0.5 <", "1e-9", "[1, 2]", "pair(1) gave"):
        assert secret not in hidden, secret
    assert "assert result == 4" in sealed.source, "visible tests are sent as they are"
    assert len(sealed.source.splitlines()) == len(CELL.splitlines()), "line numbers are kept"
    compile(sealed.source, "<cell>", "exec")


def test_a_cell_without_hidden_tests_is_sent_unchanged() -> None:
    assert seals.seal_cell("assert f(1) == 1\n").source == "assert f(1) == 1\n"
    assert seals.seal_cell("### BEGIN HIDDEN TESTS\nassert f(\n").seals == []  # does not parse: sent as it is


def _recorded(*values: tuple[int, object, bool]) -> str:
    seal = _kernel()
    for number, value, identity in values:
        seal.seal(number, value, identity)
    return seal.take()


def test_right_values_pass_and_each_wrong_one_fails_with_its_own_message() -> None:
    sealed = seals.seal_cell(CELL)
    right = [(0, 9, False), (1, True, True), (2, 0.75, False), (3, 0.0, False), (4, [1, 2], False)]
    assert seals.judge(sealed, _recorded(*right), kernel_error=False).failure == ""
    wrong = dict(enumerate([(0, 8, False), (1, 1, True), (2, 0.2, False), (3, 0.5, False), (4, [2, 1], False)]))
    messages = ["three squared is nine", "a hidden test failed", "a hidden test failed", "a hidden test failed",
                "pair(1) gave …"]
    for number, message in enumerate(messages):
        values = [wrong[number] if i == number else right[i] for i in range(5)]
        assert seals.judge(sealed, _recorded(*values), kernel_error=False).failure == message


@pytest.mark.slow  # imports torch
def test_values_compare_as_python_compares_them() -> None:
    canon = _kernel().canon
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert canon(np.float64(3.0)) == 3 and canon(torch.tensor(7)) == 7 and canon(torch.Size([2, 3])) == (2, 3)
    assert canon({1, 2}) == canon({2, 1}) and canon(np.array([[1, 2]])) == [[1, 2]]
    assert canon(float("nan")) != canon(float("nan")) or canon(float("nan"))[0] == "__ag_float__"

    class Liar(str):  # an answer whose __eq__ always says yes: read as the plain string it is
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = str.__hash__

    assert canon(Liar("no")) == "no" and canon(Liar("no")) != "pass"
    assert canon(object())[0] == "__ag_object__"


def test_a_kernel_that_never_recorded_its_seals_is_caught() -> None:
    sealed = seals.seal_cell(CELL)
    verdict = seals.judge(sealed, "{}", kernel_error=False)
    assert verdict.failure and verdict.missing == [0, 1, 2, 3, 4]
    assert seals.judge(sealed, None, kernel_error=False).missing == [0, 1, 2, 3, 4]
    assert seals.judge(sealed, "{0: [" * 10_000, kernel_error=False).unreadable
    assert seals.judge(sealed, "x" * (seals.MAX_REPLY + 1), kernel_error=False).failure
    # a cell the kernel reports as failed fails whatever was recorded (no verdict of its own needed)
    assert seals.judge(sealed, "{}", kernel_error=True).failure == ""


def test_hidden_text_is_removed_from_what_a_learner_reads() -> None:
    hidden = HiddenText.of_cell(CELL)
    line = 'assert g("/a", "/b") is True'
    for leak in (line, f"boom: {base64.b64encode(line.encode()).decode()}", line[::-1],
                 "assert [1, 2] == pair(\n        1)"):
        assert hidden.clean(leak) == (REDACTED, True), leak
    for fine in ("three squared is nine", "visible: the student has this one", "NameError: name 'f' is not defined",
                 "AssertionError: result == 4 failed"):
        assert hidden.clean(fine) == (fine, False), fine
