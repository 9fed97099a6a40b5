"""`autograder submit`: pack the learner's workspace copy of a lab into one archive an instructor can grade."""

from __future__ import annotations

import argparse
import getpass
import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from autograder.errors import UsageError
from autograder.labs import find_lab, lab_files
from autograder.paths import repo_root, workspace_dir
from autograder.reports import add_json_option
from autograder.submissions import MANIFEST_NAME, sha256, student_id
from mlinfra.base.results import PASSED, Check, Outcome

MAX_FILE_BYTES = 20 * 1024 * 1024  # checkpoints and data sets stay home; the grader regenerates what it needs


def pack(folder: Path, lab_name: str, student: str, dest: Path) -> tuple[Path, list[str]]:
    files: dict[str, str] = {}
    skipped: list[str] = []
    for rel in lab_files(folder):
        path = folder / rel
        if path.stat().st_size > MAX_FILE_BYTES:
            skipped.append(f"{rel} ({path.stat().st_size // 2**20} MB, over {MAX_FILE_BYTES // 2**20} MB)")
            continue
        files[str(rel)] = sha256(path)
    manifest = {"student": student, "lab": lab_name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": files}
    archive = dest / f"{student}-{lab_name}.zip"
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            zf.write(folder / rel, rel)
        zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2))
    return archive, skipped


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "submit",
        help="pack your workspace copy of a lab into a .zip with a manifest, for your instructor",
        description="Pack workspace/LAB/ (or --folder) into STUDENT-LAB.zip with a manifest (who, which lab, when, "
        "file checksums). Hand the archive in; your instructor drops it into a submissions folder and runs "
        "`.venv/bin/autograder grade LAB that-folder`. `submit quiz QUIZ` copies your exam record (from `.venv/bin/autograder quiz "
        "take QUIZ --exam`) to OUT/QUIZ/STUDENT.yaml; `submit practical` packs the practical assessment.",
    )
    parser.add_argument("lab", metavar="LAB", help="a lab, `quiz` (with QUIZ) or `practical`")
    parser.add_argument("quiz", nargs="?", metavar="QUIZ", help="with `quiz`: the graded quiz (module01, phase1)")
    parser.add_argument("--student", help="your name or id as your instructor knows it (default: your login)")
    parser.add_argument("--folder", type=Path, help="the lab folder to pack (default: workspace/LAB)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where to write the archive (default: here)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> Outcome:
    if args.lab == "practical":  # the practical's hand-in: service, model card, README, demo (autograder.assess.handin)
        from autograder.assess.handin import submit_practical

        return submit_practical(args)
    root = repo_root()
    if args.lab == "quiz":
        return _submit_quiz(root, args)
    if args.quiz:
        raise UsageError(f"unexpected {args.quiz!r} after {args.lab}: only `submit quiz QUIZ` takes a second name")
    lab = find_lab(root, args.lab, source=False)
    folder = args.folder or workspace_dir(root) / lab.name
    if not (folder / lab.notebook).is_file():
        raise UsageError(f"{folder / lab.notebook} not found: open the lab with `make lab` first, or pass --folder")
    student = student_id(args.student or getpass.getuser())
    archive, skipped = pack(folder, lab.name, student, args.out)
    for item in skipped:
        print(f"left out {item}")
    print(f"wrote {archive}: hand it in; your instructor grades it with `.venv/bin/autograder grade {lab.name} FOLDER`")
    return Outcome(f"{student}-{lab.name}", [Check("packed", PASSED, message=str(archive))],
                   notes=[f"left out {item}" for item in skipped], data={"archive": str(archive)})


def _submit_quiz(root: Path, args: argparse.Namespace) -> Outcome:
    from autograder.quiz.exam import hand_in

    if not args.quiz:
        raise UsageError("which quiz? e.g. `.venv/bin/autograder submit quiz module01 --student YOUR_ID`")
    student = student_id(args.student or getpass.getuser())
    dest = hand_in(root, args.quiz, student, args.out)
    print(f"wrote {dest}: hand it in; your instructor grades it with `.venv/bin/autograder quiz grade {args.quiz} FOLDER`")
    return Outcome(f"{student}-{args.quiz}", [Check("packed", PASSED, message=str(dest))], data={"record": str(dest)})
