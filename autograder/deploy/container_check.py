"""The lab06 deploy check (`autograder.deploy:container`): build the learner's Dockerfile (their folder plus the
course's service code and model) as `autograder dockerfile --build` does (autograder/container_engine.py), run the
image with its port published on 127.0.0.1 and memory and pid limits, and score it with `autograder assess`'s five
requirements, plus one point for the build. With no container engine (or one hidden by $AUTOGRADER_HIDE_ENGINES) the six
checks are skipped with 0 points and the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from autograder.deploy.common import (
    ASSESS_REQUESTS,
    HIDE_ENV,
    POINTS_EACH,
    all_checks,
    course_model,
    from_criteria,
    hidden,
    named,
    with_note,
)
from mlinfra.base.results import FAILED, PASSED, SKIPPED, Check

HEALTH_TIMEOUT_S = 180.0
KEEP_ENV = "AUTOGRADER_KEEP_WORK"  # set by `grade --keep-work` in the grading worker: keep each student's image
TAG_PREFIX = "autograder-grade/"  # then the batch's id: autograder-grade/<batch>-<random>:latest
CHECK_REF = "autograder.deploy:container"  # how a lab.yaml names this check


def caps() -> Any:
    from autograder.dockerfile.build import Caps

    return Caps()


def container(lab: Any, files_dir: Path, work_dir: Path) -> list[Check]:
    """Lab06: build the learner's image, run it on 127.0.0.1, score it with the practical assessment's probes."""
    from autograder import container_engine
    from autograder.dockerfile.build import build_and_assess
    from autograder.dockerfile.rules import lint
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    names = ["container: image builds", *named("container")]
    if hidden("container"):
        return all_checks(names, SKIPPED, f"image not built: the container engine is hidden by ${HIDE_ENV}; unset it to "
                    "build and run the image")
    try:
        container_engine.detect(repo_root())
    except UsageError as exc:
        return all_checks(names, SKIPPED, f"image not built: {exc}")
    dockerfile = files_dir / "Dockerfile"
    if not dockerfile.is_file():
        return all_checks(names, FAILED, "no Dockerfile in the submission: hand in the lab folder with its Dockerfile",
                    "Dockerfile")
    model, note = course_model(work_dir)
    # A tag no one can guess, one per check: a Dockerfile graded beside it could otherwise build FROM (or COPY
    # --from) another student's image by its name and be scored on that student's work. It is removed with
    # everything its build made once the check is over: a graded build writes no layer cache
    # (container_engine.build's `isolated`), so a class leaves nothing behind but the course's base image. $AUTOGRADER_KEEP_WORK keeps the
    # image for a look afterwards (its tag is in the build point's message). The tag starts with the batch's id,
    # and the image and container are labelled with it: what a killed worker could not remove, the batch's end does
    # (sweep_batch).
    batch = batch_id(work_dir)
    tag = f"{TAG_PREFIX}{batch}-{secrets.token_hex(12)}:latest"
    keep = os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")
    memory_mb = int(getattr(lab, "memory_mb", 0) or 4096)
    outcome = build_and_assess(dockerfile, lint(dockerfile), model_dir=model, tag=tag, health_timeout=HEALTH_TIMEOUT_S,
                               requests=ASSESS_REQUESTS, isolated=True, log=lambda m: None,
                               caps=dataclasses.replace(caps(), memory_mb=memory_mb),  # the build's RUN steps too
                               keep_image=keep, batch=batch,
                               run_args=(f"--memory={memory_mb}m", "--pids-limit=512"))
    built = Check(names[0], PASSED if outcome.built else FAILED, POINTS_EACH if outcome.built else 0.0, POINTS_EACH,
                  (f"built in {outcome.build_seconds:.0f} s" + (f" ({tag}, kept)" if keep else ""))
                  if outcome.built else (outcome.error or "not built"),
                  "Dockerfile")
    assessment = outcome.assessment or {}
    if assessment.get("criteria"):
        checks = [built, *from_criteria(names[1:], assessment["criteria"], "Dockerfile")]
    else:
        why = outcome.error or assessment.get("error") or "the assessment did not run"
        checks = [built, *all_checks(names[1:], FAILED, f"not assessed: {why}", "Dockerfile")]
    return with_note(checks, note)


def batch_id(work_dir: Path) -> str:
    """The id of the grading batch a check's scratch folder belongs to: a digest of the batch's work folder (the
    nearest folder above holding the batch's plan.json), or of the scratch folder itself outside a batch."""
    from autograder.grading.plan import PLAN_NAME

    where = work_dir.resolve()
    batch = next((p for p in (where, *where.parents) if (p / PLAN_NAME).is_file()), where)
    return hashlib.sha256(str(batch).encode()).hexdigest()[:12]


def sweep_batch(plan: Any) -> list[str]:
    """At a batch's end: remove every image, container and working container its lab06 checks made that is still
    there (a worker SIGKILLed mid-build or mid-run, or stopped at its deadline, could not remove its own). Nothing
    for other labs (no engine is asked) or when the batch keeps its work (`grade --keep-work`). Returns what was
    removed, normally nothing."""
    from autograder import container_engine
    from autograder.errors import UsageError
    from autograder.labs import load_lab
    from autograder.paths import repo_root

    if plan.keep_work or hidden("container"):
        return []
    try:
        if CHECK_REF not in (getattr(load_lab(Path(plan.lab_folder)), "deploy_checks", ()) or ()):
            return []
        engine = container_engine.detect(repo_root())
    except (UsageError, OSError):
        return []
    return container_engine.remove_batch(engine, batch_id(Path(plan.work_dir)), TAG_PREFIX)
