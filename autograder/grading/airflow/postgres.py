"""The services a CeleryExecutor run needs, and the scratch state it leaves on them: PostgreSQL metadata databases
(a migrated, empty template per Airflow version, kept on the server, and scratch databases cloned from it in
well under a second, dropped after), a Celery queue of a run's own on the Redis broker (forgotten after), and
`services_answer`, which says in one line why PostgreSQL or Redis is not there (tests and benchmarks skip on it).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from autograder.grading.airflow.environment import (
    DEFAULT_BROKER,
    Deployment,
    airflow_env,
    install_dag,
    with_psycopg2,
)
from mlinfra import airflow_home
from mlinfra.base.errors import UsageError


# A migrated, empty Airflow database kept as a template: a scratch database cloned from it is ready in well
# under a second, where migrating a new one takes 10-15 s. Named per Airflow version.
def template_name() -> str:
    from importlib.metadata import version

    return "autograder_airflow_template_" + version("apache-airflow-core").replace(".", "_")


def _admin(server_url: str) -> Any:
    """An autocommit connection to the server's maintenance database (CREATE/DROP DATABASE need one); closed
    when its `with` block ends."""
    from contextlib import closing

    import psycopg2

    url = with_psycopg2(server_url).replace("postgresql+psycopg2://", "postgresql://")
    conn = psycopg2.connect(url, connect_timeout=3)
    conn.autocommit = True
    return closing(conn)


def database_url(server_url: str, name: str) -> str:
    """server_url with its database replaced by `name` (server_url: postgresql+psycopg2://USER@HOST:PORT/DB)."""
    base = server_url.rsplit("/", 1)[0]
    return f"{base}/{name}"


def ensure_template(server_url: str, home: Path) -> str:
    """The migrated template database on this server, created (migrated under a temporary name, then renamed,
    so a half-made one never counts) when missing."""
    name = template_name()
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone():
            return name
        building = f"{name}_building_{os.getpid()}"
        cur.execute(f'CREATE DATABASE "{building}"')
    dep = Deployment(home=home, executor="local", database=database_url(server_url, building))
    home.mkdir(parents=True, exist_ok=True)
    install_dag(dep)
    failed = airflow_home.migrate(airflow_env(dep), home, timeout=None)
    with _admin(server_url) as conn, conn.cursor() as cur:
        if failed:
            cur.execute(f'DROP DATABASE IF EXISTS "{building}"')
            raise UsageError(f"migrating an Airflow database on {server_url} failed: {failed}")
        cur.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return name


def create_scratch_database(server_url: str, name: str, home: Path) -> str:
    """A new database `name` cloned from the migrated template; returns its URL. Drop it with drop_database."""
    template = ensure_template(server_url, home)
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with _admin(server_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')


def forget_queue(broker: str, queue: str) -> None:
    """Remove a Celery queue of our own from a Redis broker (its pending messages and kombu's binding key), so
    scratch runs with queues of their own leave nothing behind."""
    import redis

    client = redis.Redis.from_url(broker, socket_timeout=3)
    try:
        client.delete(queue, f"_kombu.binding.{queue}")
    finally:
        client.close()


def services_answer(server_url: str, broker: str = DEFAULT_BROKER) -> str:
    """'' when the PostgreSQL server and the Redis broker both answer, else why not (one line)."""
    try:
        with _admin(server_url):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means: no database here
        return f"no PostgreSQL at {server_url.split('@')[-1]}: {str(exc).strip().splitlines()[0][:120]}"
    hostport = broker.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(64).startswith(b"+PONG"):
                return f"the broker at {hostport} is not Redis"
    except OSError as exc:
        return f"no Redis broker at {hostport}: {exc.strerror or exc}"
    return ""

