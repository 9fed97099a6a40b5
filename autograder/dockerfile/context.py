"""The Docker lab's build context: the lab folder plus the service code and the trained model.

The lab's Dockerfile copies `requirements.txt`, `mlinfra/` (the course's reference service: only the modules it
imports, none of the training code) and `model/` (model.pt, labels.json, model_card.json) from its own folder.
`stage_service` puts the last two there; `autograder dockerfile --build` stages into a temporary copy instead, so
the learner's folder is left as it was.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from autograder.errors import UsageError

# What `mlinfra.service` imports, and nothing else: no torchvision, no Airflow, no training stack in the image.
SERVICE_MODULES = ("__init__.py", "contract.py", "modelstore.py", "service.py")
MODEL_FILES = ("model.pt", "labels.json", "model_card.json")


def service_package() -> Path:
    import mlinfra.base  # a module's own file: with tests/ on sys.path, `mlinfra` alone is a namespace (no __file__)

    return Path(mlinfra.base.__file__).resolve().parents[1]


def default_model_dir() -> Path:
    from autograder.paths import repo_root
    from mlinfra.modelstore import model_dir_from_env

    folder = model_dir_from_env()
    if not folder.is_absolute() and not folder.is_dir():
        with contextlib.suppress(UsageError):
            folder = repo_root() / folder
    return folder


def stage_service(context: Path, model_dir: Path | None = None, *, replace: bool = False) -> list[str]:
    """Copy the service code into `context`/mlinfra and the model into `context`/model; what was copied.

    Existing folders are kept unless `replace`, so a learner's own edits there win.
    """
    copied: list[str] = []
    package = context / "mlinfra"
    if replace or not package.is_dir():
        package.mkdir(parents=True, exist_ok=True)
        for name in SERVICE_MODULES:
            source = service_package() / name
            if name == "service.py" and not source.is_file():
                # A class copy leaves the reference service out (docs/class-copy.md): the image serves the
                # learner's own API from exercise 07 instead, under the name the Dockerfile's CMD expects.
                source = _learners_own_service()
            shutil.copyfile(source, package / name)
        copied.append("mlinfra/")
    target = context / "model"
    if replace or not target.is_dir():
        source = Path(model_dir) if model_dir else default_model_dir()
        missing = [n for n in MODEL_FILES if not (source / n).is_file()]
        if missing:
            raise UsageError(f"model folder {source} lacks {', '.join(missing)}: run `make model` first, or point "
                             "$MLINFRA_MODEL_DIR (or --model-dir) at a folder holding model.pt, labels.json and "
                             "model_card.json")
        target.mkdir(parents=True, exist_ok=True)
        for name in MODEL_FILES:
            shutil.copyfile(source / name, target / name)
        copied.append("model/")
    return copied


def _learners_own_service() -> Path:
    from autograder.paths import repo_root, workspace_dir

    own = workspace_dir(repo_root()) / "lab07-api" / "app.py"
    if not own.is_file():
        raise UsageError(f"{own} not found: this copy of the course has no reference service, so the image serves "
                         "your exercise 07 app; open lab07-api with `make lab`, write app.py, then build again")
    return own


def needs_service(dockerfile_text: str) -> bool:
    """Does this Dockerfile copy the lab's `mlinfra/` or `model/` folders (so staging them makes sense)?"""
    import re

    return bool(re.search(r"^\s*(COPY|ADD)\b[^\n]*\s(\./)?(mlinfra|model)/?\s", dockerfile_text, re.MULTILINE))


def staged_copy(dockerfile: Path, model_dir: Path | None = None) -> tuple[Path, Path, list[str]]:
    """A temporary build context: a copy of the Dockerfile's folder, with the service staged if it uses it.

    Returns (context, dockerfile in it, what was staged). The caller removes the context's parent folder.
    """
    tmp = Path(tempfile.mkdtemp(prefix="autograder-docker-"))
    context = tmp / "context"
    shutil.copytree(dockerfile.parent, context, symlinks=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", ".git", ".venv"))
    staged: list[str] = []
    if needs_service(dockerfile.read_text()):
        staged = stage_service(context, model_dir)
    return context, context / dockerfile.name, staged
