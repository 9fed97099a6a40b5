"""The lab manifest: `lab.yaml` beside each lab's notebook, read and validated in one place.

Example (solutions/lab07-api/lab.yaml)::

    title: "Exercise 07: FastAPI for model inference"
    notebook: lab07-api.ipynb
    editable: [app.py]          # learner-edited files nbgrader must not overwrite when grading (paths
                                # relative to the lab folder; no globs: nbgrader matches exact paths)
    cell_timeout: 120           # seconds a single cell may run while grading or self-checking
    notebook_timeout: 600       # seconds the whole notebook may run
    memory_mb: 4096             # address-space cap for one submission's grading
    outcomes: [u1-api]          # optional: the course's learning-outcome ids this lab practises and grades
                                # (defined in quizzes/outcomes.yaml; `autograder quiz coverage` reads them)
    warm_imports: [onnxscript]  # optional: modules a batch's zygote imports once, ahead of every student's
                                # kernel (autograder/grading/zygote.py); only modules that read and write
                                # nothing of HOME, the working folder or a config folder, set no environment
                                # variable and start no thread when imported (torch._dynamo fails the third: it
                                # sets TORCHINDUCTOR_CACHE_DIR after the grader's user name); measure a batch
                                # with and without (lab03's torch compiler and ONNX stack: 11.9 -> 7.0 CPU-s in
                                # a forked child alone, yet its batch of 10 took 303 -> 357 CPU-s, twice)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError
from autograder.paths import labs_dir, solutions_dir

MANIFEST = "lab.yaml"
# A plain nbgrader course (COURSE/nbgrader_config.py beside COURSE/source/<assignment>/) needs no lab.yaml: its
# assignments are read as labs with the course's defaults (`assignment_lab`).
NBGRADER_CONFIG = "nbgrader_config.py"
# What a lab folder may hold that is not part of the lab: caches, editor litter, and the data and runs a lab's
# code writes when executed. Release, submit and grade all skip these names wherever they appear in a path.
# environment_report.json: what running lab01's notebook writes (the machine's paths), never part of the lab
NOT_LAB_FILES = frozenset({"__pycache__", ".ipynb_checkpoints", ".DS_Store", ".pytest_cache", "runs", "data",
                           "environment_report.json"})
_FIELDS = {"title", "notebook", "editable", "cell_timeout", "notebook_timeout", "memory_mb", "outcomes",
           "deploy_checks", "warm_imports"}
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Lab:
    name: str
    folder: Path
    title: str
    notebook: str
    editable: tuple[str, ...] = ()
    cell_timeout: int = 60
    notebook_timeout: int = 600
    memory_mb: int = 4096
    outcomes: tuple[str, ...] = ()
    deploy_checks: tuple[str, ...] = ()  # "module:function", run on the trusted side after the notebook is graded
    warm_imports: tuple[str, ...] = ()  # modules the grading zygote imports ahead of the kernels (zygote.py)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def notebook_path(self) -> Path:
        return self.folder / self.notebook


def _positive_int(path: Path, data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadConfig(path, key, f"expected a positive whole number, got {value!r}")
    return value


def load_lab(folder: Path) -> Lab:
    # Validated by hand, not with pydantic (as mlinfra.config is): most fields need checks against the lab folder
    # (files exist, no globs, "module:function" deploy checks) that would be custom validators anyway.
    path = folder / MANIFEST
    if not path.is_file():
        if course_root_of(folder) is not None:  # an assignment of a plain nbgrader course: no lab.yaml needed
            return assignment_lab(folder)
        raise UsageError(f"{path} is missing: every lab folder needs a {MANIFEST} (see README, 'Adding a lab')")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise BadConfig(path, where, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise BadConfig(path, "", "expected a mapping of keys (title, notebook, ...)")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise BadConfig(path, unknown[0], f"unknown key; allowed keys are {', '.join(sorted(_FIELDS))}")
    for key in ("title", "notebook"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise BadConfig(path, key, "required, a non-empty string")
    editable = data.get("editable", [])
    if not isinstance(editable, list) or not all(isinstance(e, str) for e in editable):
        raise BadConfig(path, "editable", "expected a list of file paths relative to the lab folder")
    for entry in editable:
        if any(c in entry for c in "*?[") or not (folder / entry).is_file():
            raise BadConfig(path, "editable", f"{entry!r} is not a file of the lab (exact paths, no globs): grading "
                            "would overwrite the learner's version with the solution's")
    outcomes = data.get("outcomes", [])
    if not isinstance(outcomes, list) or not all(isinstance(o, str) and o.strip() for o in outcomes):
        raise BadConfig(path, "outcomes", "expected a list of learning-outcome ids, e.g. [u1-api] (the ids are in "
                        "quizzes/outcomes.yaml)")
    deploy_checks = data.get("deploy_checks", [])
    if not isinstance(deploy_checks, list) or not all(
            isinstance(d, str) and d.count(":") == 1 and all(part.strip() for part in d.split(":")) for d in deploy_checks):
        raise BadConfig(path, "deploy_checks", "expected a list of \"module:function\" strings, e.g. "
                        "[\"autograder.deploy:torchserve\"] (docs/grading.md, 'Deploy checks')")
    warm_imports = data.get("warm_imports", [])
    if not isinstance(warm_imports, list) or not all(
            isinstance(m, str) and _MODULE_NAME.fullmatch(m) for m in warm_imports):
        raise BadConfig(path, "warm_imports", "expected a list of importable module names, e.g. [onnxscript] "
                        "(the grading zygote imports them ahead of every kernel: see autograder/grading/zygote.py)")
    return Lab(
        name=folder.name,
        folder=folder,
        title=data["title"],
        notebook=data["notebook"],
        editable=tuple(editable),
        cell_timeout=_positive_int(path, data, "cell_timeout", 60),
        notebook_timeout=_positive_int(path, data, "notebook_timeout", 600),
        memory_mb=_positive_int(path, data, "memory_mb", 4096),
        outcomes=tuple(outcomes),
        deploy_checks=tuple(deploy_checks),
        warm_imports=tuple(warm_imports),
    )


def lab_files(folder: Path) -> list[Path]:
    """The lab's own files under `folder`, as relative paths, sorted."""
    return [path.relative_to(folder) for path in sorted(folder.rglob("*"))
            if path.is_file() and not NOT_LAB_FILES.intersection(path.relative_to(folder).parts)]


def lab_names(root: Path, *, source: bool = True) -> list[str]:
    base = solutions_dir(root) if source else labs_dir(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / MANIFEST).is_file())


def find_lab(root: Path, name: str, *, source: bool = True) -> Lab:
    base = solutions_dir(root) if source else labs_dir(root)
    folder = base / name
    if not (folder / MANIFEST).is_file():
        known = ", ".join(lab_names(root, source=source)) or "none yet"
        raise UsageError(f"no lab named {name!r} under {base}/ (labs: {known})")
    return load_lab(folder)


def course_root_of(folder: Path) -> Path | None:
    """The plain nbgrader course an assignment folder belongs to (COURSE/source/<assignment>/ beside
    COURSE/nbgrader_config.py), or None."""
    folder = Path(folder)
    root = folder.parent.parent
    if folder.parent.name == "source" and (root / NBGRADER_CONFIG).is_file() and folder.is_dir():
        return root
    return None


def assignment_lab(folder: Path) -> Lab:
    """A plain nbgrader assignment (COURSE/source/<name>/) as a Lab, with no lab.yaml to write: its one notebook,
    the course's defaults for limits (a lab.yaml in the assignment folder, when there is one, wins), and the cell
    timeout from nbgrader_config.py's `c.Execute.timeout` when it sets one. The config file is the instructor's
    own and is read as nbgrader reads it (it is Python)."""
    folder = Path(folder)
    notebooks = sorted(p.name for p in folder.glob("*.ipynb") if p.is_file() and not NOT_LAB_FILES & {p.name})
    if len(notebooks) != 1:
        raise UsageError(f"{folder}: an assignment is graded with one notebook; found "
                         f"{', '.join(notebooks) or 'none'} (split it into one assignment per notebook)")
    timeout = _config_value(folder.parent.parent / NBGRADER_CONFIG, "Execute", "timeout")
    cell_timeout = int(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) \
        and timeout > 0 else 60
    return Lab(name=folder.name, folder=folder, title=folder.name, notebook=notebooks[0],
               cell_timeout=cell_timeout, notebook_timeout=max(600, cell_timeout * 10))


def _config_value(path: Path, section: str, key: str) -> Any:
    from traitlets.config.loader import PyFileConfigLoader

    try:
        config = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    except Exception as exc:  # noqa: BLE001 - any error in the instructor's Python config file
        raise BadConfig(path, "", f"nbgrader could not read it either ({type(exc).__name__}: {exc})") from None
    return config.get(section, {}).get(key)
