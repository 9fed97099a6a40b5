"""The layers of docs/architecture.md: the course library never imports the grading package, the shared base
imports neither, and no modules import each other in a circle. Read from the source (every import statement, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            if module.split(".")[0] in forbidden or any(module.startswith(f + ".") for f in forbidden if "." in f):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


def test_the_course_library_never_imports_the_grader() -> None:
    assert _violations("mlinfra", ("autograder",)) == []


def test_the_base_imports_neither_package() -> None:
    bad = [v for v in _violations("mlinfra/base", ("autograder", "mlinfra")) if "imports mlinfra.base" not in v]
    assert bad == []


@pytest.mark.parametrize("package", ["mlinfra", "autograder"])
def test_the_check_itself_can_fail(package: str, tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from autograder.errors import UsageError\n")
    assert _imports(sample) == [(2, "autograder.errors")]


def _module_graph(packages: tuple[str, ...] = ("autograder", "mlinfra")) -> dict[str, set[str]]:
    """Which of our modules each of our modules imports: every import statement, those inside functions and under
    TYPE_CHECKING included (a circle of type hints is still a circle). `from pkg import sub` counts as importing
    pkg.sub; a module's own parent packages are not counted (Python imports them first, whatever the code says)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def ours(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in map(ours, targets):
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circles() -> None:
    circles = _circles(_module_graph())
    assert not circles, f"modules that import each other (move the shared part into a module both import): {circles}"


def test_the_circle_finder_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_no_test_folder_shadows_a_course_package() -> None:
    """pytest puts tests/ on sys.path: a tests/mlinfra folder made `mlinfra` a namespace package there (its
    __file__ None) wherever the checkout itself was not on sys.path, and the sandboxes' PYTHONPATH failed."""
    root = Path(__file__).resolve().parents[1]
    packages = {p.parent.name for p in root.glob("*/__init__.py")}
    shadows = [str(p.relative_to(root)) for p in (root / "tests").rglob("*") if p.is_dir() and p.name in packages]
    assert not shadows, f"rename these test folders: {shadows}"


def test_every_verb_lives_in_one_of_two_places() -> None:
    """A verb with a package of its own (its engine below it) is that package's cli.py; a verb that is a thin face
    over engines elsewhere is a top-level module. Both have the same shape: register(sub) and run(args)."""
    from autograder.cli import COMMANDS

    root = Path(__file__).resolve().parents[1]
    for verb, module in COMMANDS.items():
        parts = module.split(".")
        assert parts[0] == "autograder" and (len(parts) == 2 or (len(parts) == 3 and parts[2] == "cli")), (verb, module)
        source = (root / Path(*parts)).with_suffix(".py").read_text()
        assert "\ndef register(sub" in source, (verb, module)
        assert len(parts) == 3 or not (root / "autograder" / parts[1]).is_dir(), (verb, module)


# Module names used more than once in autograder/ and mlinfra/, each with the one meaning all its files share.
SHARED_NAMES = {
    "__init__", "__main__",
    "cli",  # a verb's face (argparse), below autograder/cli.py's dispatch
    "engine",  # a grading engine: grading/engine.py (local pool) and grading/airflow/engine.py (on Airflow)
    "report",  # a verb's result for people and machines (dag, assess)
    "checks",  # the checks a verb applies to what it reads (dag, quiz)
    "errors", "paths",  # autograder's re-export of mlinfra.base's
}


def test_no_two_modules_share_a_name_for_different_things() -> None:
    root = Path(__file__).resolve().parents[1]
    seen: dict[str, list[str]] = {}
    for path in [*root.glob("autograder/**/*.py"), *root.glob("mlinfra/**/*.py")]:
        if "templates" not in path.parts:
            seen.setdefault(path.stem, []).append(str(path.relative_to(root)))
    twice = {name: paths for name, paths in seen.items() if len(paths) > 1 and name not in SHARED_NAMES}
    assert not twice, f"rename one of each, or add the shared meaning to SHARED_NAMES: {twice}"


def _own_module(root: Path, dotted: str) -> bool:
    path = root / Path(*dotted.split("."))
    return dotted.split(".")[0] in ("autograder", "mlinfra") and (path.with_suffix(".py").is_file() or path.is_dir())


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """`from autograder.x import _helper` or `x._helper(...)` across modules: a name another module needs is
    public, so whoever changes it sees who uses it."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in [*root.glob("autograder/**/*.py"), *root.glob("mlinfra/**/*.py")]:
        if "templates" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        modules: set[str] = set()  # names this file binds to one of our modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if _own_module(root, f"{node.module}.{alias.name}"):
                        modules.add(alias.asname or alias.name)
                    elif node.module.split(".")[0] in ("autograder", "mlinfra") and alias.name.startswith("_") \
                            and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and _own_module(root, alias.name):
                        modules.add(alias.asname)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{path.relative_to(root)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, found
