"""What a graded batch writes: grades.csv, summary.json and feedback/<student>.html, all from trusted results.

Feedback carries, per test, its name, points, pass/fail and the assertion message: never a test's source (hidden
tests included) nor solution text. `--reveal-hidden` (the instructor's explicit choice, after the deadline) adds
nbgrader's own feedback page, which shows the hidden tests.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

from autograder.grading.manual import ANSWERS_DIR, pending_points
from autograder.reports import ensure_dir, to_jsonable, write_json, write_text
from mlinfra.base.output import csv_cell
from mlinfra.base.results import PENDING, Outcome

# grades.csv's columns before the tests' (helpers and the class report read them by name):
#   score          the final grade: tests, deploy checks and manual points entered, less the late penalty
#   max_score      every test's, check's and manual cell's points
#   submitted_at   when the instructor received the submission (ISO 8601, UTC; archive or folder time as
#                  collected), empty when nothing was handed in
#   late_by        hours after the learner's due time (their extension's when they have one); 0 on time, empty
#                  without a due time in the course file
#   penalty        points the late rule took off
#   manual_pending points of manually graded cells waiting for `autograder review`
LEAD_COLUMNS = ("student", "status", "score", "max_score", "submitted_at", "late_by", "penalty", "manual_pending")


def penalty(outcome: Outcome) -> float:
    """Points the late rule took off (0 without a due time or when on time)."""
    late = outcome.data.get("late") or {}
    return float(late.get("penalty", 0.0) or 0.0)


def final_score(outcome: Outcome) -> float:
    """What the learner gets: the tests' and the entered manual points, less the late penalty."""
    return round(outcome.score - penalty(outcome), 3)


def late_note(outcome: Outcome) -> str:
    from autograder.grading.late import Lateness

    late = dict(outcome.data.get("late") or {})
    late.pop("penalty", None)
    try:
        return Lateness(**late).note() if late else ""
    except TypeError:
        return ""


def lost_points(outcome: Outcome, said: str = "") -> list[str]:
    """Why each check lost points: its name and the first line of its message (or its status); checks with the
    same message share a line, and a message `said` already holds (a note) is not repeated."""
    by_message: dict[str, list[str]] = {}
    for c in outcome.checks:
        if c.points >= c.max_points or c.status == PENDING:
            continue
        first = c.message.strip().splitlines()[0] if c.message.strip() else c.status
        if first not in said or first == c.status:
            by_message.setdefault(first, []).append(c.name)
    return [f"{', '.join(names)}: {message}" for message, names in by_message.items()
            if f"{', '.join(names)}: {message}" not in said]


def reason(outcome: Outcome) -> str:
    """Why the learner has this grade, for grades.csv and the table: review flags first, then the late rule, what
    the grader noted, every check that lost points, and the manual points still pending."""
    parts = [*outcome.data.get("flags", [])]
    late = late_note(outcome)
    if late:
        parts.append(late)
    parts += outcome.notes
    parts += lost_points(outcome, "; ".join(parts))
    pending = [c.name for c in outcome.checks if c.status == PENDING]
    if pending:
        parts.append(f"needs manual grading: {', '.join(pending)} ({pending_points(outcome):g} points pending; "
                     ".venv/bin/autograder review)")
    return visible("; ".join(parts))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Learner-made text as safe to print on the instructor's terminal and to write anywhere: control characters
    (a terminal's escape sequences among them: a failing assertion's message is the learner's to write) shown as
    \\xNN, and no lone surrogate."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def columns(tests: dict[str, float], outcomes: list[Outcome]) -> list[str]:
    """The notebook's graded tests, then any further checks (deploy checks) in the order first seen."""
    names = list(tests)
    for outcome in outcomes:
        for check in outcome.checks:
            if check.name not in names:
                names.append(check.name)
    return names


def lead_cells(o: Outcome) -> list[str]:
    late = o.data.get("late") or {}
    late_by = f"{float(late['late_by_hours']):g}" if late.get("due") and late.get("submitted_at") else ""
    return [o.subject, o.status, f"{final_score(o):g}", f"{o.max_score:g}", late.get("submitted_at", ""), late_by,
            f"{penalty(o):g}", f"{pending_points(o):g}"]


def grades_csv(lab: str, names: list[str], outcomes: list[Outcome]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    # every cell through csv_cell: a student id, a test name or a reason may begin like a spreadsheet formula
    writer.writerow([csv_cell(c) for c in [*LEAD_COLUMNS, *names, "reason"]])
    for o in outcomes:
        points = {c.name: c.points for c in o.checks}
        writer.writerow([csv_cell(c) for c in [*lead_cells(o), *(f"{points.get(n, 0.0):g}" for n in names),
                                               reason(o)]])
    return buf.getvalue()


def summary(lab: str, tests: dict[str, float], names: list[str], outcomes: list[Outcome], seconds: float,
            notes: list[str], sandbox: str) -> dict[str, Any]:
    scores = [final_score(o) for o in outcomes]
    maxima = {n: mp for n, mp in tests.items()}
    for o in outcomes:
        for c in o.checks:
            maxima.setdefault(c.name, c.max_points)
    return {
        "lab": lab,
        "students": len(outcomes),
        "max_score": sum(maxima.values()),
        "mean_score": round(sum(scores) / len(scores), 3) if scores else None,
        "statuses": {st: sum(1 for o in outcomes if o.status == st) for st in sorted({o.status for o in outcomes})},
        "flagged": {o.subject: o.data.get("flags", []) for o in outcomes if o.data.get("flags")},
        "tests": {n: {"max_points": maxima.get(n, 0.0),
                      "full_marks": len([o for o in outcomes
                                         if (got := o.check(n)) is not None and got.points >= maxima.get(n, 0.0)])}
                  for n in names},
        "sandbox": sandbox,
        "seconds": seconds,
        "notes": notes,
        "results": [_public(o) for o in outcomes],
    }


def _public(outcome: Outcome) -> dict[str, Any]:
    raw = to_jsonable(outcome)
    raw["data"] = {k: v for k, v in raw.get("data", {}).items() if k in ("flags", "seconds", "timing", "kernels",
                                                                        "warm", "forked", "zygote failed", "sandbox",
                                                                        "feedback", "late", "received",
                                                                        "manual_pending")}
    raw["score"], raw["max_score"], raw["reason"] = final_score(outcome), outcome.max_score, reason(outcome)
    raw["raw_score"] = outcome.score  # before the late penalty
    return raw


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
.passed{{color:#060}}.failed,.error,.timeout,.not.run{{color:#a00}}.pending{{color:#a60}}</style></head>
<body><h1>{title}</h1><p>Status: <b>{status}</b>. Score: <b>{score:g} / {max_score:g}</b>.</p>{late}
<table><tr><th>test</th><th>where</th><th>result</th><th>points</th><th>message</th></tr>
{rows}
</table>{notes}
<p>Each test shows its name, points, result and message only; the tests themselves are not shown.</p>
</body></html>
"""


def feedback_html(lab: str, outcome: Outcome) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{html.escape(c.where)}</td>"
        f"<td class=\"{html.escape(c.status)}\">{html.escape(c.status)}</td>"
        f"<td>{c.points:g} / {c.max_points:g}</td><td>{html.escape(c.message)}</td></tr>"
        for c in outcome.checks)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in outcome.notes)
    return _PAGE.format(title=html.escape(f"{lab}: feedback for {outcome.subject}"), status=html.escape(outcome.status),
                        score=final_score(outcome), max_score=outcome.max_score, rows=rows,
                        late=_late_html(outcome), notes=f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")


def _late_html(outcome: Outcome) -> str:
    """When it was received, against which due time, and the late penalty (the points it took off)."""
    late = outcome.data.get("late") or {}
    if not late.get("submitted_at"):
        return ""
    text = f"Received: {late['submitted_at']}."
    if late.get("due"):
        text += f" Due: {late['due']}" + (" (your extension)" if late.get("extension") else "") + "."
        note = late_note(outcome)
        if note:
            text += f" {note[0].upper()}{note[1:]}."
        if penalty(outcome):
            text += f" Late penalty: {penalty(outcome):g} point(s) (score before it: {outcome.score:g})."
    return f"\n<p>{html.escape(text)}</p>"


def share(path: Path) -> None:
    """An output readable as any file this user creates (the instructor's group, with the usual umask 022 or
    027): write_text's temporary files are 0600, which would hide the grades from a teaching assistant."""
    mask = os.umask(0)
    os.umask(mask)
    with contextlib.suppress(OSError):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_answers(out_dir: Path, outcomes: list[Outcome]) -> None:
    """OUT/answers/<student>.json: each learner's manually graded answers, for `autograder review`. Kept across a
    refresh (the outcomes then no longer carry them)."""
    carrying = [o for o in outcomes if o.data.get("answers")]
    if not carrying:
        return
    folder = ensure_dir(out_dir / ANSWERS_DIR)
    share(folder)
    for o in carrying:
        dest = folder / f"{o.subject}.json"
        write_json(o.data["answers"], dest)
        share(dest)


def write_all(out_dir: Path, lab: str, tests: dict[str, float], outcomes: list[Outcome], *, seconds: float,
              notes: list[str], sandbox: str, revealed: dict[str, Path] | None = None,
              term: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every output; each file atomically (written aside, then renamed into place), readable by the
    instructor's group. `term` (the course file's rule, the manual cells) goes into summary.json, so
    `autograder review` can write the outputs again without regrading."""
    ensure_dir(out_dir)
    feedback_dir = ensure_dir(out_dir / "feedback")
    share(feedback_dir)
    for stale in feedback_dir.glob("*.html"):
        stale.unlink()
    for o in outcomes:
        dest = feedback_dir / f"{o.subject}.html"
        if revealed and o.subject in revealed and revealed[o.subject].is_file():
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(revealed[o.subject], tmp)
            tmp.replace(dest)
        else:
            write_text(dest, feedback_html(lab, o))
        share(dest)
        o.data["feedback"] = str(dest)
    write_answers(out_dir, outcomes)
    names = columns(tests, outcomes)
    data = summary(lab, tests, names, outcomes, seconds, notes, sandbox)
    data["term"] = {"tests": dict(tests), **(term or {})}
    write_json(data, out_dir / "summary.json")
    write_text(out_dir / "grades.csv", grades_csv(lab, names, outcomes))
    for name in ("summary.json", "grades.csv", "gradebook.db"):
        if (out_dir / name).is_file():
            share(out_dir / name)
    return data
