"""Deploy checks: after a learner's notebook is graded, the trusted side deploys what they built and scores it. A
lab lists them in lab.yaml by these names (`deploy_checks: ["autograder.deploy:torchserve"]`); the grading engine
calls each as `check(lab, files_dir, work_dir) -> list[Check]` and always gets the same named checks with the same
maximum points, so a class's grades.csv has the same columns whether or not an engine was there (a missing one
makes them "skipped" with 0 points and the reason; docs/deploy-checks.md). One module a deployment:
torchserve_check.py (lab05, with torchserve_sandbox.py), container_check.py (lab06), airflow_check.py (phase1-lab1,
with airflow_inner.py inside the sandbox and airflow_verdict.py reading what it left); common.py holds what they
share. airflow_ui.py holds the learner's own self-check of a run they started in the UI (`autograder dag
--verify-ui-run`), which is not graded.
"""

from __future__ import annotations

from autograder.deploy.airflow_check import airflow_run
from autograder.deploy.airflow_ui import UI_RUN_FILE, source_digest, ui_run_problems
from autograder.deploy.common import HIDE_ENV, course_model, hidden
from autograder.deploy.container_check import container
from autograder.deploy.torchserve_check import torchserve

__all__ = ["HIDE_ENV", "UI_RUN_FILE", "airflow_run", "container", "course_model", "hidden", "source_digest",
           "torchserve", "ui_run_problems"]
