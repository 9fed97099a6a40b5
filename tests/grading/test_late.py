"""The course file (due times, extensions, the late rule) and what it makes of a submission's received time."""

from __future__ import annotations

import csv
import os
from datetime import datetime
from pathlib import Path

import pytest

from autograder.errors import BadConfig
from autograder.grading.engine import finish_batch
from autograder.grading.late import judge, load_course, received_time
from autograder.grading.plan import BatchPlan
from mlinfra.base.results import Check, Outcome

COURSE = """\
timezone: Europe/London
late: {grace_minutes: 15, penalty_per_day: 10, max_penalty: 30, refuse_after_days: 7}
due:
  lab01-environment: 2026-10-05 23:59          # BST: 22:59 UTC
  module01: {at: "2026-10-12T18:00:00+00:00", late: {refuse_after_days: 0}}
extensions:
  ada:
    lab01-environment: 2026-10-09 12:00
  bob: {lab01-environment: {days: 2}}
"""


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture
def course(tmp_path: Path):
    path = tmp_path / "course.yaml"
    path.write_text(COURSE)
    return load_course(path)


def test_on_time_within_grace_late_capped_and_refused(course) -> None:
    lab = "lab01-environment"
    on_time = judge(course, lab, "cy", _at("2026-10-05T22:00:00+00:00"))
    assert on_time.late_by_hours == 0 and on_time.penalty_percent == 0 and on_time.note() == ""
    grace = judge(course, lab, "cy", _at("2026-10-05T23:10:00+00:00"))  # 11 min after 22:59 UTC
    assert grace.penalty_percent == 0 and "within the grace" in grace.note()
    one_day = judge(course, lab, "cy", _at("2026-10-06T10:00:00+00:00"))
    assert one_day.penalty_percent == 10 and one_day.late_by_hours == 11.02
    assert one_day.penalty_points(8.0, 10.0) == 1.0
    capped = judge(course, lab, "cy", _at("2026-10-10T10:00:00+00:00"))  # 5 days: 50% capped at 30%
    assert capped.penalty_percent == 30 and capped.penalty_points(2.0, 10.0) == 2.0  # never below 0
    refused = judge(course, lab, "cy", _at("2026-10-20T10:00:00+00:00"))
    assert refused.refused and refused.penalty_points(9.0, 10.0) == 9.0 and "not accepted" in refused.note()
    # an item's own rule: the quiz refuses anything past the grace
    assert judge(course, "module01", "cy", _at("2026-10-12T18:20:00+00:00")).refused


def test_extensions_move_the_due_time(course) -> None:
    lab = "lab01-environment"
    when = _at("2026-10-07T10:00:00+00:00")  # 1.5 days after the course's due time
    assert judge(course, lab, "cy", when).penalty_percent == 20
    ada = judge(course, lab, "ada", when)  # a new due time
    assert ada.penalty_percent == 0 and ada.extension and ada.due.startswith("2026-10-09T12:00:00+01:00")
    assert judge(course, lab, "bob", when).penalty_percent == 0  # two days more
    assert judge(course, lab, "bob", _at("2026-10-08T10:00:00+00:00")).penalty_percent == 10


def test_no_due_time_or_no_course_file_gives_no_penalty(course) -> None:
    assert judge(course, "lab02-ml-lifecycle", "cy", _at("2030-01-01T00:00:00+00:00")).penalty_percent == 0
    assert judge(None, "lab01-environment", "cy", 0.0).submitted_at == "1970-01-01T00:00:00+00:00"


@pytest.mark.parametrize(("text", "where"), [
    ("due:\n  lab01: 2026-10-05 23:59\n", "due.lab01: a time without an offset"),
    ("timezone: Mars/Olympus\n", "timezone: unknown time zone"),
    ("late: {penalty_per_day: 150}\n", "late.penalty_per_day: expected a number between 0 and 100"),
    ("late: {penalty: 10}\n", "late.penalty: unknown key"),
    ("due: {lab01: 'next friday'}\n", "due.lab01: 'next friday' is not a date"),
    ("timezone: UTC\ndue: {lab01: 2026-10-05}\nextensions: {ada: {lab02: {days: 1}}}\n",
     "extensions.ada.lab02: 'lab02' has no due time"),
    ("deadlines: {}\n", "deadlines: unknown key"),
    ("due: [1, 2\n", "line "),
])
def test_a_wrong_course_file_names_the_file_and_the_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "course.yaml"
    path.write_text(text)
    with pytest.raises(BadConfig) as err:
        load_course(path)
    assert str(err.value).startswith(f"{path}: ") and where in str(err.value)


def test_received_time_is_the_collected_copy_not_the_learners_stamp(tmp_path: Path) -> None:
    folder = tmp_path / "ada"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "lab.ipynb").write_text("{}")
    for path, t in ((folder / "sub" / "lab.ipynb", 2000.0), (folder / "sub", 1000.0), (folder, 1000.0)):
        os.utime(path, (t, t))
    assert received_time(folder) == 2000.0  # the newest thing in the folder
    archive = tmp_path / "bob-lab.zip"
    archive.write_bytes(b"PK")
    os.utime(archive, (3000.0, 3000.0))
    assert received_time(archive) == 3000.0
    (tmp_path / "link").symlink_to(folder)
    assert received_time(tmp_path / "link") is None


def test_finish_batch_applies_the_rule_and_a_refresh_does_not_apply_it_twice(tmp_path: Path, course) -> None:
    from autograder.grading.term import refresh

    plan = BatchPlan(lab_name="lab01-environment", lab_folder=str(tmp_path), work_dir=str(tmp_path / "work"),
                     sandbox="none", tests={"t": 10.0}, students=["cy"], course=course.to_dict(),
                     submissions={"cy": {"files": None, "notes": [], "flags": [], "entry": "cy", "unreadable": "",
                                         "received": _at("2026-10-06T10:00:00+00:00")}})
    (tmp_path / "work").mkdir()
    cy = Outcome("cy", [Check("t", "failed", 8.0, 10.0, "AssertionError: off by one\x1b[2J\nmore detail")])
    finish_batch(plan, [cy], tmp_path / "out")
    for _ in range(2):
        row = next(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
        assert (row["score"], row["penalty"], row["late_by"]) == ("7", "1", "11.02")
        assert "t: AssertionError: off by one\\x1b[2J" in row["reason"] and "more detail" not in row["reason"]
        refresh(tmp_path / "out")
    assert not (tmp_path / "work").exists()  # removed: nothing is read after the outputs


def test_review_applies_a_changed_course_file_without_regrading(tmp_path: Path, course) -> None:
    """An extension granted after grading: `review OUT --course FILE` takes the penalty off."""
    from autograder.cli import main

    plan = BatchPlan(lab_name="lab01-environment", lab_folder=str(tmp_path), work_dir=str(tmp_path / "work"),
                     sandbox="none", tests={"t": 10.0}, students=["cy"], course=course.to_dict(),
                     submissions={"cy": {"files": None, "notes": [], "flags": [], "entry": "cy", "unreadable": "",
                                         "received": _at("2026-10-06T10:00:00+00:00")}})
    (tmp_path / "work").mkdir()
    finish_batch(plan, [Outcome("cy", [Check("t", "passed", 10.0, 10.0)])], tmp_path / "out")
    assert next(csv.DictReader((tmp_path / "out" / "grades.csv").open()))["score"] == "9"
    (tmp_path / "later.yaml").write_text(COURSE + "  cy: {lab01-environment: {days: 1}}\n")
    assert main(["review", str(tmp_path / "out"), "--course", str(tmp_path / "later.yaml")]) == 0
    row = next(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert (row["score"], row["penalty"]) == ("10", "0")


def test_the_airflow_engine_gets_the_course_file_applied_after_its_run(tmp_path: Path, course, monkeypatch) -> None:
    """The Airflow DAG grades without the course file; `grade --engine airflow --course` applies it to what the
    DAG's merge task wrote (its own run is stood in for here: the engine is tested in tests/grading_airflow/)."""
    import autograder.grading.airflow as airflow_engine
    from autograder.cli import main

    def fake_run(lab_name: str, submissions_dir: Path, out_dir: Path, **_: object) -> Outcome:
        plan = BatchPlan(lab_name=lab_name, lab_folder=str(tmp_path), work_dir=str(tmp_path / "work"),
                         sandbox="none", tests={"t": 10.0}, students=["cy"],
                         submissions={"cy": {"files": None, "notes": [], "flags": [], "entry": "cy",
                                             "unreadable": "", "received": _at("2026-10-06T10:00:00+00:00")}})
        (tmp_path / "work").mkdir()
        return finish_batch(plan, [Outcome("cy", [Check("t", "passed", 10.0, 10.0)])], out_dir)

    monkeypatch.setattr(airflow_engine, "grade_on_airflow", fake_run)
    (tmp_path / "subs").mkdir()
    (tmp_path / "course.yaml").write_text(COURSE)
    assert main(["grade", "lab01-environment", str(tmp_path / "subs"), "--engine", "airflow", "--course",
                 str(tmp_path / "course.yaml"), "--out", str(tmp_path / "out")]) == 0
    row = next(csv.DictReader((tmp_path / "out" / "grades.csv").open()))
    assert (row["score"], row["penalty"], row["late_by"]) == ("9", "1", "11.02")


def test_the_guides_course_file_is_valid(tmp_path: Path) -> None:
    """docs/instructor-guide.md's example course file reads as the guide says."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "instructor-guide.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert example, "the guide has a course file example"
    path = tmp_path / "course.yaml"
    path.write_text(example.group(1))
    loaded = load_course(path)
    assert loaded.rule("module01").refuse_after_days == 0 and loaded.rule("lab01-environment").max_penalty == 50
    assert set(loaded.extensions) == {"ada", "bob"} and set(loaded.due) == {"lab01-environment",
                                                                            "lab02-ml-lifecycle", "module01"}
