"""No hidden-test text in anything a learner receives.

The kernel runs the hidden tests, so student code can read their source (linecache, frames, code objects) and
put it in an exception message, which would reach the feedback page, grades.csv and the notes. The trusted side
reads every message the kernel produced for a graded cell before it is written anywhere, and compares it, as
words, with the cell's hidden-test code: any run of SHINGLE consecutive words of that code (after its visible part
and its assertion messages, which learners are meant to read, are taken out) in the message, or in anything base64,
hex or compressed inside the message, replaces the whole message and flags the submission (docs/grading.md).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from autograder import fingerprints
from autograder.grading.seals import BEGIN, END

SHINGLE = 5  # consecutive words of hidden-test code that make a message a leak
REDACTED = "[removed: the message quoted this cell's hidden test]"
_ENCODED = re.compile(r"[A-Za-z0-9+/=_\-]{24,}|(?:[0-9a-fA-F]{2}\s?){12,}")  # base64 or hex runs to decode


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _split(source: str) -> tuple[str, str]:
    """(the hidden-test lines, every other line) of a cell."""
    hidden, visible, inside = [], [], False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            inside = True
        elif stripped.startswith(END):
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(hidden), "\n".join(visible)


def _messages(source: str) -> list[str]:
    """The assertion messages written in the cell (plain strings and f-strings' text): shown to learners."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.msg is not None:
            for part in ast.walk(node.msg):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    out.append(part.value)
    return out


@dataclass
class HiddenText:
    """The distinctive word runs of one cell's hidden tests."""

    shingles: set[tuple[str, ...]]

    @classmethod
    def of_cell(cls, source: str) -> HiddenText:
        hidden, visible = _split(source)
        if not hidden.strip():
            return cls(set())
        allowed = _shingles(fingerprints.words(visible))
        for message in _messages(source):
            allowed |= _shingles(fingerprints.words(message))
        return cls(_shingles(fingerprints.words(hidden)) - allowed)

    def quoted_in(self, text: str) -> bool:
        if not self.shingles or not text:
            return False
        pieces = [text, text[::-1]]
        for token in _ENCODED.findall(text):
            pieces += fingerprints.decoded_payloads(token)
        return any(self.shingles & _shingles(fingerprints.words(piece)) for piece in pieces)

    def clean(self, text: str) -> tuple[str, bool]:
        """`text`, or REDACTED when it quotes the hidden tests; and whether it did."""
        if self.quoted_in(text):
            return REDACTED, True
        return text, False
