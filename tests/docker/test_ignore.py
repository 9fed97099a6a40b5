"""`.dockerignore` matching follows Docker's rules (the last matching line decides; folders cover their contents)."""

from __future__ import annotations

import pytest

from autograder.dockerfile.ignore import DockerIgnore


@pytest.mark.parametrize("patterns, path, excluded", [
    (".env", ".env", True),
    (".env", "app/.env", False),
    ("**/.env", "app/.env", True),
    ("__pycache__", "pkg/__pycache__/m.pyc", False),
    ("**/__pycache__", "pkg/__pycache__/m.pyc", True),
    ("**/__pycache__", "__pycache__/m.pyc", True),
    (".git", ".git/HEAD", True),
    ("/.venv/", ".venv/bin/python", True),
    ("*.pyc", "a.pyc", True),
    ("*.pyc", "pkg/a.pyc", False),
    ("*", "anything/at/all", True),
    ("*\n!app.py", "app.py", False),
    ("*\n!pkg\npkg/secret.txt", "pkg/secret.txt", True),
    ("*\n!pkg\npkg/secret.txt", "pkg/ok.py", False),
    ("# a comment\n\n  ", ".env", False),
    ("data/[ab].csv", "data/a.csv", True),
    ("data/[ab].csv", "data/c.csv", False),
    ("model?.pt", "model1.pt", True),
])
def test_matching(patterns, path, excluded):
    assert DockerIgnore.from_text(patterns).excludes(path) is excluded
