"""`autograder release --student-dist`: the class copy holds no answers, each kind of leak is caught, nothing it
ships passes the assessment, and it works on its own from a git clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder.classcopy import OMIT_LIBRARY, assess_fails, find_class_copy_leaks, shipped_apps
from autograder.errors import UsageError
from autograder.generate import student_dist

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
@pytest.fixture(scope="module")
def class_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("class") / "copy"
    student_dist(ROOT, dest)
    return dest


def test_the_class_copy_has_what_students_need_and_no_answers(class_copy: Path) -> None:
    for item in ("labs/lab01-environment", "modules", "mlinfra", "autograder", "quizzes/outcomes.yaml",
                 "README.md", "Makefile", "scripts/setup.sh", "docs/quizzes.md"):
        assert (class_copy / item).exists(), item
    for absent in ("solutions", "tests", "bench", *OMIT_LIBRARY):
        assert not (class_copy / absent).exists(), absent
    contract = (class_copy / "mlinfra" / "contract.py").read_text()
    assert "class PredictResponse" not in contract and "left out of the class copy" in contract
    assert "class-copy: omit" not in contract
    readme = (class_copy / "README.md").read_text()
    makefile = (class_copy / "Makefile").read_text()
    for text in (readme, makefile):
        assert "solutions/" not in text and "tests/samples" not in text and "-m pytest" not in text
    assert "--wheels labs/lab06-docker/requirements.txt" in makefile
    assert "make exam" in readme and "make submit" in readme and "workspace/quizzes/" in readme


def test_leak_check_finds_nothing(class_copy: Path) -> None:
    assert find_class_copy_leaks(ROOT, class_copy) == []


def test_leak_check_catches_each_kind_of_leak(class_copy: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(class_copy, copy)
    # the reference service and handler, and the unscrubbed contract module
    shutil.copyfile(ROOT / "mlinfra" / "service.py", copy / "mlinfra" / "service.py")
    shutil.copyfile(ROOT / "mlinfra" / "torchserve_handler.py", copy / "mlinfra" / "helpers.py")
    shutil.copyfile(ROOT / "mlinfra" / "contract.py", copy / "mlinfra" / "contract.py")
    # one solution line pasted into the lab's released file, one hidden-test line into a lesson
    hidden = 'assert check_python((4, 0, 0))["status"] == "pass", "compare versions as tuples, not digit by digit"'
    nb_path = copy / "modules" / "01-foundations-of-ml-infrastructure" / "02-environment-setup.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][-1]["source"] = "".join(nb["cells"][-1]["source"]) + "\n" + hidden
    nb_path.write_text(json.dumps(nb))
    app = copy / "labs" / "lab07-api" / "app.py"
    app.write_text(app.read_text() + '\nif len(data) > MAX_UPLOAD_BYTES:\n    raise HTTPException(413, "big")\n')
    # a summative quiz copy that carries its explanations
    bank = yaml.safe_load((ROOT / "quizzes" / "module01.yaml").read_text())
    quiz = yaml.safe_load((copy / "quizzes" / "module01.yaml").read_text())
    quiz["questions"][0]["explanation"] = bank["questions"][0]["explanation"]
    (copy / "quizzes" / "module01.yaml").write_text(yaml.safe_dump(quiz))
    leaks = "\n".join(find_class_copy_leaks(ROOT, copy))
    assert "mlinfra/service.py: the reference code" in leaks
    assert "mlinfra/service.py:" in leaks and "lines of lab07-api's solution" in leaks
    assert "mlinfra/helpers.py:" in leaks and "lab05-torchserve's solution" in leaks
    assert "mlinfra/contract.py:" in leaks
    assert "02-environment-setup.ipynb: a hidden-test line" in leaks
    assert "labs/lab07-api/app.py: a line of lab07-api's solution" in leaks
    assert "quizzes/module01.yaml: question" in leaks and "holds explanation" in leaks


@pytest.mark.slow
def test_every_shipped_app_fails_the_assessment(class_copy: Path) -> None:
    specs = shipped_apps(class_copy)
    assert "mlinfra.service:app" in specs and "labs/lab07-api/app.py:app" in specs
    for spec in specs:
        failed, detail = assess_fails(class_copy, spec)
        # exit 1: assess ran and the service fell short (exit 2 would mean assess itself could not run)
        assert failed and detail.startswith("exit 1"), f"assess --app {spec} in the class copy: {detail}"


def _make(clone: Path, target: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBOOK_ROOT", "PYTHONPATH", "MAKEFLAGS")}
    return subprocess.run(["make", "--no-print-directory", target, f"VENV={VENV}"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_class_copy_works_from_a_fresh_clone(class_copy: Path, tmp_path: Path) -> None:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to clone the class copy and run its targets")
    origin = tmp_path / "origin"
    shutil.copytree(class_copy, origin)
    git = ["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "class copy"]):
        subprocess.run([*git, *args], cwd=origin, check=True, capture_output=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True, capture_output=True)
    probe = "import autograder, mlinfra; print(autograder.__file__); print(mlinfra.__file__)"
    which = subprocess.run([str(VENV / "bin" / "python"), "-c", probe],
                           cwd=clone, capture_output=True, text=True, check=True,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert which.stdout.count(str(clone)) == 2, f"the clone must run its own code: {which.stdout}"
    listed = _make(clone, "help")
    assert listed.returncode == 0 and "make exam" in listed.stdout
    for target in ("test", "outcomes"):  # the targets that need no set-up, engine or network
        done = _make(clone, target)
        assert done.returncode == 0, f"make {target} in a clone of the class copy: {done.stdout}{done.stderr}"
    assert "no lab started yet" in _make(clone, "test").stdout
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True)
    assert status.stdout == "", f"running the targets left untracked files: {status.stdout}"


def test_student_dist_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        student_dist(ROOT, tmp_path / "x")
