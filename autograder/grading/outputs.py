"""What a graded batch writes: grades.csv, summary.json and feedback/<student>.html, all from trusted results.

Feedback carries, per test, its name, points, pass/fail and the assertion message: never a test's source (hidden
tests included) nor solution text. `--reveal-hidden` (the instructor's explicit choice, after the deadline) adds
nbgrader's own feedback page, which shows the hidden tests.
"""

from __future__ import annotations

import csv
import html
import io
import shutil
from pathlib import Path
from typing import Any

from autograder.reports import ensure_dir, to_jsonable, write_json, write_text
from mlinfra.base.output import csv_cell
from mlinfra.base.results import Outcome


def reason(outcome: Outcome) -> str:
    text = "; ".join([*outcome.data.get("flags", []), *outcome.notes])
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # no lone surrogate reaches a file


def columns(tests: dict[str, float], outcomes: list[Outcome]) -> list[str]:
    """The notebook's graded tests, then any further checks (deploy checks) in the order first seen."""
    names = list(tests)
    for outcome in outcomes:
        for check in outcome.checks:
            if check.name not in names:
                names.append(check.name)
    return names


def grades_csv(lab: str, names: list[str], outcomes: list[Outcome]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    # every cell through csv_cell: a student id, a test name or a reason may begin like a spreadsheet formula
    writer.writerow([csv_cell(c) for c in ["student", "status", "score", "max_score", *names, "reason"]])
    for o in outcomes:
        points = {c.name: c.points for c in o.checks}
        writer.writerow([csv_cell(c) for c in [o.subject, o.status, f"{o.score:g}", f"{o.max_score:g}",
                                               *(f"{points.get(n, 0.0):g}" for n in names), reason(o)]])
    return buf.getvalue()


def summary(lab: str, tests: dict[str, float], names: list[str], outcomes: list[Outcome], seconds: float,
            notes: list[str], sandbox: str) -> dict[str, Any]:
    scores = [o.score for o in outcomes]
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
                      "full_marks": sum(1 for o in outcomes
                                        if (c := o.check(n)) is not None and c.points >= maxima.get(n, 0.0))}
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
                                                                        "feedback")}
    raw["score"], raw["max_score"], raw["reason"] = outcome.score, outcome.max_score, reason(outcome)
    return raw


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
.passed{{color:#060}}.failed,.error,.timeout,.not.run{{color:#a00}}</style></head>
<body><h1>{title}</h1><p>Status: <b>{status}</b>. Score: <b>{score:g} / {max_score:g}</b>.</p>
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
                        score=outcome.score, max_score=outcome.max_score, rows=rows,
                        notes=f"<h2>Notes</h2><ul>{notes}</ul>" if notes else "")


def write_all(out_dir: Path, lab: str, tests: dict[str, float], outcomes: list[Outcome], *, seconds: float,
              notes: list[str], sandbox: str, revealed: dict[str, Path] | None = None) -> dict[str, Any]:
    """Write every output; each file atomically (written aside, then renamed into place)."""
    ensure_dir(out_dir)
    feedback_dir = ensure_dir(out_dir / "feedback")
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
        o.data["feedback"] = str(dest)
    names = columns(tests, outcomes)
    data = summary(lab, tests, names, outcomes, seconds, notes, sandbox)
    write_json(data, out_dir / "summary.json")
    write_text(out_dir / "grades.csv", grades_csv(lab, names, outcomes))
    return data
