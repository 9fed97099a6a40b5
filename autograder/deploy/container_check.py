"""The lab06 deploy check (`autograder.deploy:container`): build the learner's Dockerfile (their folder plus the
course's service code and model) with the container engine `autograder dockerfile` uses, run the image with its
port published on 127.0.0.1 and memory and pid limits, and score it with `autograder assess`'s five requirements,
plus one point for the build. With no container engine (or one hidden by $AUTOGRADER_HIDE_ENGINES) the six
checks are skipped with 0 points and the reason.
"""

from __future__ import annotations

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
    from autograder.dockerfile import engine as eng
    from autograder.dockerfile.build import build_and_assess
    from autograder.dockerfile.rules import lint
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    names = ["container: image builds", *named("container")]
    if hidden("container"):
        return all_checks(names, SKIPPED, f"image not built: the container engine is hidden by ${HIDE_ENV}; unset it to "
                    "build and run the image")
    try:
        eng.detect(repo_root())
    except UsageError as exc:
        return all_checks(names, SKIPPED, f"image not built: {exc}")
    dockerfile = files_dir / "Dockerfile"
    if not dockerfile.is_file():
        return all_checks(names, FAILED, "no Dockerfile in the submission: hand in the lab folder with its Dockerfile",
                    "Dockerfile")
    model, note = course_model(work_dir)
    # A tag no one can guess, one per check: a Dockerfile graded beside it could otherwise build FROM (or COPY
    # --from) another student's image by its name and be scored on that student's work. It is removed with
    # everything its build made once the check is over: a graded build writes no layer cache (engine.build's
    # `isolated`), so a class leaves nothing behind but the course's base image. $AUTOGRADER_KEEP_WORK keeps the
    # image for a look afterwards (its tag is in the build point's message). The tag starts with the batch's id,
    # and the image and container are labelled with it: what a killed worker could not remove, the batch's end does
    # (sweep_batch).
    batch = batch_id(work_dir)
    tag = f"{TAG_PREFIX}{batch}-{secrets.token_hex(12)}:latest"
    keep = os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "true", "yes")
    outcome = build_and_assess(dockerfile, lint(dockerfile), model_dir=model, tag=tag, health_timeout=HEALTH_TIMEOUT_S,
                               requests=ASSESS_REQUESTS, isolated=True, log=lambda m: None, caps=caps(),
                               keep_image=keep, batch=batch,
                               run_args=(f"--memory={int(getattr(lab, 'memory_mb', 0) or 4096)}m", "--pids-limit=512"))
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
    from autograder.dockerfile import engine as eng
    from autograder.errors import UsageError
    from autograder.labs import load_lab
    from autograder.paths import repo_root

    if plan.keep_work or hidden("container"):
        return []
    try:
        if CHECK_REF not in (getattr(load_lab(Path(plan.lab_folder)), "deploy_checks", ()) or ()):
            return []
        engine = eng.detect(repo_root())
    except (UsageError, OSError):
        return []
    batch = batch_id(Path(plan.work_dir))
    removed: list[str] = []
    found = engine.run("ps", "-a", "--filter", f"label={eng.BATCH_LABEL}={batch}", "--format", "{{.Names}}",
                       check=False, timeout=120)
    for name in found.stdout.split():
        engine.run("rm", "-f", "-t", "0", name, check=False, timeout=120)
        removed.append(f"container {name}")
    removed += [f"working container {c[:12]}" for c in eng.remove_working_containers(engine, batch,
                                                                                   eng.GRADED_BATCH_ARG)]
    # by the tag's batch prefix and by label (an image whose tag a build never got to set has only the label)
    listed = engine.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False, timeout=120).stdout.split()
    for image in [t for t in listed if t.rsplit("/", 1)[-1].startswith(f"{batch}-") and TAG_PREFIX in t]:
        if engine.run("rmi", "-f", image, check=False, timeout=120).returncode == 0:
            removed.append(f"image {image}")
    labelled = engine.run("images", "-a", "-q", "--filter", f"label={eng.BATCH_LABEL}={batch}", check=False,
                          timeout=120).stdout.split()
    for image in dict.fromkeys(labelled):  # what is left: an image whose tag a killed build never set
        if engine.run("rmi", "-f", image, check=False, timeout=120).returncode == 0:
            removed.append(f"image {image}")
    return removed
