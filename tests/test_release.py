"""Release pipeline: stripping, the sync check and the leak check, each shown able to fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.errors import UsageError
from autograder.generate import check_in_sync, find_leaks, release, strip_solution_regions

ROOT = Path(__file__).resolve().parent.parent


def test_python_region_becomes_stub_at_marker_indent() -> None:
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x * 2\n    ### END SOLUTION\n"
    assert strip_solution_regions(src, Path("app.py")) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )


@pytest.mark.parametrize("name", ["Dockerfile", "config.yaml", "config.properties"])
def test_other_files_get_a_comment(name: str) -> None:
    src = "A 1\n### BEGIN SOLUTION\nUSER app\n### END SOLUTION\nB 2\n"
    assert strip_solution_regions(src, Path(name)) == "A 1\n# YOUR CODE HERE\nB 2\n"


@pytest.mark.parametrize(
    ("text", "line"),
    [("### BEGIN SOLUTION\nx = 1\n", 1), ("x = 1\n### END SOLUTION\n", 2),
     ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", 2), ("### BEGIN HIDDEN TESTS\n", 1)],
)
def test_bad_markers_name_the_line(text: str, line: int) -> None:
    with pytest.raises(UsageError, match=rf"app\.py:{line}:"):
        strip_solution_regions(text, Path("app.py"))


@pytest.fixture
def mini_course(tmp_path: Path) -> Path:
    """A course with one small lab, released, so the checks can be tampered with."""
    (tmp_path / "solutions").mkdir()
    shutil.copytree(ROOT / "solutions" / "lab01-environment", tmp_path / "solutions" / "lab01-environment")
    (tmp_path / "solutions" / "lab01-environment" / "helper.py").write_text(
        "def scale(values):\n    ### BEGIN SOLUTION\n    return [v * secret_factor for v in values]\n"
        "    ### END SOLUTION\n"
    )
    release(tmp_path)
    return tmp_path


@pytest.mark.slow
def test_checks_pass_on_a_fresh_release_and_catch_tampering(mini_course: Path) -> None:
    lab = mini_course / "labs" / "lab01-environment"
    assert "raise NotImplementedError()" in (lab / "helper.py").read_text()
    assert check_in_sync(mini_course) == []
    assert find_leaks(mini_course) == []

    # A solution line pasted into a released file is a leak, even without any marker.
    (lab / "helper.py").write_text("def scale(values):\n    return [v * secret_factor for v in values]\n")
    assert any("helper.py:2" in leak for leak in find_leaks(mini_course))
    assert any("helper.py: differs" in p for p in check_in_sync(mini_course))

    # So is a hidden test line inside the released notebook.
    nb_path = lab / "lab01-environment.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    hidden = 'assert check_python((4, 0, 0))["status"] == "pass", "compare versions as tuples, not digit by digit"'
    assert all(hidden not in cell.source for cell in nb.cells), "the release must not carry hidden tests"
    nb.cells[-1].source += "\n" + hidden
    nbformat.write(nb, nb_path)
    assert any("lab01-environment.ipynb" in leak for leak in find_leaks(mini_course))


@pytest.mark.slow
def test_repository_labs_are_in_sync_and_leak_free() -> None:
    problems = check_in_sync(ROOT)
    assert problems == [], f"labs/ is stale; run `make release`: {problems[:5]}"
    leaks = find_leaks(ROOT)
    assert leaks == [], f"solution lines under labs/: {leaks[:5]}"


def test_student_dist_verb_prints_only_json_with_json_dash(tmp_path: Path, capsys) -> None:
    import json

    from autograder.cli import main

    code = main(["release", "--student-dist", str(tmp_path / "class"), "--json", "-"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # stdout is the JSON and nothing else
    assert "class copy written to" in captured.err
    assert data["subject"].startswith("class copy") and "leak" in json.dumps(data["checks"])
    assert code == (0 if data["passed"] else 1)


def test_release_verb_usage_errors_are_one_line(tmp_path: Path, capsys) -> None:
    from autograder.cli import main

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    assert main(["release", "--student-dist", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0]
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["release", "--student-dist", str(tmp_path / "c"), "--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0]
