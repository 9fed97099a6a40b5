"""Sealed hidden tests: a verdict the student's kernel cannot write.

The kernel is the student's process: it can answer every request with "ok" and no error, the grader's own probes
included. So a test cell's verdict cannot rest on what the kernel says about the cell. Instead, the expected values
of hidden tests never reach the kernel: each hidden `assert <expression> == <literal>` (or `is True/False/None`)
is sent as `seal(k, <expression>)`, which records the expression's value as plain data; the literal and the
assertion's message stay on the trusted side. After the cell, the trusted side asks for the recorded values, reads
them as literals (bounded, never unpickled) and compares them with the expected literals itself. A cell passes only
when the kernel reports no error AND every seal was observed with the expected value: a kernel that lies must
produce the right values of the hidden checks, which is doing the work (docs/grading.md, "Sealed hidden tests").

A kernel that reports a cell as run without error while one of its seals was never recorded has lied about
running it (sealed statements sit on the cell's straight-line path): that is flagged as tampering.

`canon` turns a value into comparable plain data the same way on both sides (it is defined once, in KERNEL_CODE,
and the trusted side uses the very same code).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

MODULE = "_grader_seals"
BEGIN, END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
MAX_REPLY = 1_000_000  # characters of recorded values read back per cell; more is a failed cell

# Runs in the kernel once, before any student code (a module of its own in sys.modules). The trusted side runs
# the same text to get the same `canon`.
KERNEL_CODE = r'''
import sys as _sys, types as _types, math as _math
_m = _types.ModuleType("_grader_seals")
_m.store = {}
def canon(v, depth=0):
    if depth > 40:
        return ("__ag_deep__",)
    t = type(v)
    if v is None or t is bool:
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        f = float(v)
        return f if _math.isfinite(f) else ("__ag_float__", repr(f))
    if isinstance(v, complex):
        return complex(v)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, (list, tuple)):
        items = [canon(x, depth + 1) for x in v]
        return items if isinstance(v, list) else tuple(items)
    if isinstance(v, dict):
        return {_key(k, depth): canon(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (set, frozenset)):
        return ("__ag_set__", tuple(sorted((canon(x, depth + 1) for x in v), key=repr)))
    item = getattr(v, "item", None)
    size = getattr(v, "size", None)
    numel = getattr(v, "numel", None)
    try:
        one = (size() if callable(size) else size) if numel is None else numel()
    except Exception:
        one = None
    if callable(item) and one == 1:
        return canon(item(), depth + 1)
    tolist = getattr(v, "tolist", None)
    if callable(tolist):
        return canon(tolist(), depth + 1)
    return ("__ag_object__", type(v).__module__ + "." + type(v).__qualname__)
def _key(k, depth):
    c = canon(k, depth + 1)
    try:
        hash(c)
        return c
    except TypeError:
        return repr(c)
def seal(k, value, identity=False):
    if identity:
        value = value if (value is None or type(value) is bool) else ("__ag_not_identical__", type(value).__name__)
    else:
        value = canon(value)
    _m.store.setdefault(k, []).append(value)
    return None
def take():
    out, _m.store = _m.store, {}
    return repr(out)
_m.canon, _m.seal, _m.take = canon, seal, take
_sys.modules["_grader_seals"] = _m
'''


def setup_expression() -> str:
    """A user expression that installs the seal module in the kernel (before any student code runs)."""
    return f"exec(compile({KERNEL_CODE!r}, '<grader-seals>', 'exec'), {{}}) or 'ok'"


TAKE_EXPRESSION = f"__import__('sys').modules['{MODULE}'].take()"


def _trusted_canon() -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(KERNEL_CODE, "<grader-seals>", "exec"), namespace)  # noqa: S102 - the grader's own code, never a learner's
    return namespace["canon"]


@dataclass
class Seal:
    """One hidden check whose expected value stays on the trusted side."""

    number: int
    expected: Any  # a literal
    op: str  # how the recorded value must compare with it: ==, is, <, <=, >, >=
    message: str  # what the learner is told when it fails (the assertion's message, never its source)
    line: int  # in the cell


@dataclass
class SealedCell:
    source: str  # what the kernel is sent
    seals: list[Seal] = field(default_factory=list)


@dataclass
class Verdict:
    failure: str = ""  # non-empty: the cell failed; the message to show
    missing: list[int] = field(default_factory=list)  # seals never recorded
    unreadable: str = ""  # the kernel's reply could not be read as values


def _hidden_lines(source: str) -> set[int]:
    """1-based numbers of the lines between the hidden-test markers."""
    inside, lines = False, set()
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            inside = True
        elif stripped.startswith(END):
            inside = False
        elif inside:
            lines.add(number)
    return lines


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _message(node: ast.expr | None) -> str:
    """The assertion's message as the learner may read it: a plain string as is; an f-string's text with each
    interpolated value shown as '…' (evaluating it would need the kernel, and sending it would send the answer)."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "…" for v in node.values)
    return ""


# The comparisons a seal keeps back, written as `<expression> OP <literal>`; a literal on the left is mirrored.
_OPS = {ast.Eq: "==", ast.Is: "is", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_MIRROR = {"==": "==", "is": "is", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _sealable(node: ast.Assert) -> tuple[ast.expr, Any, str] | None:
    test = node.test
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 or type(test.ops[0]) not in _OPS:
        return None
    op = _OPS[type(test.ops[0])]
    left, right = test.left, test.comparators[0]
    left_ok, left_value = _literal(left)
    right_ok, right_value = _literal(right)
    if left_ok == right_ok:  # both literals (nothing of the student's) or neither (no expectation to keep back)
        return None
    expression, expected, op = (right, left_value, _MIRROR[op]) if left_ok else (left, right_value, op)
    if op == "is" and expected not in (True, False, None):
        return None
    return expression, expected, op


def seal_cell(source: str) -> SealedCell:
    """The cell as the kernel gets it, each sealable hidden assertion replaced by a call that records its value.
    Line numbers are kept (tracebacks still point at the cell's lines); a cell that does not parse is sent as it
    is (it fails in the kernel the same way)."""
    hidden = _hidden_lines(source)
    if not hidden:
        return SealedCell(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return SealedCell(source)
    lines = source.splitlines(keepends=True)
    found: list[tuple[ast.Assert, ast.expr, Any, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and node.end_lineno is not None and all(
                n in hidden for n in range(node.lineno, node.end_lineno + 1)):
            sealable = _sealable(node)
            if sealable is not None:
                found.append((node, *sealable))
    if not found:
        return SealedCell(source)
    found.sort(key=lambda item: (item[0].lineno, item[0].col_offset))
    seals = []
    # replace from the last to the first, so earlier offsets stay valid
    for number, (node, expression, expected, op) in reversed(list(enumerate(found))):
        text = ast.get_source_segment(source, expression) or ""
        call = f"__import__('sys').modules['{MODULE}'].seal({number}, ({text}), {op == 'is'})"
        first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
        head = lines[first][:node.col_offset]
        tail = lines[last][node.end_col_offset or 0:]
        # the call where the assertion began, then empty lines for the rest of it: line numbers are kept
        replaced = (head + call + tail).splitlines(keepends=True)
        lines[first:last + 1] = replaced + ["\n"] * (last - first + 1 - len(replaced))
        seals.append(Seal(number, expected, op, _message(node.msg), node.lineno))
    seals.reverse()
    return SealedCell("".join(lines), seals)


def judge(cell: SealedCell, reply: Any, kernel_error: bool) -> Verdict:
    """Compare what the kernel recorded (`reply`: the text `take()` returned, or None) with the expected values.
    `kernel_error`: the kernel reported an error for the cell (it fails whatever was recorded)."""
    if not cell.seals:
        return Verdict()
    observed: dict[int, list[Any]] = {}
    unreadable = ""
    if isinstance(reply, str) and len(reply) <= MAX_REPLY:
        try:
            value = ast.literal_eval(reply)
            observed = value if isinstance(value, dict) else {}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            unreadable = "the recorded values could not be read"
    elif reply is not None:
        unreadable = f"the kernel's reply was not recorded values ({type(reply).__name__}, {len(str(reply))} chars)"
    canon = _trusted_canon()
    missing = [s.number for s in cell.seals if not observed.get(s.number)]
    verdict = Verdict(missing=missing, unreadable=unreadable)
    if kernel_error:
        return verdict
    for seal in cell.seals:
        values = observed.get(seal.number) or []
        want = seal.expected if seal.op == "is" else canon(seal.expected)
        ok = bool(values) and all(_holds(v, seal.op, want) for v in values)
        if not ok:
            verdict.failure = seal.message or "a hidden test failed"
            return verdict
    return verdict


def _holds(got: Any, op: str, want: Any) -> bool:
    """`got OP want` on plain data (what the kernel recorded, read as a literal; the expected literal)."""
    try:
        if op == "is":
            return got is want
        if op == "==":
            return bool(got == want)
        if type(got) is bool or not isinstance(got, (int, float)) or not isinstance(want, (int, float)):
            return False  # orderings are kept back only between numbers
        return bool({"<": got < want, "<=": got <= want, ">": got > want, ">=": got >= want}[op])
    except Exception:  # noqa: BLE001 - a comparison that cannot be made is a mismatch
        return False
