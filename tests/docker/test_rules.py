"""The static checks: each known-bad Dockerfile gets its own finding, on the right line; the lab's solution none."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.dockerfile.cli import to_outcome
from autograder.dockerfile.rules import COURSE_RULES, finding_dict, lint
from autograder.errors import UsageError
from mlinfra.base.output import to_jsonable

GOOD_TAIL = """
WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py .
USER 10001
EXPOSE 8000
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
"""


def found(path: Path, *, hadolint: bool = False) -> dict[str, list[int | None]]:
    """rule -> the lines it was found on."""
    out: dict[str, list[int | None]] = {}
    for f in lint(path, hadolint=hadolint).findings:
        out.setdefault(f.rule, []).append(f.line)
    return out


def test_the_lab_solution_is_clean(solution_dockerfile, write_dockerfile, tmp_path):
    path = write_dockerfile(solution_dockerfile, ignore=None)
    (tmp_path / ".dockerignore").write_text((Path(__file__).parents[2] / "solutions/lab06-docker/.dockerignore")
                                            .read_text())
    result = lint(path)
    assert result.hadolint == "ran"
    assert result.findings == [] and result.passed
    assert result.facts.base == "python:3.11-slim-bookworm"
    assert result.facts.user == "10001" and result.facts.exposed == ["8000"]


def test_a_good_minimal_dockerfile_is_clean(write_dockerfile):
    assert found(write_dockerfile("FROM python:3.11-slim-bookworm" + GOOD_TAIL)) == {}


@pytest.mark.parametrize("base, rule", [
    ("python:latest", "base-latest"),
    ("python", "base-latest"),
    ("python:3", "base-unpinned"),
    ("python:slim", "base-unpinned"),
    ("python:3-slim", "base-unpinned"),
    ("registry.example.com:5000/team/python", "base-latest"),
])
def test_latest_or_unpinned_base(write_dockerfile, base, rule):
    assert found(write_dockerfile(f"FROM {base}" + GOOD_TAIL)) == {rule: [1]}


@pytest.mark.parametrize("base", ["python:3.11-slim-bookworm", "python:3.11.9-slim",
                                  "python@sha256:" + "a" * 64, "registry.example.com:5000/py:3.11"])
def test_pinned_bases_pass(write_dockerfile, base):
    assert "base-latest" not in found(write_dockerfile(f"FROM {base}" + GOOD_TAIL))
    assert "base-unpinned" not in found(write_dockerfile(f"FROM {base}" + GOOD_TAIL))


def test_an_arg_base_is_resolved_and_a_stage_name_is_not_an_image(write_dockerfile):
    text = """
        ARG BASE=python:latest
        FROM ${BASE} AS build
        RUN echo building
        FROM build
    """ + GOOD_TAIL
    assert found(write_dockerfile(text)) == {"base-latest": [2]}


def test_running_as_root(write_dockerfile):
    no_user = ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).replace("USER 10001\n", "")
    assert found(write_dockerfile(no_user)) == {"root-user": [1]}
    back_to_root = ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).replace("EXPOSE 8000", "USER root\nEXPOSE 8000")
    assert found(write_dockerfile(back_to_root)) == {"root-user": [7]}


def test_no_healthcheck(write_dockerfile):
    text = "FROM python:3.11-slim-bookworm" + GOOD_TAIL
    lines = [ln for ln in text.splitlines() if not ln.startswith("HEALTHCHECK")]
    assert found(write_dockerfile("\n".join(lines))) == {"no-healthcheck": [None]}
    disabled = text.replace("HEALTHCHECK CMD", "HEALTHCHECK NONE\n#").replace("#  [", "# [")
    assert "no-healthcheck" in found(write_dockerfile(disabled))


def test_code_copied_before_dependencies(write_dockerfile):
    text = """
        FROM python:3.11-slim-bookworm
        WORKDIR /srv
        COPY . .
        RUN pip install --no-cache-dir -r requirements.txt
        USER 10001
        EXPOSE 8000
        HEALTHCHECK CMD ["python", "-c", "print(1)"]
        CMD ["uvicorn", "app:app", "--host", "0.0.0.0"]
    """
    assert found(write_dockerfile(text)) == {"code-before-deps": [3]}
    findings = lint(write_dockerfile(text), hadolint=False).findings
    assert "line 4" in findings[0].message and "requirements.txt" in findings[0].fix


def test_dependency_files_and_other_stages_may_come_first(write_dockerfile):
    text = """
        FROM python:3.11-slim-bookworm AS wheels
        RUN pip wheel --no-cache-dir -w /wheels numpy
        FROM python:3.11-slim-bookworm
        COPY --from=wheels /wheels /wheels
        COPY requirements.txt pyproject.toml ./
    """ + GOOD_TAIL
    assert found(write_dockerfile(text)) == {}


@pytest.mark.parametrize("line", [
    "ENV API_TOKEN=abc123", "ENV DB_PASSWORD hunter2", "ARG AWS_SECRET_ACCESS_KEY=x",
    "ENV MODEL_URL=s3://bucket KEY_ID=AKIAABCDEFGHIJKLMNOP", 'ENV GITHUB="ghp_abcdefghijklmnopqrstuvwxyz0123"',
])
def test_a_secret_in_env_or_arg(write_dockerfile, line):
    text = "FROM python:3.11-slim-bookworm\n" + line + GOOD_TAIL
    assert found(write_dockerfile(text)) == {"secret-in-env": [2]}


def test_a_secret_name_without_a_value_or_a_lookalike_is_fine(write_dockerfile):
    text = ("FROM python:3.11-slim-bookworm\nARG PIP_INDEX_TOKEN\nENV TOKENIZERS_PARALLELISM=false KEY_COLUMN=id"
            + GOOD_TAIL)
    assert found(write_dockerfile(text)) == {}


def test_no_expose_and_uvicorn_on_loopback(write_dockerfile):
    text = ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).replace("EXPOSE 8000\n", "")
    assert found(write_dockerfile(text)) == {"no-expose": [None]}
    local = ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).replace('"0.0.0.0"', '"127.0.0.1"')
    assert found(write_dockerfile(local)) == {"uvicorn-host": [9]}
    default = ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).replace('"--host", "0.0.0.0", ', "")
    assert found(write_dockerfile(default)) == {"uvicorn-host": [9]}
    by_env = default.replace("WORKDIR /srv", "ENV UVICORN_HOST=0.0.0.0\nWORKDIR /srv")
    assert found(write_dockerfile(by_env)) == {}


def test_no_command(write_dockerfile):
    text = "\n".join(ln for ln in ("FROM python:3.11-slim-bookworm" + GOOD_TAIL).splitlines() if "uvicorn" not in ln)
    assert found(write_dockerfile(text)) == {"no-cmd": [None]}


def test_no_from(write_dockerfile):
    assert found(write_dockerfile("# YOUR CODE HERE\n")) == {"no-from": [None]}


def test_dockerignore_missing_or_leaky(write_dockerfile, tmp_path):
    text = "FROM python:3.11-slim-bookworm" + GOOD_TAIL
    assert found(write_dockerfile(text, ignore=None)) == {"no-dockerignore": [None]}
    leaky = lint(write_dockerfile(text, ignore="__pycache__\n.git\n"), hadolint=False).findings
    assert [f.rule for f in leaky] == ["dockerignore-gaps"]
    assert ".env" in leaky[0].message and ".venv" in leaky[0].message
    assert "__pycache__" in leaky[0].message, "a bare __pycache__ only matches at the top: **/__pycache__ is needed"
    assert leaky[0].file == str(tmp_path / ".dockerignore")
    allow_list = "*\n!requirements.txt\n!app.py\n"
    assert found(write_dockerfile(text, ignore=allow_list)) == {}


def test_a_dockerfile_with_another_name_uses_its_own_ignore_file(write_dockerfile, tmp_path):
    path = write_dockerfile("FROM python:3.11-slim-bookworm" + GOOD_TAIL, ignore=None, name="serve.Dockerfile")
    (tmp_path / "serve.Dockerfile.dockerignore").write_text(".git\n.venv\n.env\n**/__pycache__\n")
    assert found(path) == {}


def test_hadolint_findings_come_with_a_fix_and_do_not_repeat_ours(write_dockerfile):
    text = "FROM python:latest\nENV API_TOKEN=abc\nRUN pip install flask" + GOOD_TAIL
    result = lint(write_dockerfile(text))
    rules = [f.rule for f in result.findings]
    assert "DL3013" in rules and "DL3042" in rules, rules  # unpinned pip package; pip cache kept
    assert "DL3007" not in rules and "DL3064" not in rules, "base-latest and secret-in-env already say that"
    dl = next(f for f in result.findings if f.rule == "DL3042")
    assert finding_dict(dl)["source"] == "hadolint" and dl.line == 3 and "hadolint/wiki/DL3042" in dl.fix


BAD = {
    "FROM python:latest\nENV API_TOKEN=abc\nRUN pip install flask" + GOOD_TAIL: None,
    "FROM python:3\nCOPY . .\nRUN pip install -r requirements.txt\nUSER root\nHEALTHCHECK NONE\n"
    "ADD https://x.org/m.bin /m\nCMD uvicorn app:app\n": "__pycache__\n.git\n",
    "# YOUR CODE HERE\n": "",
}


@pytest.mark.parametrize("text, ignore", BAD.items(), ids=["latest", "many", "no-from"])
def test_the_json_keeps_each_findings_published_keys(write_dockerfile, tmp_path, text, ignore):
    """lab06's notebook reads rule, line, message and fix from `--json`: the course's one Finding is written under
    the keys the checker always published, in their order; `source` tells the course's rules from hadolint's."""
    result = lint(write_dockerfile(text, ignore=ignore))
    data = to_jsonable(to_outcome(result))
    assert data["findings"] and all(list(f) == ["rule", "severity", "line", "message", "fix", "source", "file"]
                                    for f in data["findings"])
    for f, raw in zip(result.findings, data["findings"], strict=True):
        assert raw["source"] == ("course" if raw["rule"] in COURSE_RULES else "hadolint")
        assert raw["source"] == "course" or re.fullmatch(r"(DL|SC)\d{4}", raw["rule"]), raw
        assert (raw["line"], raw["file"], raw["severity"]) == (f.line, f.file, f.severity)
        assert raw["file"] in (str(tmp_path / "Dockerfile"), str(tmp_path / ".dockerignore"))
    lines = {f["rule"]: f["line"] for f in data["findings"]}
    if "COPY . ." in text:
        assert lines["code-before-deps"] == 2 and lines["root-user"] == 4 and lines["remote-source"] == 6
        assert lines["no-expose"] is None and lines["dockerignore-gaps"] is None
        assert next(f for f in data["findings"] if f["rule"] == "no-expose")["severity"] == "warning"
    assert [c["where"] for c in data["checks"]] == [f"{f.file}:{f.line}" if f.line else f.file
                                                    for f in result.findings]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "autograder", "dockerfile", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, check=False)


def test_cli_exit_codes_and_json(write_dockerfile, tmp_path):
    good = write_dockerfile("FROM python:3.11-slim-bookworm" + GOOD_TAIL)
    proc = run_cli(str(good), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] is True and data["findings"] == [] and data["facts"]["exposed"] == ["8000"]
    bad = write_dockerfile("FROM python:latest" + GOOD_TAIL, name="bad.Dockerfile")
    out = tmp_path / "out" / "result.json"
    proc = run_cli(str(bad), "--json", str(out))
    assert proc.returncode == 1
    assert "bad.Dockerfile:1: error base-latest" in proc.stdout and "fix:" in proc.stdout
    assert [f["rule"] for f in json.loads(out.read_text())["findings"]] == ["base-latest"]
    missing = run_cli(str(tmp_path / "nope" / "Dockerfile"))
    assert missing.returncode == 2 and "no such file" in missing.stderr and missing.stdout == ""


def test_build_without_an_engine_exits_2(write_dockerfile):
    good = write_dockerfile("FROM python:3.11-slim-bookworm" + GOOD_TAIL)
    proc = run_cli(str(good), "--build", env={"AUTOGRADER_ENGINE": "docker", "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert proc.returncode == 2, proc.stderr
    assert "no container engine" in proc.stderr and "make container-engine" in proc.stderr  # issue 15: the make target


def test_lint_names_a_missing_file():
    with pytest.raises(UsageError, match="no such file"):
        lint(Path("/nonexistent/Dockerfile"))
