"""What a graded build may start from: earlier stages of the same Dockerfile and the course's base image, nothing else.

A graded build runs with --pull=never, so FROM (and COPY --from, RUN --mount=...,from=) can only name images already
in the grading machine's storage: the course's base, but also whatever else someone built there (the reference
image of `make docker-check`, the grading sandbox's image, another student's image kept with --keep-work). Starting
FROM one of those scores its work, not the learner's (red team 3). So before a graded build, every image a
Dockerfile names must be an earlier stage or on COURSE_BASES (the base lab06 teaches, labs/lab06-docker step 1);
anything else is a finding and the build does not run. A digest pin (`python:3.11-slim-bookworm@sha256:...`) is
allowed when it is the course base's own digest here (`digests`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from autograder.dockerfile.rules import Instruction, parse, split_flags
from mlinfra.base.results import Finding, at

BASE_RULE = "base-not-allowed"
# The course's base image (lab06's notebook asks for Python 3.11 on Debian bookworm, slim), by its full name.
COURSE_BASES = ("docker.io/library/python:3.11-slim-bookworm",)
# Build arguments the grader itself passes (container_engine.GRADED_BUILD_ARG, GRADED_BATCH_ARG): their values are
# the grader's, so a FROM naming them is not what its ARG line says.
GRADER_ARGS = ("MLINFRA_GRADED_BUILD", "MLINFRA_GRADED_BATCH")
_VARIABLE = re.compile(r"\$(\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def normalise(reference: str) -> str:
    """An image reference as the engine resolves a Docker Hub name: python:3.11 -> docker.io/library/python:3.11."""
    name = reference.strip().lower()
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    if name.startswith("index.docker.io/"):
        name = "docker.io/" + name[len("index.docker.io/"):]
    return name


def _expand(text: str, args: dict[str, str]) -> str | None:
    """`text` with $NAME / ${NAME} replaced by the global ARG defaults; None when one has no default of the
    learner's (or uses other syntax: ${NAME:-x})."""
    if "$" not in text:
        return text
    out = text
    for match in _VARIABLE.finditer(text):
        key = match.group(2) or match.group(3)
        if key not in args or key in GRADER_ARGS:
            return None
        out = out.replace(match.group(0), args[key])
    return None if "$" in out else out


def foreign_sources(text: str, file: str = "Dockerfile", bases: Sequence[str] = COURSE_BASES,
                    digests: Collection[str] = ()) -> list[Finding]:
    """Findings for each image the Dockerfile `text` names (FROM, COPY --from, RUN --mount from=, also inside
    ONBUILD) that is neither an earlier stage nor one of `bases`. `digests`: the sha256 digests the course base
    has here (a pin to any other is refused: it could name another image in the storage)."""
    allowed = {normalise(b) for b in bases}
    instructions = parse(text)
    first_from = next((i.line for i in instructions if i.name == "FROM"), None)
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.name == "ARG" and first_from is not None and ins.line < first_from:
            key, eq, value = ins.value.strip().partition("=")
            if eq:
                args[key.strip()] = value.strip().strip("\"'")
    stages: list[str] = []  # names of the stages so far (lower case), their index by position
    findings: list[Finding] = []

    def refuse(ins: Instruction, what: str, why: str) -> None:
        findings.append(Finding(
            BASE_RULE, f"{what}: {why}; a graded build starts only from the course's base image "
            f"({', '.join(bases)}) or an earlier stage of this Dockerfile", at(file, ins.line),
            f"start FROM {bases[0].removeprefix('docker.io/library/') if bases else 'the course base'} "
            "(and name earlier stages with AS), then build again"))

    def check(ins: Instruction, reference: str, how: str, stage_ok: bool) -> None:
        name = _expand(reference, args)
        if name is None:
            refuse(ins, f"{how}{reference}", "a variable without a default of this Dockerfile's cannot be checked")
            return
        if stage_ok and (name.lower() in stages or (name.isdigit() and int(name) < len(stages))):
            return
        if name.lower() == "scratch" and how == "FROM ":
            return  # the empty image: nothing of anyone's
        bare, at_sign, digest = name.partition("@")
        if normalise(bare) not in allowed:
            refuse(ins, f"{how}{reference}", "not the course's base image")
        elif at_sign and digest.lower() not in {d.lower() for d in digests}:
            refuse(ins, f"{how}{reference}", "that digest is not the course base's here (it may name another "
                   "image of the grading machine)")

    def visit(ins: Instruction) -> None:
        if ins.name == "ONBUILD":  # its instruction runs in a build FROM this stage: check it the same way
            head, _, rest = ins.value.strip().partition(" ")
            visit(Instruction(head.upper(), rest, ins.line))
            return
        flags, words = split_flags(ins.value)
        if ins.name == "FROM":
            if words:
                check(ins, words[0], "FROM ", stage_ok=True)
            stages.append(words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else f"#{len(stages)}")
        elif ins.name in ("COPY", "ADD") and "from" in flags:
            check(ins, flags["from"], "COPY --from=", stage_ok=True)
        elif ins.name == "RUN":
            for word in ins.value.split():
                if not word.startswith("--mount="):
                    continue
                for part in word[len("--mount="):].split(","):
                    key, _, value = part.partition("=")
                    if key.strip().lower() == "from":
                        check(ins, value, "RUN --mount from=", stage_ok=True)

    for ins in instructions:
        visit(ins)
    return findings
