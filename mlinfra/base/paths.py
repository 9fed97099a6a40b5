"""Where things live in the workbook. Every path is derived from the repository root, never from the cwd's luck."""

from __future__ import annotations

import os
from pathlib import Path

from mlinfra.base.errors import UsageError

MARKER_FILES = ("pyproject.toml", "Makefile")


def repo_root(start: Path | None = None) -> Path:
    """The workbook's root: $WORKBOOK_ROOT if set, else the nearest parent holding labs/ and the marker files."""
    env = os.environ.get("WORKBOOK_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "labs").is_dir() and all((candidate / m).exists() for m in MARKER_FILES):
            return candidate
    # Installed in editable mode: the package sits in the checkout.
    package_parent = Path(__file__).resolve().parents[2]
    if (package_parent / "labs").is_dir():
        return package_parent
    raise UsageError(
        f"no workbook found at or above {here}: run this inside the course checkout, or set WORKBOOK_ROOT"
    )


def state_dir(root: Path) -> Path:
    """Ignored folder for tool state: gradebooks, Airflow home, logs, run outputs that are not the learner's."""
    return root / ".state"


def log_dir() -> Path:
    """Where the runner keeps tracebacks of unexpected errors: the workbook's .state/logs, else a temp folder."""
    try:
        return state_dir(repo_root()) / "logs"
    except UsageError:
        import tempfile

        return Path(tempfile.gettempdir()) / "mlinfra-workbook-logs"
