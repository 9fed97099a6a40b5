"""The class report: one self-contained HTML file (every plot an SVG data URI, no file or network beside it), so
it can be mailed, archived or opened from any folder.

Sections: the class table; per assessment the score distribution, each item's share passing and discrimination
(plots and a table); each quiz's distractor choice rates; flagged submissions and everything a person must still
do (pending manual points, grader errors, missing hand-ins). Learner-chosen text (ids, reasons) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

from autograder.classbook import analysis
from autograder.classbook.exports import ClassTable, column
from autograder.classbook.sources import NEEDS_A_PERSON, Assessment

PASS_COLOUR, FAIL_COLOUR, NEUTRAL = "#2e7d32", "#c62828", "#607d8b"

_STYLE = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}.warn{color:#a00}.plots{display:flex;flex-wrap:wrap;gap:1em}
img.plot{max-width:100%;border:1px solid #eee}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}"""

# Marks each plot the browser decoded (data-rendered="yes"): what a reader, or a headless test, can check.
_SCRIPT = """window.addEventListener('load',function(){document.querySelectorAll('img.plot').forEach(function(i){
i.setAttribute('data-rendered',i.complete&&i.naturalWidth>0?'yes':'no')});
document.body.setAttribute('data-plots',document.querySelectorAll('img.plot[data-rendered=yes]').length)});"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "class-report", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return base64.b64encode(buf.getvalue().encode("utf-8")).decode("ascii")


def _img(fig: Any, alt: str) -> str:
    return f'<img class="plot" alt="{_e(alt)}" src="data:image/svg+xml;base64,{_svg(fig)}">'


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height))


def distribution_plot(a: Assessment) -> str:
    scores = [r.score for r in a.results.values() if r.status not in analysis.NOT_SCORED]
    fig = _figure(4.2, 2.6)
    ax = fig.add_subplot()
    top = a.max_score or max(scores, default=1.0) or 1.0
    ax.hist(scores, bins=min(10, max(1, len(set(scores)))), range=(0, top), color=NEUTRAL, edgecolor="white")
    ax.set_xlim(0, top)
    ax.set_xlabel(f"score (of {top:g})")
    ax.set_ylabel("learners")
    ax.set_title(f"{column(a)}: score distribution ({len(scores)} learners)", fontsize=9)
    return _img(fig, f"score distribution of {a.name}")


def items_plot(a: Assessment, stats: list[analysis.ItemStats]) -> str:
    fig = _figure(8.0, 0.35 * len(stats) + 1.2)
    share, disc = fig.subplots(1, 2, sharey=True)
    names = [s.item[:40] for s in stats]
    ys = range(len(stats))
    share.barh(ys, [s.share_passing for s in stats], color=[PASS_COLOUR if s.share_passing >= 0.5 else FAIL_COLOUR
                                                             for s in stats])
    share.set_yticks(list(ys), names, fontsize=7)
    share.invert_yaxis()
    share.set_xlim(0, 1)
    share.set_xlabel("share with full marks")
    values = [s.discrimination if s.discrimination is not None else 0.0 for s in stats]
    disc.barh(ys, values, color=[NEUTRAL if v >= 0.2 else FAIL_COLOUR for v in values])
    disc.axvline(0, color="#999", linewidth=0.8)
    disc.set_xlim(-1, 1)
    disc.set_xlabel("discrimination (top 27% - bottom 27%)")
    fig.suptitle(f"{column(a)}: per item", fontsize=9)
    return _img(fig, f"share passing and discrimination per item of {a.name}")


def distractor_plot(a: Assessment, questions: list[analysis.QuestionChoices]) -> str:
    fig = _figure(8.0, 0.32 * len(questions) + 1.2)
    ax = fig.add_subplot()
    for y, q in enumerate(questions):
        left = 0.0
        for o in q.options:
            if o.rate <= 0:
                continue
            ax.barh(y, o.rate, left=left, color=PASS_COLOUR if o.correct else FAIL_COLOUR, edgecolor="white")
            if o.rate >= 0.08:
                ax.text(left + o.rate / 2, y, o.option, ha="center", va="center", color="white", fontsize=7)
            left += o.rate
    ax.set_yticks(list(range(len(questions))), [q.question[:40] for q in questions], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of learners picking each option (green: a right option)")
    ax.set_title(f"quiz {a.name}: distractor choice rates", fontsize=9)
    return _img(fig, f"distractor choice rates of quiz {a.name}")


def _class_section(table: ClassTable) -> str:
    head = ["learner", *(f"{column(a)} (/{a.max_score:g})" for a in table.assessments), "total", "%", "notes"]
    rows = []
    for s in table.students():
        got, out_of = table.total(s)
        scores = [table.score(s, a) for a in table.assessments]
        rows.append([table.people[s].student, *("" if v is None else f"{v:g}" for v in scores), f"{got:g}",
                     f"{100 * got / out_of:.1f}" if out_of else "", "; ".join(table.notes(s))])
    numeric = list(range(1, len(table.assessments) + 3))
    return "<h2>Class table</h2>" + _table(head, rows, numeric)


def _assessment_section(a: Assessment) -> str:
    stats = analysis.item_stats(a)
    parts = [f"<h2>{_e(column(a))} ({_e(a.kind)}, max {a.max_score:g})</h2>",
             f"<p>From <code>{_e(a.source)}</code>.</p>"]
    parts += [f'<p class="warn">{_e(n)}</p>' for n in a.notes]
    plots = [distribution_plot(a)]
    if stats:
        plots.append(items_plot(a, stats))
    parts.append('<div class="plots">' + "".join(plots) + "</div>")
    rows = [[s.item, f"{s.max_points:g}", s.asked, f"{100 * s.share_passing:.0f}%", f"{100 * s.mean_credit:.0f}%",
             "n/a (too few)" if s.discrimination is None else f"{s.discrimination:+.2f}"] for s in stats]
    parts.append(_table(["item", "points", "asked", "full marks", "mean credit", "discrimination"], rows,
                        [1, 2, 3, 4, 5]))
    questions = analysis.choice_stats(a)
    if questions:
        parts.append(f"<h3>Distractors: quiz {_e(a.name)}</h3>" + distractor_plot(a, questions))
        rows = [[q.question, q.asked, ", ".join(f"{o.option}{'*' if o.correct else ''} {100 * o.rate:.0f}%"
                                                  for o in q.options),
                 ", ".join(analysis.weak_distractors(q)) or "-", q.no_choice] for q in questions]
        parts.append("<p>* marks a right option. A wrong option nobody picks distracts no one.</p>"
                     + _table(["question", "asked", "options picked", "picked by nobody", "no choice"], rows, [1, 4]))
    return "".join(parts)


def _attention_section(table: ClassTable) -> str:
    rows = []
    for a in table.assessments:
        for r in a.results.values():
            why = []
            if r.flags or r.status == "flagged":
                why.append("flagged: " + "; ".join(r.flags or [r.reason]))
            if r.status in NEEDS_A_PERSON:
                why.append(f"{r.status}: {r.reason}")
            if r.pending:
                why.append(f"{r.pending:g} point(s) pending manual grading")
            if why:
                rows.append([column(a), r.student, r.status, " | ".join(why)[:1200]])
    if not rows:
        return "<h2>Flagged submissions</h2><p>None: nothing needs a person's review.</p>"
    return ("<h2>Flagged submissions</h2><p>Each needs a person's review before grades are final.</p>"
            + _table(["assessment", "learner", "status", "why"], rows))


def report_html(table: ClassTable, title: str = "Class report") -> str:
    n = len(table.students())
    late = sum(1 for a in table.assessments for r in a.results.values() if r.penalty)
    intro = (f"<p>{n} learner(s), {len(table.assessments)} assessment(s); {late} late submission(s) with a "
             "penalty. Scores are as graded: late penalties taken off, manual points included once entered.</p>")
    body = [f"<h1>{_e(title)}</h1>", intro, _attention_section(table), _class_section(table)]
    body += [_assessment_section(a) for a in table.assessments]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head>\n<body>{''.join(body)}</body></html>\n")
