"""Where things live in the workbook. Every path is derived from the repository root, never from the cwd's luck."""

from __future__ import annotations

from pathlib import Path

from mlinfra.base.paths import MARKER_FILES, repo_root, state_dir

__all__ = ["MARKER_FILES", "labs_dir", "repo_root", "solutions_dir", "state_dir", "workspace_dir"]


def solutions_dir(root: Path) -> Path:
    return root / "solutions"


def labs_dir(root: Path) -> Path:
    return root / "labs"


def workspace_dir(root: Path) -> Path:
    """The learner's own copies of the labs (ignored by git, made on first open)."""
    return root / "workspace"

