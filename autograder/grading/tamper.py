"""Tamper defences: a static scan of what a student submitted, and the guard that restores the kernel's execution
machinery before every graded test cell.

The scan flags (never zeroes) code that registers IPython transformers or hooks, writes to builtins or sys.modules,
signals or kills processes, loads native code through ctypes, or names paths outside the work folder; each finding
(the course's one `Finding`: a rule id, what the code does, where: "cell 4 line 2" or "app.py:12") is a warning, and
the grade worker lists it as a flag: the submission keeps its score and waits for a person's review.

The guard runs inside the kernel, so it is a defence in depth and not a proof: it is installed before any student
code runs, and before each graded test cell the trusted side asks it (through `user_expressions`, which IPython
evaluates without input transformers or execution hooks) to put back the input and AST transformers, the event
callbacks, the exception hooks, the shell's own methods, builtins and every function or class a locked (read-only)
cell defined. What it had to put back is reported and flags the submission.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from mlinfra.base.results import Finding, at

GUARD_MODULE = "_grader_guard"

# Installed first, as a user expression, before any cell of the student's runs.
GUARD_SETUP = r'''
import builtins as _b, sys as _s, types as _t
_ip = get_ipython()
_m = _t.ModuleType("_grader_guard")
_SHELL_METHODS = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell", "transform_ast",
                  "showtraceback", "_showtraceback", "showsyntaxerror", "should_run_async", "ex", "ev")
_snap = {
    "builtins": dict(_b.__dict__),
    "excepthook": _s.excepthook, "displayhook": _s.displayhook,
    "cleanup": list(_ip.input_transformers_cleanup), "post": list(_ip.input_transformers_post),
    "mgr_cleanup": list(_ip.input_transformer_manager.cleanup_transforms),
    "mgr_line": list(_ip.input_transformer_manager.line_transforms),
    "mgr_token": list(_ip.input_transformer_manager.token_transformers),
    "ast": list(_ip.ast_transformers),
    "events": {k: list(v) for k, v in _ip.events.callbacks.items()},
    "custom_exceptions": _ip.custom_exceptions, "CustomTB": _ip.CustomTB,
    "compile": _ip.compile, "compile_class": type(_ip.compile),
    "kernel": {n: getattr(type(getattr(_ip, "kernel", None)), n, None) for n in ("do_execute", "execute_request")},
    "class": {n: getattr(type(_ip), n) for n in _SHELL_METHODS if hasattr(type(_ip), n)},
    "instance": {n: _ip.__dict__[n] for n in _SHELL_METHODS if n in _ip.__dict__},
    "keep": {},
}
_MISSING = object()
def restore(snap=_snap, ip=_ip, b=_b, s=_s, list=list, dict=dict, setattr=setattr, getattr=getattr):
    done = []
    bd = b.__dict__
    changed = [k for k, v in snap["builtins"].items() if bd.get(k, None) is not v]
    # native extensions built with pybind11 (TensorFlow) keep their registry in builtins: library state, not a
    # student's doing
    extra = [k for k in list(bd) if k not in snap["builtins"] and not k.startswith("__pybind11_internals")]
    if changed or extra:
        for k in extra:
            del bd[k]
        bd.update(snap["builtins"])
        done.append("builtins " + ", ".join(sorted(changed + extra))[:120])
    if ip.user_ns.get("__builtins__", b) is not b:
        ip.user_ns["__builtins__"] = b
        done.append("__builtins__")
    if s.excepthook is not snap["excepthook"]:
        s.excepthook = snap["excepthook"]; done.append("sys.excepthook")
    if s.displayhook is not snap["displayhook"]:
        s.displayhook = snap["displayhook"]; done.append("sys.displayhook")
    mgr = ip.input_transformer_manager
    for label, current, saved in (("input transformers", ip.input_transformers_cleanup, snap["cleanup"]),
                                  ("input transformers", ip.input_transformers_post, snap["post"]),
                                  ("input transformers", mgr.cleanup_transforms, snap["mgr_cleanup"]),
                                  ("input transformers", mgr.line_transforms, snap["mgr_line"]),
                                  ("input transformers", mgr.token_transformers, snap["mgr_token"]),
                                  ("AST transformers", ip.ast_transformers, snap["ast"])):
        if list(current) != saved:
            current[:] = saved
            done.append(label)
    for event, current in ip.events.callbacks.items():
        # Libraries register hooks when imported (matplotlib, torch): only hooks defined in the notebook itself
        # are the student's, and only those are removed.
        theirs = [cb for cb in current if cb not in snap["events"].get(event, [])
                  and (getattr(cb, "__module__", None) or type(cb).__module__ or "__main__") in ("__main__", "builtins")]
        if theirs:
            current[:] = [cb for cb in current if cb not in theirs]
            done.append("event hooks (" + event + ")")
    if ip.custom_exceptions != snap["custom_exceptions"] or ip.CustomTB is not snap["CustomTB"]:
        ip.custom_exceptions = snap["custom_exceptions"]; ip.CustomTB = snap["CustomTB"]
        done.append("custom exception handler")
    if ip.compile is not snap["compile"] or type(ip.compile) is not snap["compile_class"]:
        ip.compile = snap["compile"]; done.append("shell.compile")
    kernel = getattr(ip, "kernel", None)
    for name, saved in snap["kernel"].items():
        if kernel is None or saved is None:
            continue
        if name in kernel.__dict__:  # an instance attribute shadowing the kernel's own method
            del kernel.__dict__[name]; done.append("kernel." + name)
        if getattr(type(kernel), name, None) is not saved:
            setattr(type(kernel), name, saved); done.append("kernel." + name)
    for name, saved in snap["class"].items():
        if name in ip.__dict__ and ip.__dict__[name] is not snap["instance"].get(name, _MISSING):
            if name in snap["instance"]:
                ip.__dict__[name] = snap["instance"][name]
            else:
                del ip.__dict__[name]
            done.append("shell." + name)
        if getattr(type(ip), name) is not saved:
            setattr(type(ip), name, saved); done.append("shell." + name)
    for name, value in snap["keep"].items():
        if ip.user_ns.get(name, _MISSING) is not value:
            ip.user_ns[name] = value; done.append("locked name " + name)
    return sorted(set(done))
def keep(names, snap=_snap, ip=_ip):
    for n in names:
        if n in ip.user_ns:
            snap["keep"][n] = ip.user_ns[n]
    return len(snap["keep"])
_m.restore = restore
_m.keep = keep
_s.modules["_grader_guard"] = _m
'''


def setup_expression() -> str:
    return f"exec(compile({GUARD_SETUP!r}, '<grader-guard>', 'exec'), {{'get_ipython': get_ipython}}) or 'ok'"


RESTORE_EXPRESSION = f"__import__('sys').modules['{GUARD_MODULE}'].restore()"


def keep_expression(names: list[str]) -> str:
    return f"__import__('sys').modules['{GUARD_MODULE}'].keep({sorted(names)!r})"


def defined_names(source: str) -> list[str]:
    """The helpers a locked cell defines at top level (functions and classes): what the tests call, and what a
    student could redefine to make them pass. Plain variables are left alone: locked cells and tests rebind them
    as they go (inside `with` blocks, loops, hidden tests), and a student rebinding one is not a forgery."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names = [node.name for node in tree.body
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return sorted(set(names))


# ---------------------------------------------------------------------------------------------- the static scan


# The scan's rule ids: what kind of machinery the code reaches for.
IPYTHON_HOOK = "ipython-hook"  # transformers, magics, event callbacks, the shell's own methods
INTERPRETER_HOOK = "interpreter-hook"  # sys's exception, display, trace, profile and audit hooks
SIGNALS = "signals"  # signalling or killing processes (the grader's, another student's)
CODE_OBJECT = "code-object"
BUILTINS = "builtins"
SYS_MODULES = "sys-modules"
NATIVE_CODE = "native-code"
GRADER_GUARD = "grader-guard"
OUTSIDE_PATH = "outside-path"

Flag = tuple[str, str]  # (rule id, what the code does)

_ATTR_FLAGS: dict[str, Flag] = {
    "input_transformers_cleanup": (IPYTHON_HOOK, "registers an IPython input transformer"),
    "input_transformers_post": (IPYTHON_HOOK, "registers an IPython input transformer"),
    "input_transformer_manager": (IPYTHON_HOOK, "touches IPython's input transformer manager"),
    "ast_transformers": (IPYTHON_HOOK, "registers an IPython AST transformer"),
    "register_magic_function": (IPYTHON_HOOK, "registers an IPython magic"),
    "set_custom_exc": (IPYTHON_HOOK, "replaces IPython's exception handler"),
    "excepthook": (INTERPRETER_HOOK, "replaces the exception hook"),
    "displayhook": (INTERPRETER_HOOK, "replaces the display hook"),
    "CustomTB": (IPYTHON_HOOK, "replaces IPython's exception handler"),
    "showtraceback": (IPYTHON_HOOK, "replaces IPython's traceback display"),
    "run_cell": (IPYTHON_HOOK, "replaces IPython's cell runner"),
    "transform_cell": (IPYTHON_HOOK, "replaces IPython's cell transformer"),
    "settrace": (INTERPRETER_HOOK, "installs a trace function"),
    "setprofile": (INTERPRETER_HOOK, "installs a profile function"),
    "addaudithook": (INTERPRETER_HOOK, "installs an audit hook"),
    "killpg": (SIGNALS, "sends signals to other processes (os.killpg)"),
    "pidfd_send_signal": (SIGNALS, "sends signals to other processes"),
    "__code__": (CODE_OBJECT, "rewrites a function's code object"),
    "__builtins__": (BUILTINS, "touches __builtins__"),
}
_NAME_FLAGS: dict[str, Flag] = {
    "ctypes": (NATIVE_CODE, "loads native code (ctypes)"),
    "cffi": (NATIVE_CODE, "loads native code (cffi)"),
    GUARD_MODULE: (GRADER_GUARD, "touches the grader's guard"),
}
_EVENT_HOOK: Flag = (IPYTHON_HOOK, "registers an IPython event hook")
_EVENTS = re.compile(r"\bevents\s*\.\s*register\b")
_OUTSIDE_PATH = re.compile(r"^/(work|home|root|etc|proc|sys|var|opt|mnt|srv|run|usr|farm)/[^\s]|^~/|(^|/)\.\./|"
                           r"(^|/)(solutions|autograded|submitted)/|gradebook\.db|\.ipython/profile")


def _flag_node(node: ast.AST) -> Flag | None:
    if isinstance(node, ast.Attribute):
        if node.attr in _ATTR_FLAGS:
            return _ATTR_FLAGS[node.attr]
        base = node.value
        if isinstance(base, ast.Name):
            if base.id == "os" and node.attr == "kill":
                return SIGNALS, "sends signals to other processes (os.kill)"
            if base.id in ("builtins", "__builtins__") and isinstance(getattr(node, "ctx", None), (ast.Store, ast.Del)):
                return BUILTINS, "writes to builtins"
            if base.id == "sys" and node.attr == "modules":
                return SYS_MODULES, "touches sys.modules"
            if base.id == "signal" and node.attr in ("pthread_kill", "raise_signal"):
                return SIGNALS, "sends signals"
    if isinstance(node, ast.Name) and node.id in _NAME_FLAGS:
        return _NAME_FLAGS[node.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for mod in mods:
            top = mod.split(".")[0]
            if top in _NAME_FLAGS:
                return _NAME_FLAGS[top]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
            and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id in ("builtins", "__builtins__")):
        return BUILTINS, "writes to builtins"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
        value = node.value.strip()
        if value and "\n" not in value and _OUTSIDE_PATH.search(value):
            return OUTSIDE_PATH, f"names a path outside the work folder ({value[:60]!r})"
    return None


def scan_source(source: str, where: str) -> list[Finding]:
    """Findings in one piece of Python (a cell or a file); `where` is 'cell 4' or 'app.py'."""
    text = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    def place(line: int) -> str:  # a cell's line reads "cell 4 line 2", a file's "app.py:12"
        return f"{where} line {line}" if where.startswith("cell") else at(where, line)

    found: list[Finding] = []
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        flag = _flag_node(node)
        line = getattr(node, "lineno", 0)
        if flag and (line, flag[1]) not in seen:
            seen.add((line, flag[1]))
            found.append(Finding(flag[0], flag[1], place(line), severity="warning"))
    for number, line in enumerate(text.splitlines(), start=1):
        if _EVENTS.search(line) and (number, _EVENT_HOOK[1]) not in seen:
            found.append(Finding(_EVENT_HOOK[0], _EVENT_HOOK[1], place(number), severity="warning"))
    return sorted(found, key=lambda f: (f.where, f.message))


def scan_submission(nb: Any, files_dir: Path | None, editable: tuple[str, ...]) -> list[Finding]:
    """Scan the cells a student could edit (not the locked ones, which grading restores) and their Python files."""
    findings: list[Finding] = []
    for index, cell in enumerate(getattr(nb, "cells", []), start=1):
        if cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") and not meta.get("solution"):
            continue  # replaced from the source by nbgrader before it runs
        findings += scan_source(str(cell.get("source", "")), f"cell {index}")
    if files_dir is not None:
        for rel in editable:
            path = files_dir / rel
            if path.suffix == ".py" and path.is_file() and not path.is_symlink():
                try:
                    findings += scan_source(path.read_text(errors="replace")[:500_000], rel)
                except OSError:
                    continue
    return findings
