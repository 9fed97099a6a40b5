"""The class table and the two LMS gradebook imports, all from the joined assessments.

- class.csv: one row per learner: each assessment's score (late penalty and manual points as graded), the total,
  the percent, and notes (late, pending manual points, flags, what is missing).
- moodle.csv: Moodle's gradebook CSV import (Grades > Import > CSV file; docs.moodle.org "Grade import"). The
  import maps one identity column to a Moodle user field ("Map from" -> "Map to": Username -> username, ID number
  -> useridnumber, Email address -> useremail) and each other column to a grade item. So: those three identity
  columns (from the roster; Username defaults to the learner id), then one numeric column per assessment.
  Moodle reads one header row, and refuses a grade above the grade item's maximum: set each item's maximum to
  the max_points row of class.csv.
- canvas.csv: Canvas's Gradebook import (Grades > Import; Canvas Instructor Guide "How do I import grades in the
  Gradebook?"). The file has Canvas's export layout: the columns Student, ID, SIS User ID, SIS Login ID, Section
  (Canvas matches a row by ID, SIS User ID or SIS Login ID, so give the roster), then one column per assignment,
  and a second row "Points Possible". A column named like an existing assignment, "Lab 1 (1234)", updates it; a
  new name creates an assignment on import.
Every cell goes through csv_cell: learner ids are chosen by learners and a spreadsheet would run a formula.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from autograder.classbook.identity import shown_id, skeleton, unplain
from autograder.classbook.sources import CONFLICT, ORDINARY, Assessment, key
from mlinfra.base.errors import BadConfig, UsageError
from mlinfra.base.output import csv_cell

CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "    Points Possible"  # as Canvas's own export writes it (leading spaces included)
MOODLE_IDENTITY = ["Username", "ID number", "Email address", "First name", "Last name"]
# roster column (lower case) -> field; a Canvas gradebook export works as a roster as it is
ROSTER_ALIASES = {
    "student": "student", "learner": "student", "id number": "id_number", "id_number": "id_number",
    "idnumber": "id_number", "email": "email", "email address": "email", "username": "username",
    "first name": "first_name", "first_name": "first_name", "last name": "last_name", "last_name": "last_name",
    "name": "name", "canvas_id": "canvas_id", "id": "canvas_id", "sis user id": "sis_user_id",
    "sis_user_id": "sis_user_id", "sis login id": "sis_login_id", "sis_login_id": "sis_login_id",
    "section": "section",
}


@dataclass
class Person:
    student: str
    fields: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name) or default

    @property
    def display(self) -> str:
        if self.get("last_name") or self.get("first_name"):
            return ", ".join(p for p in (self.get("last_name"), self.get("first_name")) if p)
        return self.get("name", self.student)


def read_roster(path: Path) -> dict[str, Person]:
    """learner key -> Person. The learner id is the `student` column; a Canvas export (no such column) is matched
    by SIS Login ID, else SIS User ID, as learners' hand-ins are usually named by their login."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the roster ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadConfig(path, "", f"not a UTF-8 CSV file ({exc})") from None
    people: dict[str, Person] = {}
    headers = {h.strip().lower() for h in (rows[0] if rows else {}) if h}
    aliases = dict(ROSTER_ALIASES)
    if "sis login id" in headers:
        aliases["student"] = "name"  # a Canvas export: its "Student" column is the person's name
    for line, row in enumerate(rows, start=2):
        fields = {aliases[k.strip().lower()]: (v or "").strip() for k, v in row.items()
                  if k and k.strip().lower() in aliases}
        if fields.get("name", "") == CANVAS_POINTS_ROW.strip():
            continue  # a Canvas export's "Points Possible" row
        student = fields.get("student") or fields.get("sis_login_id") or fields.get("sis_user_id") \
            or fields.get("username")
        if not student:
            raise BadConfig(path, f"line {line}", "no learner id: give a `student` column (the id learners hand "
                            "in under), or use a Canvas gradebook export (its SIS Login ID is used)")
        people[key(student)] = Person(student, fields)
    return people


@dataclass
class ClassTable:
    assessments: list[Assessment]
    people: dict[str, Person]  # learner key -> person (roster and every learner seen)
    missing_as_zero: bool = False

    def students(self) -> list[str]:
        return sorted(self.people, key=lambda k: self.people[k].student.casefold())

    def score(self, student: str, a: Assessment) -> float | None:
        r = a.results.get(student)
        if r is None:
            return 0.0 if self.missing_as_zero else None
        return None if r.status == CONFLICT else r.score  # neither result counts: the LMS keeps what it has

    def total(self, student: str) -> tuple[float, float]:
        got = [self.score(student, a) for a in self.assessments]
        return sum(g or 0.0 for g in got), sum(a.max_score for a in self.assessments)

    def notes(self, student: str) -> list[str]:
        out = []
        for a in self.assessments:
            r = a.results.get(student)
            if r is None:
                out.append(f"{a.name}: nothing handed in")
                continue
            if r.penalty:
                out.append(f"{a.name}: late{' ' + r.late_by if r.late_by else ''} (-{r.penalty:g})")
            if r.pending:
                out.append(f"{a.name}: {r.pending:g} point(s) pending manual grading")
            if r.flags or r.status == "flagged":
                out.append(f"{a.name}: flagged for review")
            if r.status == CONFLICT:
                out.append(f"{a.name}: conflict: {r.reason}")
            elif r.status not in ORDINARY:
                out.append(f"{a.name}: {r.status}")
        return out


def build(assessments: list[Assessment], roster: dict[str, Person] | None = None, *,
          missing_as_zero: bool = False) -> ClassTable:
    people = dict(roster or {})
    for a in assessments:
        for k, r in a.results.items():
            people.setdefault(k, Person(r.student))
    _flag_lookalikes(assessments, roster or {}, people)
    return ClassTable(assessments, people, missing_as_zero)


def _flag_lookalikes(assessments: list[Assessment], roster: dict[str, Person], people: dict[str, Person]) -> None:
    """An id that is not plain and looks like another learner's (the roster's first) is kept apart from it and
    flagged naming it: a zero-width space or a Cyrillic letter must not make a stranger of a classmate, nor pass
    for them unseen."""
    looks: dict[str, str] = {}
    for k in [*roster, *people]:
        if not unplain(people[k].student):
            looks.setdefault(skeleton(k), k)
    for a in assessments:
        for k, r in a.results.items():
            other = looks.get(skeleton(r.student))
            if other is not None and other != k and unplain(r.student):
                where = "the roster's" if other in roster else "another learner's"
                r.flags.append(f"the id {shown_id(r.student)} looks like {where} {shown_id(people[other].student)} "
                               "but is not it: kept apart; check who handed it in")


def _num(value: float | None) -> str:
    return "" if value is None else f"{round(value, 2):g}"


def _write(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def column(a: Assessment) -> str:
    return a.name if a.kind != "quiz" else f"quiz {a.name}"


def class_csv(table: ClassTable) -> str:
    head = ["student", *(column(a) for a in table.assessments), "total", "max_total", "percent", "notes"]
    rows = [head, ["max_points", *(_num(a.max_score) for a in table.assessments), "", "", "", ""]]
    for s in table.students():
        got, out_of = table.total(s)
        rows.append([table.people[s].student, *(_num(table.score(s, a)) for a in table.assessments), _num(got),
                     _num(out_of), f"{100 * got / out_of:.1f}" if out_of else "", "; ".join(table.notes(s))])
    return _write(rows)


def moodle_csv(table: ClassTable) -> str:
    rows = [[*MOODLE_IDENTITY, *(column(a) for a in table.assessments)]]
    for s in table.students():
        p = table.people[s]
        rows.append([p.get("username", p.student), p.get("id_number"), p.get("email"), p.get("first_name"),
                     p.get("last_name"), *(_num(table.score(s, a)) for a in table.assessments)])
    return _write(rows)


def canvas_csv(table: ClassTable) -> str:
    rows = [[*CANVAS_IDENTITY, *(column(a) for a in table.assessments)],
            [CANVAS_POINTS_ROW, "", "", "", "", *(_num(a.max_score) for a in table.assessments)]]
    for s in table.students():
        p = table.people[s]
        rows.append([p.display, p.get("canvas_id"), p.get("sis_user_id"), p.get("sis_login_id", p.student),
                     p.get("section"), *(_num(table.score(s, a)) for a in table.assessments)])
    return _write(rows)
