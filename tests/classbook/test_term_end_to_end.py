"""Issue #24's "done when": a test term goes from the class copy to an LMS CSV and a class report through the
commands docs/instructor-guide.md prints, each run as a person runs it (`make ...`, `.venv/bin/autograder ...`,
from the repository root), and the report opens in headless Chromium with its plots drawn.

The term: the practice class (`make practice-class`: lab01 and lab02 learners from the known-bad samples, one
handed in 30 h late, one with an extension, and a plain nbgrader course, hw1, with manually graded cells), trimmed
to a few learners to stay cheap; an exam of module01 taken with the class copy's learner bank and signed tickets;
the practical. The practical's score comes from a pre-made `assess --pack --json` result in the shape `assess`
writes (tests/classbook/term.py): a real assessment starts each learner's service in the sandbox and measures its
latency, about a minute a hand-in, and is tested in tests/assess/.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from term import PRACTICAL, write_practical

ROOT = Path(__file__).resolve().parents[2]
AUTOGRADER = ".venv/bin/autograder"
KEEP = {"lab01-environment": ("reference", "partly-done", "blank", "boundary-off-by-one"),
        "lab02-ml-lifecycle": ("reference", "partly-done", "blank")}
EXAM_TAKERS = {"reference": "1", "partly-done": "2", "blank": ""}  # what each types at every prompt

pytestmark = pytest.mark.slow


def run(*argv: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)) -> str:
    """A documented command, from the repository root, as a person types it."""
    done = subprocess.run(list(argv), cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode in ok, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    return done.stdout + done.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_term_from_the_class_copy_to_the_lms_and_the_class_report(tmp_path: Path) -> None:
    if not Path(ROOT / AUTOGRADER).is_file():
        pytest.skip("no .venv/bin/autograder: `make setup` first")
    # 1. The class copy learners receive (its learner copy of module01 is what they take the exam with).
    copy = tmp_path / "class-repo"
    run(AUTOGRADER, "release", "--student-dist", str(copy))
    assert (copy / "quizzes" / "module01.yaml").is_file()

    # 2. The practice class, trimmed to a few learners per lab.
    practice = tmp_path / "practice"
    printed = run("make", "-s", "practice-class", f"PRACTICE={practice}")
    for lab, keep in KEEP.items():
        for folder in (practice / "submissions" / lab).iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder)

    # 3. Grade the labs and the nbgrader course as the practice class printed, then enter manual points.
    commands = [line.strip() for line in printed.splitlines() if line.strip().startswith((AUTOGRADER, str(ROOT)))]
    grades = [c for c in commands if " grade " in c]
    assert len(grades) == 3, printed
    for command in grades:
        run(*command.split())
    lab01 = practice / "grades" / "lab01-environment"
    late = {r["student"]: r for r in rows(lab01 / "grades.csv")}
    assert float(late["partly-done"]["penalty"]) > 0 and float(late["partly-done"]["late_by"]) >= 30
    assert late["blank"]["penalty"] == "0", "blank's extension covers its 30 h"
    hw1 = practice / "nbgrader-course" / "grades" / "hw1"
    pending = {r["student"]: r for r in rows(hw1 / "grades.csv")}
    assert float(pending["ada"]["manual_pending"]) == 4, "a 3-point answer and a 1-point task wait for a person"
    run(AUTOGRADER, "review", str(hw1), "--set", "ada:explain=2.5:Right idea, no example", "--set", "ada:examples=1")

    # 4. The exam: tickets, each learner takes it with the class copy's bank, the instructor grades the records.
    key, tickets, records = tmp_path / "quiz.key", tmp_path / "tickets", tmp_path / "records"
    run(AUTOGRADER, "quiz", "ticket", "module01", *EXAM_TAKERS, "--key", str(key), "--out", str(tickets))
    for learner, answer in EXAM_TAKERS.items():
        run(AUTOGRADER, "quiz", "take", str(copy / "quizzes" / "module01.yaml"), "--exam", "--ticket",
            str(tickets / f"{learner}.ticket.yaml"), "--save", str(records / f"{learner}.yaml"), "--no-record",
            stdin=f"{answer}\n" * 200)
    quiz = tmp_path / "grades" / "module01"
    run(AUTOGRADER, "quiz", "grade", "module01", str(records), "--key", str(key), "--out", str(quiz), ok=(0, 1))

    # 5. The practical (pre-made, see above), then the class report and the LMS exports.
    practical = write_practical(tmp_path / "practical.json")
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email,sis_login_id\nreference,ref@example.org,ref01\nada,ada@example.org,ada01\n")
    out = tmp_path / "class"
    run(AUTOGRADER, "class", "report", str(lab01), str(practice / "grades" / "lab02-ml-lifecycle"), str(hw1),
        str(quiz), str(practical), "--roster", str(roster), "--out", str(out))

    table = {r["student"]: r for r in rows(out / "class.csv")}
    assert table["partly-done"]["lab01-environment"] == late["partly-done"]["score"], "the late penalty is in"
    assert "lab01-environment: late" in table["partly-done"]["notes"]
    assert table["ada"]["hw1"] == "5.5", "2 autograded + 2.5 + 1 entered by hand"
    assert "hw1: 4 point(s) pending manual grading" in table["bob"]["notes"]
    assert table["reference"]["quiz module01"] != "" and table["ada"]["quiz module01"] == ""
    assert table["ada"]["practical"] == f"{PRACTICAL['ada']:g}" and table["reference"]["practical"] == ""
    canvas = list(csv.reader((out / "canvas.csv").open(newline="", encoding="utf-8")))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0].strip() == "Points Possible"
    assert any(r[3] == "ref01" for r in canvas[2:]), "the roster's SIS Login ID"
    moodle = rows(out / "moodle.csv")
    assert next(r for r in moodle if r["Email address"] == "ada@example.org")["hw1"] == "5.5"

    # 6. The report as a person opens it.
    from test_browser_class_report import _browser, rendered_plots

    if _browser() is None:
        pytest.skip("no Chromium on PATH: `make browser` installs it (everything before this passed)")
    page = out / "report.html"
    expected = page.read_text().count('<img class="plot"')
    counted, marks, dom = rendered_plots(page, tmp_path / "profile")
    assert expected >= 10 and counted == expected and marks == ["yes"] * expected, marks
    assert "Distractors: quiz module01" in dom and "Flagged submissions" in dom
