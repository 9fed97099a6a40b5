"""`autograder review`: enter the points of manually graded cells for a graded folder, then rewrite its outputs.

Interactive on a terminal: each pending answer is shown (the learner's text as handed in) and the instructor types
points and a comment. For scripts and tests: `--points FILE.yaml` (the OUT/manual.yaml format, manual.py) or
`--set STUDENT:GRADE_ID=POINTS[:COMMENT]`, repeatable. Points are kept in OUT/manual.yaml, which grading reads
again, so a regrade keeps them. Nothing is run: grades.csv, summary.json, feedback/ and the class gradebook are
rewritten from summary.json (term.refresh).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError
from autograder.grading import manual, term
from autograder.grading.outputs import visible
from autograder.reports import add_json_option, format_table, write_text
from mlinfra.base.results import PENDING, Outcome
from mlinfra.base.runner import Done


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "review",
        help="enter points for manually graded cells of a graded folder (then grades.csv and feedback are rewritten)",
        description="Show each answer that needs a person (nbgrader's manually graded answer and task cells) in "
        "OUT, the folder `.venv/bin/autograder grade` wrote, and take its points and a comment. Points are kept in "
        "OUT/manual.yaml (a regrade keeps them); grades.csv, summary.json, feedback/ and gradebook.db are then "
        "rewritten without running anything. Without a terminal, or with --list, it lists what is pending.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="the folder `.venv/bin/autograder grade --out` wrote")
    parser.add_argument("--points", type=Path, metavar="FILE",
                        help="points from a YAML file: {student: {grade_id: {points: N, comment: TEXT}}}")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="STUDENT:GRADE_ID=POINTS",
                        help="one cell's points, optionally ':COMMENT' after them; repeatable")
    parser.add_argument("--student", action="append", default=[], help="only these students (repeatable)")
    parser.add_argument("--all", action="store_true", help="interactive: also answers that already have points")
    parser.add_argument("--list", action="store_true", help="only list what is pending; change nothing")
    parser.add_argument("--course", type=Path, metavar="FILE",
                        help="apply this course file's due times, extensions and late rule instead of the one the "
                        "batch was graded with (an extension granted after grading), without regrading")
    add_json_option(parser)
    parser.set_defaults(func=run)


def parse_set(text: str, cells: dict[str, float]) -> tuple[str, str, manual.Entry]:
    """'ada:q1=2' or 'ada:q1=2:Good reasoning' -> (student, grade_id, Entry)."""
    who, eq, rest = text.partition("=")
    student, colon, gid = who.partition(":")
    if not (eq and colon and student and gid):
        raise UsageError(f"--set {text!r}: write STUDENT:GRADE_ID=POINTS[:COMMENT], e.g. ada:q-explain=2")
    raw, _, comment = rest.partition(":")
    try:
        points = float(raw)
    except ValueError:
        raise UsageError(f"--set {text!r}: {raw!r} is not a number of points") from None
    parsed = manual.parse_entries(Path("--set"), {student: {gid: {"points": points, "comment": comment.strip()}}},
                                  cells)
    return student, gid, parsed[student][gid]


def _answers(out: Path, student: str) -> dict[str, Any]:
    path = out / manual.ANSWERS_DIR / f"{student}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return "q"


def _interactive(out: Path, outcomes: list[Outcome], cells: dict[str, float],
                 entered: dict[str, dict[str, manual.Entry]], everything: bool) -> int:
    """Ask for each pending answer's points; saves after every answer (Ctrl-C or q keeps what was entered)."""
    taken = 0
    for o in outcomes:
        for gid, top in cells.items():
            check = o.check(gid)
            if check is None or (check.status != PENDING and not everything):
                continue
            answer = _answers(out, o.subject).get(gid, {})
            print(f"\n=== {o.subject} · {gid} ({check.where or 'cell ?'}, {top:g} points)"
                  + (f" · now {check.points:g}" if check.status != PENDING else ""))
            # the learner's text: never a terminal escape sequence reaches the instructor's terminal
            print(visible(str(answer.get("text", "(no answer was kept for this cell)"))).rstrip() or "(empty answer)")
            while True:
                raw = _ask(f"points 0-{top:g} (Enter skips, q stops): ").strip()
                if raw.lower() == "q":
                    return taken
                if not raw:
                    break
                try:
                    points = float(raw)
                except ValueError:
                    print(f"  {raw!r} is not a number")
                    continue
                if not 0 <= points <= top:
                    print(f"  give 0 to {top:g}")
                    continue
                comment = _ask("comment (Enter for none): ").strip()
                entered.setdefault(o.subject, {})[gid] = manual.Entry(points, "" if comment == "q" else comment)
                _save(out, entered)
                taken += 1
                break
    return taken


def _save(out: Path, entered: dict[str, dict[str, manual.Entry]]) -> None:
    write_text(out / manual.POINTS_FILE, manual.dump_entered(entered))
    from autograder.grading.outputs import share

    share(out / manual.POINTS_FILE)


def run(args: argparse.Namespace) -> Done:
    out: Path = args.out
    data = term.load_summary(out)
    cells = {str(k): float(v) for k, v in (data["term"].get("manual") or {}).items()}
    rules: dict[str, Any] | bool = True
    if args.course is not None:
        from autograder.grading.late import load_course

        rules = load_course(args.course).to_dict()
    if not cells and rules is True:
        raise UsageError(f"{out}: {data['lab']} has no manually graded cells; nothing to review (--course FILE "
                         "applies a course file again)")
    known = {r["subject"] for r in data["results"]}
    entered = manual.load_entered(out / manual.POINTS_FILE, cells)
    changes: list[tuple[str, str, manual.Entry]] = []
    if args.points is not None:
        try:
            raw = yaml.safe_load(args.points.read_text()) or {}
        except OSError as exc:
            raise UsageError(f"{args.points}: cannot read it ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise BadConfig(args.points, "", f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
        for student, items in manual.parse_entries(args.points, raw, cells).items():
            changes += [(student, gid, e) for gid, e in items.items()]
    changes += [parse_set(text, cells) for text in args.sets]
    for student, gid, entry in changes:
        if student not in known:
            raise UsageError(f"{student!r} is not in {out}/summary.json; students: {', '.join(sorted(known))}")
        entered.setdefault(student, {})[gid] = entry
    outcomes = [Outcome.from_dict(r) for r in data["results"]]
    if args.student:
        missing = sorted(set(args.student) - known)
        if missing:
            raise UsageError(f"{missing[0]!r} is not in {out}/summary.json; students: {', '.join(sorted(known))}")
        outcomes = [o for o in outcomes if o.subject in args.student]
    if changes:
        _save(out, entered)
    elif not args.list and sys.stdin.isatty():
        taken = _interactive(out, outcomes, cells, entered, args.all)
        print(f"\n{taken} answer(s) graded; points kept in {out / manual.POINTS_FILE}")
    if args.list:
        refreshed = [Outcome.from_dict(r) for r in data["results"]]
    else:
        refreshed = term.refresh(out, course=rules)
    shown = [o for o in refreshed if not args.student or o.subject in args.student]
    rows = [(o.subject, o.status, c.name, f"{c.points:g}/{c.max_points:g}", c.status if c.status == PENDING
             else visible(c.message or "entered")) for o in shown for c in o.checks if c.name in cells]
    print(format_table(("student", "status", "cell", "points", "comment"), rows, max_width=110))
    pending = sum(1 for o in refreshed for c in o.checks if c.name in cells and c.status == PENDING)
    print(f"\n{pending} answer(s) pending" + ("" if args.list else f"; rewrote {out}/grades.csv, summary.json "
                                                 "and feedback/"))
    return Done(0, Outcome(f"review {data['lab']}", parts=shown, data={"pending": pending}))
