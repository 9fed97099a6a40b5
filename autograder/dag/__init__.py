"""The DAG checker, `autograder dag` (its face: cli.py; the check: checker.py): load any Airflow DAG file with Airflow's own DagBag, check its structure, and (with
--run) execute it end to end twice for one logical date to show each task's state and whether it is
idempotent.

Everything Airflow-related happens in a worker process with its own AIRFLOW_HOME (autograder.dag.isolate), so
the check never touches ~/airflow or a running Airflow, and `autograder --help` never imports Airflow.
"""
