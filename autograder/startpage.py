"""What the start page (modules/START-HERE.ipynb) shows: the course map, the prerequisites check and progress.

Progress is read, never written, here: `check`, `quiz take` (exams: taken) and `assess` (the practical) record
results under workspace/.progress/ (autograder.progress); this module only turns those records into a table and a
chart, afresh on every call. The learner's start page (workspace/START-HERE.ipynb) shows them as outputs that
Jupyter recomputes each time the page is opened (autograder/startpage_server.py), not a snapshot of `make lab`.
Everything returns plain data or text so it can be tested without a kernel; `show_*` adds the notebook view.
"""

from __future__ import annotations

import html
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder.paths import workspace_dir
from autograder.progress import ProgressRecord, read_all
from autograder.reports import format_table


@dataclass(frozen=True)
class Lesson:
    unit: int
    number: int
    title: str
    notebook: str  # path under modules/
    hours: float
    lab: str | None  # the lab that practises this lesson, if any
    quiz: str  # quiz id for `autograder quiz take` and show_quiz()


_U1 = "01-foundations-of-ml-infrastructure"
_U2 = "02-mlops-and-tooling"

UNITS: dict[int, str] = {1: "Foundations of ML Infrastructure", 2: "Foundations of MLOps & Tooling (Phase 1)"}

COURSE: tuple[Lesson, ...] = (
    Lesson(1, 1, "Intro to ML infrastructure and MLOps", f"{_U1}/01-intro-to-ml-infra-and-mlops.ipynb", 1.0,
           None, "lesson01"),
    Lesson(1, 2, "Environment setup", f"{_U1}/02-environment-setup.ipynb", 1.5, "lab01-environment", "lesson02"),
    Lesson(1, 3, "ML infrastructure basics", f"{_U1}/03-ml-infrastructure-basics.ipynb", 1.5,
           "lab02-ml-lifecycle", "lesson03"),
    Lesson(1, 4, "ML frameworks", f"{_U1}/04-ml-frameworks.ipynb", 2.0, "lab03-frameworks", "lesson04"),
    Lesson(1, 5, "Cloud computing for ML", f"{_U1}/05-cloud-computing-intro.ipynb", 1.5, "lab04-cloud", "lesson05"),
    Lesson(1, 6, "Model serving", f"{_U1}/06-model-serving.ipynb", 2.0, "lab05-torchserve", "lesson06"),
    Lesson(1, 7, "Docker basics", f"{_U1}/07-docker-basics.ipynb", 2.0, "lab06-docker", "lesson07"),
    Lesson(1, 8, "API development for ML", f"{_U1}/08-api-development-for-ml.ipynb", 2.0, "lab07-api", "lesson08"),
    Lesson(2, 1, "The MLOps lifecycle", f"{_U2}/01-mlops-lifecycle.ipynb", 1.0, None, "lesson09"),
    Lesson(2, 2, "Orchestration with Airflow", f"{_U2}/02-orchestration-with-airflow.ipynb", 2.0,
           "phase1-lab1-airflow-dag", "lesson10"),
    Lesson(2, 3, "PyTorch core concepts", f"{_U2}/03-pytorch-core-concepts.ipynb", 2.0,
           "phase1-lab2-pytorch-training", "lesson11"),
    Lesson(2, 4, "Configuration-driven development", f"{_U2}/04-configuration-driven-development.ipynb", 1.5,
           "phase1-lab3-config-driven", "lesson12"),
    Lesson(2, 5, "Four habits of reliable pipelines", f"{_U2}/05-four-habits.ipynb", 1.0, None, "lesson13"),
)


# The end-of-unit quiz of each unit (summative: graded, taken once with `--exam`).
UNIT_QUIZ: dict[int, str] = {1: "module01", 2: "phase1"}


def labs() -> list[str]:
    return [lesson.lab for lesson in COURSE if lesson.lab]


def quizzes() -> list[str]:
    """Every quiz in course order: each unit's lesson quizzes, then its unit quiz; each once."""
    ordered = []
    for unit in UNITS:
        ordered += [lesson.quiz for lesson in COURSE if lesson.unit == unit] + [UNIT_QUIZ[unit]]
    return list(dict.fromkeys(ordered))


def course_map_text() -> str:
    rows = [(f"{x.unit}.{x.number}", x.title, f"{x.hours:g} h", x.lab or "-", x.quiz) for x in COURSE]
    return format_table(["lesson", "title", "time", "lab", "quiz"], rows)


# ---------------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressRow:
    kind: str  # "lab", "quiz" (self-check), "exam" (a unit's graded quiz) or "practical"
    name: str
    status: str  # "passed", "not yet" (tried, fell short), "not started"; an exam: "taken" or "not taken"
    score: str  # "7/10" or ""; an exam shows none (the instructor grades it)
    when: str  # the last attempt's date, or ""
    copy: str  # workspace folder of a lab if the learner has opened it, else ""


PASSED, NOT_YET, NOT_STARTED, TAKEN, NOT_TAKEN = "passed", "not yet", "not started", "taken", "not taken"
PRACTICAL = "practical"
KIND_ORDER = ("lab", "quiz", "exam", "practical")


def self_check_quizzes() -> list[str]:
    return [q for q in quizzes() if q not in UNIT_QUIZ.values()]


def exams() -> list[str]:
    return [UNIT_QUIZ[unit] for unit in UNITS]


def _score(rec: ProgressRecord) -> str:
    return f"{rec.score:g}/{rec.max_score:g}"


def _exam_taken(root: Path, quiz_id: str) -> bool:
    """An exam record in the workspace (where `quiz take --exam` writes it) counts even without a progress record."""
    folder = workspace_dir(root) / "quizzes" / quiz_id
    return folder.is_dir() and any(folder.glob("*.yaml"))


def progress_rows(root: Path) -> list[ProgressRow]:
    """One row per lab, self-check quiz, exam and the practical, in course order, from the learner's records under
    `root`, read afresh on every call. Records for items the course map does not know are appended, not dropped."""
    records = {(r.kind, r.name): r for r in read_all(root)}
    known = ([("lab", n) for n in labs()] + [("quiz", n) for n in self_check_quizzes()]
             + [("exam", n) for n in exams()] + [(PRACTICAL, PRACTICAL)])
    for name in exams():  # an exam taken before this version recorded exams: its quiz record says "taken" too
        if ("quiz", name) in records and ("exam", name) not in records:
            records[("exam", name)] = records.pop(("quiz", name))
    wanted = known + sorted(set(records) - set(known))
    rows = []
    for kind, name in wanted:
        rec = records.get((kind, name))
        when = "" if rec is None else rec.when[:10]
        if kind == "exam":
            taken = rec is not None or _exam_taken(root, name)
            rows.append(ProgressRow(kind, name, TAKEN if taken else NOT_TAKEN, "", when, ""))
            continue
        opened = kind == "lab" and (workspace_dir(root) / name).is_dir()
        rows.append(ProgressRow(
            kind=kind,
            name=name,
            status=NOT_STARTED if rec is None else (PASSED if rec.passed else NOT_YET),
            score="" if rec is None else _score(rec),
            when=when,
            copy=f"workspace/{name}/" if opened else "",
        ))
    return rows


def summary(rows: list[ProgressRow]) -> dict[str, tuple[int, int]]:
    """kind -> (done, total): labs and quizzes passed, exams taken, the practical passed."""
    out: dict[str, tuple[int, int]] = {}
    for kind in KIND_ORDER:
        of_kind = [r for r in rows if r.kind == kind]
        out[kind] = (sum(r.status in (PASSED, TAKEN) for r in of_kind), len(of_kind))
    return out


def next_step(rows: list[ProgressRow]) -> str:
    """One sentence telling the learner what to do next, with a command that runs from the repository root."""
    for row in rows:
        if row.kind == "lab" and row.status == NOT_YET:
            return (f"Fix {row.name}: open workspace/{row.name}/, then rerun "
                    f"`.venv/bin/autograder check {row.name}`.")
    for row in rows:
        if row.kind == "lab" and row.status == NOT_STARTED:
            return (f"Start {row.name}: work in workspace/{row.name}/ and self-check with "
                    f"`.venv/bin/autograder check {row.name}`.")
    for row in rows:
        if row.kind == "quiz" and row.status != PASSED:
            return f"Take the quiz {row.name}: `.venv/bin/autograder quiz take {row.name}`."
    for row in rows:
        if row.kind == "exam" and row.status == NOT_TAKEN:
            return (f"Take the exam {row.name} once, with the ticket your instructor gives you: "
                    f"`.venv/bin/autograder quiz take {row.name} --exam --ticket YOUR_TICKET.yaml`.")
    practical = next((r for r in rows if r.kind == PRACTICAL), None)
    if practical is not None and practical.status != PASSED:
        return ("Score your service for the practical: `.venv/bin/autograder assess --app "
                "workspace/lab07-api/app.py:app` (the start page shows your last score).")
    return ("Everything passes: hand in the practical with "
            "`.venv/bin/autograder submit practical --student YOUR_ID`.")


def _practical_text(rows: list[ProgressRow]) -> str:
    row = next((r for r in rows if r.kind == PRACTICAL), None)
    if row is None or row.status == NOT_STARTED:
        return "practical not assessed yet"
    return f"practical {row.score} ({row.status}, {row.when})"


def progress_text(root: Path) -> str:
    rows = progress_rows(root)
    table = format_table(["kind", "name", "status", "score", "last try", "your copy"],
                         [(r.kind, r.name, r.status, r.score, r.when, r.copy) for r in rows])
    counts = summary(rows)
    head = (f"labs passed {counts['lab'][0]}/{counts['lab'][1]}, quizzes passed {counts['quiz'][0]}/"
            f"{counts['quiz'][1]}, exams taken {counts['exam'][0]}/{counts['exam'][1]}, {_practical_text(rows)}")
    return f"{head}\n\n{table}\n\nNext: {next_step(rows)}"


_COLOURS = {PASSED: "#2e7d32", NOT_YET: "#c62828", NOT_STARTED: "#757575", TAKEN: "#1565c0", NOT_TAKEN: "#757575"}


def progress_html(root: Path) -> str:
    rows = progress_rows(root)
    cells = []
    for r in rows:
        colour = _COLOURS[r.status]
        values = [r.kind, r.name, f'<b style="color:{colour}">{r.status}</b>', r.score, r.when, r.copy]
        cells.append("<tr>" + "".join(f"<td>{v if i == 2 else html.escape(v)}</td>" for i, v in enumerate(values))
                     + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("kind", "name", "status", "score", "last try", "your copy"))
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(cells)}</tbody></table>"
            f"<p><b>Next:</b> {html.escape(next_step(rows))}</p>")


_BAR_LABELS = {"lab": "labs passed", "quiz": "quizzes passed", "exam": "exams taken", "practical": "practical"}


def plot_progress(root: Path, fig=None):  # -> matplotlib Figure; matplotlib is imported only when asked for
    """A bar per kind: done of total. Draws into `fig` when given (a pyplot-free Figure), else a new pyplot one."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(6, 2.2))
    counts = summary(progress_rows(root))
    ax = fig.add_subplot()
    for y, kind in enumerate(KIND_ORDER):
        done, total = counts[kind]
        ax.barh(y, total, color="#e0e0e0")
        ax.barh(y, done, color=_COLOURS[PASSED])
        ax.text(total, y, f"  {done}/{total}", va="center")
    ax.set_yticks(list(range(len(KIND_ORDER))), [_BAR_LABELS[k] for k in KIND_ORDER])
    ax.invert_yaxis()  # labs first, as in the table
    ax.set_xlim(0, max(c[1] for c in counts.values()) + 2)
    ax.set_title("Your progress")
    fig.tight_layout()
    return fig


def show_progress(root: Path) -> None:
    """The notebook view: the table (HTML) and a bar of passed items."""
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    display(HTML(progress_html(root)))
    plot_progress(root)
    plt.show()


# ------------------------------------------------------------------------------------------------ prerequisites


@dataclass(frozen=True)
class DoctorResult:
    ok: bool
    output: str  # the table `autograder doctor` prints, or why it could not run


def prerequisites(root: Path) -> DoctorResult:
    """The `autograder doctor` check, run in this process (doctor's own logic: mlinfra.envcheck).

    Falls back to running the command when the course library cannot be imported, which is itself the most
    likely thing a broken setup needs to hear about.
    """
    try:
        from autograder.doctor import MARKS
        from mlinfra.envcheck import evaluate, probe
    except ImportError:
        return run_doctor(root)
    report = evaluate(probe(root))
    rows = [(MARKS.get(c.status, c.status), c.name, c.detail, c.fix) for c in report.checks]
    return DoctorResult(report.ok, format_table(("", "check", "found", "what to do"), rows))


def run_doctor(root: Path, timeout: float = 60.0) -> DoctorResult:
    """Run `autograder doctor` in a fresh interpreter, as a learner would in a terminal."""
    try:
        done = subprocess.run([sys.executable, "-m", "autograder", "doctor"], check=False, cwd=root,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return DoctorResult(False, f"`.venv/bin/autograder doctor` took over {timeout:g} s: run it in a terminal instead")
    return DoctorResult(done.returncode == 0, (done.stdout + done.stderr).strip())
