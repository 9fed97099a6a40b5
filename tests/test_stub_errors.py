"""A self-check row for an unfilled lab names the function still raising NotImplementedError (issue 15)."""

from __future__ import annotations

from autograder.notebooks import cell_error

# ipykernel's traceback for `assert in_virtualenv(1, 2)` calling the released stub (colour codes included).
TRACEBACK = [
    "\x1b[31mNotImplementedError\x1b[39m    Traceback (most recent call last)",
    "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[2]\x1b[39m\x1b[32m, line 1\x1b[39m\n----> 1 assert in_virtualenv(1, 2)\n",
    ("\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[1]\x1b[39m\x1b[32m, line 3\x1b[39m, in \x1b[36min_virtualenv\x1b[39m"
    "\x1b[34m(a, b)\x1b[39m\n      1 def in_virtualenv(a, b):\n----> 3     raise NotImplementedError()\n"),
    "\x1b[31mNotImplementedError\x1b[39m: ",
]


def _cell(ename: str, evalue: str, traceback: list[str]) -> dict:
    return {"outputs": [{"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}]}


def test_a_bare_stub_error_names_its_function() -> None:
    name, message = cell_error(_cell("NotImplementedError", "", TRACEBACK))
    assert name == "NotImplementedError" and "in_virtualenv()" in message and "stub" in message


def test_messages_and_module_level_errors_are_kept() -> None:
    assert cell_error(_cell("AssertionError", "python 3.8 is too old", TRACEBACK)) == \
        ("AssertionError", "python 3.8 is too old")
    assert cell_error(_cell("AssertionError", "", ["Cell In[2], line 1\n----> 1 assert False\n"])) == \
        ("AssertionError", "")
    assert cell_error({"outputs": [{"output_type": "stream", "text": "ok"}]}) is None
