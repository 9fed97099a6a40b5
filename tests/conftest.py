from __future__ import annotations

import os
from pathlib import Path

from autograder.nbgrader_course import ensure_venv_tools_on_path

ROOT = Path(__file__).resolve().parent.parent

# pytest may be started without `make` (and without activating the venv): give every test the same ground.
os.environ.setdefault("WORKBOOK_ROOT", str(ROOT))
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".state" / "airflow"))
ensure_venv_tools_on_path()
