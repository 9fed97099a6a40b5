"""Where things live in the workbook. Every path is derived from the repository root, never from the cwd's luck."""

from __future__ import annotations

import os
from pathlib import Path

from autograder.errors import UsageError

MARKER_FILES = ("pyproject.toml", "Makefile")


def repo_root(start: Path | None = None) -> Path:
    """The workbook's root: $WORKBOOK_ROOT if set, else the nearest parent holding solutions/ or labs/."""
    env = os.environ.get("WORKBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "labs").is_dir() and all((candidate / m).exists() for m in MARKER_FILES):
            return candidate
    # Installed in editable mode: the package sits in the checkout.
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "labs").is_dir():
        return package_parent
    raise UsageError(
        f"no workbook found at or above {here}: run this inside the course checkout, or set WORKBOOK_ROOT"
    )


def solutions_dir(root: Path) -> Path:
    return root / "solutions"


def labs_dir(root: Path) -> Path:
    return root / "labs"


def workspace_dir(root: Path) -> Path:
    """The learner's own copies of the labs (ignored by git, made on first open)."""
    return root / "workspace"


def state_dir(root: Path) -> Path:
    """Ignored folder for tool state: gradebooks, Airflow home, run outputs that are not the learner's."""
    return root / ".state"
