"""No hidden-test text in anything a learner receives.

The kernel runs the hidden tests, so student code can read their source (linecache, frames, code objects) and
put it in an exception message, which would reach the feedback page, grades.csv and the notes. The trusted side
reads every message the kernel produced for a graded cell before it is written anywhere, and compares it, as
words, with the cell's hidden-test code: any run of SHINGLE consecutive words of that code (after its visible part
and its assertion messages, which learners are meant to read, are taken out) in the message, or in anything base64,
hex or compressed inside the message, replaces the whole message and flags the submission (docs/grading.md).

The comparison is notebook-wide (a message may quote another cell's hidden tests, read from IPython's history).
Encodings are an open class (XOR, a cipher, words chosen as code), so a message is also held to a shape: at most
MAX_MESSAGE characters, and a run of MIN_ENCODED or more characters of an encoding's alphabet (base64, hex, such
a run broken by dots, dashes or spaces) is taken out and flagged. What is left is prose and short values: a
student who hides data in that still gets at most MAX_MESSAGE characters a failed test out, per submission.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from autograder import fingerprints
from autograder.grading.seals import BEGIN, END

SHINGLE = 5  # consecutive words of hidden-test code that make a message a leak
REDACTED = "[removed: the message quoted a hidden test]"
ENCODED = "[…]"
MAX_MESSAGE = 300
MIN_ENCODED = 32
_ENCODED = re.compile(r"[A-Za-z0-9+/=_\-]{24,}|(?:[0-9a-fA-F]{2}\s?){12,}")  # base64 or hex runs to decode
_SEPARATOR = r"[.\-: ,|]"
# a run of an encoding's alphabet, possibly cut into pieces by single separators: "aGVs.bG8g.d29y.bGQ="
_CHUNKED = re.compile(rf"(?:[A-Za-z0-9+/=_]{{2,}}{_SEPARATOR}?){{2,}}")
# bytes written out one by one in hex: "9c 5a 0f ..."
_HEX_PAIRS = re.compile(r"(?:\b[0-9a-fA-F]{2}\b[\s,:]+){16,}")


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def _split(source: str) -> tuple[str, str]:
    """(the hidden-test lines, every other line) of a cell."""
    hidden: list[str] = []
    visible: list[str] = []
    inside = False
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

    @classmethod
    def of_notebook(cls, sources: list[str]) -> HiddenText:
        """Every graded cell's hidden tests at once: a message is checked against all of them."""
        hidden: set[tuple[str, ...]] = set()
        for source in sources:
            hidden |= cls.of_cell(source).shingles
        return cls(hidden)

    def quoted_in(self, text: str) -> bool:
        if not self.shingles or not text:
            return False
        pieces = [text, text[::-1]]
        runs = _ENCODED.findall(text) + ["".join(re.split(_SEPARATOR, m)) for m in _CHUNKED.findall(text)]
        for token in runs:
            pieces += fingerprints.decoded_payloads(token)
        return any(self.shingles & _shingles(fingerprints.words(piece)) for piece in pieces)

    def clean(self, text: str) -> tuple[str, bool]:
        """`text` as a learner may read it, and whether it tried to carry hidden tests out: REDACTED when it quotes
        them; else with every encoded-looking run taken out, and cut to MAX_MESSAGE characters."""
        if self.quoted_in(text):
            return REDACTED, True
        kept, encoded = [], False
        for token in re.split(r"(\s+)", text):
            if _encoded_run(token):
                kept.append(ENCODED)
                encoded = True
            else:
                kept.append(token)
        words = [t for t in text.split() if _base64ish(t)]
        if len(words) >= 3:  # encoded data cut into space-separated pieces
            kept = [ENCODED if _base64ish(t) else t for t in kept]
            encoded = True
        cleaned = "".join(kept)
        cleaned, pairs = _HEX_PAIRS.subn(ENCODED + " ", cleaned)
        return cleaned[:MAX_MESSAGE], encoded or bool(pairs)


def _encoded_run(token: str) -> bool:
    """A run without spaces that holds encoded data: a piece of 16 or more characters of base64's alphabet mixing
    letters and digits, or of 40 or more of it at all; with MIN_ENCODED or more of them in the run. Words, paths,
    dotted names, numbers and JSON of such are not."""
    if sum(ch.isalnum() for ch in token) < MIN_ENCODED:
        return False
    for part in re.split(r"[^A-Za-z0-9]", token):
        letters, digits = any(c.isalpha() for c in part), any(c.isdigit() for c in part)
        if (len(part) >= 16 and letters and digits) or len(part) >= 40:
            return True
    return False


def _base64ish(token: str) -> bool:
    """A piece of base64 or hex: 12+ characters mixing digits with letters (both cases, or hex)."""
    core = token.strip(".,;:()[]{}'\"")
    if len(core) < 12 or not re.fullmatch(r"[A-Za-z0-9+/=_\-]+", core) or not any(c.isdigit() for c in core):
        return False
    hexlike = re.fullmatch(r"[0-9a-fA-F]+", core) is not None and len(core) >= 16
    return hexlike or (any(c.islower() for c in core) and any(c.isupper() for c in core))
