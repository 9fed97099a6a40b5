"""`autograder class report`: labs, a quiz and the practical joined per learner; item analysis checked by hand;
the LMS exports checked against Moodle's and Canvas's documented import formats (docs/class-report.md)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from term import FLAG, write_term

from autograder.classbook import analysis
from autograder.classbook.sources import Assessment, Result, load
from autograder.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def term(tmp_path: Path) -> list[Path]:
    return write_term(tmp_path / "term")


def _report(capsys, inputs: list[Path], out: Path, *extra: str) -> str:
    assert main(["class", "report", *map(str, inputs), "--out", str(out), *extra]) == 0
    return capsys.readouterr().out


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_every_assessment_is_joined_per_learner(term: list[Path], tmp_path: Path, capsys) -> None:
    printed = _report(capsys, term, tmp_path / "class")
    rows = {r[0]: r for r in _rows(tmp_path / "class" / "class.csv")}
    head = rows.pop("student")
    assert head[:5] == ["student", "lab-one", "lab-two", "quiz lesson03", "practical"]
    assert rows.pop("max_points")[1:5] == ["5", "8", "4", "120"], "lab-two has a 3-point manual cell"
    assert rows["ada"][1:8] == ["5", "8", "4", "120", "137", "137", "100.0"], "ada's manual points entered"
    assert rows["cy"][1] == "1", "cy's late penalty (1 point) is taken off lab-one's 2"
    assert "lab-one: late 26 h (-1)" in rows["cy"][8]
    assert rows["bob"][2] == "0" and "lab-two: 3 point(s) pending manual grading" in rows["bob"][8]
    assert "lab-one: flagged for review" in rows["bob"][8]
    assert rows["dee"][4] == "" and "practical: nothing handed in" in rows["dee"][8], "blank, not 0, by default"
    assert rows["'=HYPERLINK(1)"][0] == "'=HYPERLINK(1)", "a formula-like id stays text"
    assert "wrote" in printed and ".venv/bin/autograder" not in printed.split("next:")[0]
    _report(capsys, term, tmp_path / "zero", "--missing", "zero")
    assert {r[0]: r for r in _rows(tmp_path / "zero" / "class.csv")}["dee"][4] == "0"


def test_discrimination_compares_the_top_and_bottom_27_percent() -> None:
    # 8 learners asked: groups of round(0.27 * 8) = 2. Ranked by score: the top two earned item q 1/2 and 2/2,
    # the bottom two 0 and 2/2: D = (0.5 + 1) / 2 - (0 + 1) / 2 = 0.25.
    scores = {"a": (10, 1), "b": (9, 2), "c": (7, 2), "d": (6, 0), "e": (5, 2), "f": (4, 2), "g": (2, 2), "h": (1, 0)}
    quiz = Assessment("quiz", "q", "x", 10, {"q": 2.0, "never-asked": 1.0},
                      {s: Result(s, total, 10, "completed", {"q": float(p)}) for s, (total, p) in scores.items()})
    stats = {s.item: s for s in analysis.item_stats(quiz)}
    assert stats["q"].discrimination == pytest.approx(0.25)
    assert stats["q"].asked == 8 and stats["q"].full_marks == 5 and stats["q"].share_passing == pytest.approx(5 / 8)
    assert stats["never-asked"].asked == 0 and stats["never-asked"].discrimination is None
    few = Assessment("lab", "l", "x", 2, {"q": 2.0}, {s: Result(s, 1, 2, "completed", {"q": 1.0}) for s in "abc"})
    assert analysis.item_stats(few)[0].discrimination is None, "three learners: no 27% groups"


def test_pending_manual_points_are_not_wrong_answers(term: list[Path]) -> None:
    lab = load(term[1], ROOT)
    stats = {s.item: s for s in analysis.item_stats(lab)}
    assert stats["manual-answer"].asked == 1, "only ada's manual points were entered; the rest wait for review"
    assert lab.results["bob"].pending == 3 and lab.results["ada"].pending == 0


def test_distractor_rates_come_from_the_learners_answers(term: list[Path]) -> None:
    quiz = load(term[2], ROOT)
    by_question = {q.question: q for q in analysis.choice_stats(quiz)}
    q = by_question["l03-validate-data-first"]
    rates = {o.option: (o.picked, o.correct) for o in q.options}
    assert q.asked == 5 and rates == {"a": (0, False), "b": (2, False), "c": (0, False), "d": (2, True)}
    assert q.no_choice == 1, "eve's answer names no option"
    assert analysis.weak_distractors(q) == ["a", "c"]
    multi = {o.option: o.picked for o in by_question["l03-after-the-notebook"].options}
    assert multi == {"a": 1, "b": 0, "c": 3, "d": 3, "e": 2}, "each pick of a multiple select counts"
    assert "l03-labels-arrive-late" not in by_question, "true/false has no options to analyse"


def test_lms_exports_follow_the_documented_import_formats(term: list[Path], tmp_path: Path, capsys) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student,first name,last name,email,id number,sis_login_id,canvas_id,section\n"
                      "ada,Ada,Lovelace,ada@example.org,1001,alovelace,501,S1\n"
                      "bob,Bob,Byte,bob@example.org,1002,bbyte,502,S1\n")
    printed = _report(capsys, term, tmp_path / "class", "--roster", str(roster))
    assert "not in the roster" in printed and "cy" in printed.split("not in the roster")[1]
    # Canvas (Instructor Guide, "How do I import grades in the Gradebook?"): the export's layout; five identity
    # columns, one column per assignment, a second row "Points Possible".
    canvas = _rows(tmp_path / "class" / "canvas.csv")
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[0][5:] == ["lab-one", "lab-two", "quiz lesson03", "practical"]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][5:] == ["5", "8", "4", "120"]
    ada = next(r for r in canvas if r[3] == "alovelace")
    assert ada[:5] == ["Lovelace, Ada", "501", "", "alovelace", "S1"] and ada[5:] == ["5", "8", "4", "120"]
    # Moodle (docs.moodle.org, "Grade import"): one header row; a column mapped to a user field (Username,
    # ID number, Email address), the rest grade items.
    moodle = _rows(tmp_path / "class" / "moodle.csv")
    assert moodle[0][:5] == ["Username", "ID number", "Email address", "First name", "Last name"]
    assert moodle[0][5:] == canvas[0][5:]
    row = next(r for r in moodle if r[2] == "ada@example.org")
    assert row[:5] == ["ada", "1001", "ada@example.org", "Ada", "Lovelace"] and row[5:] == ["5", "8", "4", "120"]
    for table in (canvas[2:], moodle[1:]):
        for r in table:
            assert len(r) == len(canvas[0])
            assert all(re.fullmatch(r"\d+(\.\d+)?|", cell) for cell in r[5:]), r
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in r), r
    raw = (tmp_path / "class" / "canvas.csv").read_bytes()
    assert raw.count(b"\r\n") == len(canvas) and not raw.startswith(b"\xef\xbb\xbf"), "RFC 4180 lines, UTF-8"


def test_a_canvas_export_works_as_the_roster(term: list[Path], tmp_path: Path, capsys) -> None:
    roster = tmp_path / "canvas-export.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section,Old quiz (77)\n'
                      '    Points Possible,,,,,10\n"Lovelace, Ada",501,u1,ada,S1,9\n')
    _report(capsys, term, tmp_path / "class", "--roster", str(roster))
    ada = next(r for r in _rows(tmp_path / "class" / "canvas.csv") if r[3] == "ada")
    assert ada[:5] == ["Lovelace, Ada", "501", "u1", "ada", "S1"]


def test_the_report_is_one_self_contained_page(term: list[Path], tmp_path: Path, capsys) -> None:
    _report(capsys, term, tmp_path / "class")
    page = (tmp_path / "class" / "report.html").read_text()
    images = re.findall(r'<img class="plot" alt="([^"]*)" src="([^"]{0,40})', page)
    alts = [alt for alt, _ in images]
    assert all(src.startswith("data:image/svg+xml;base64,") for _, src in images)
    for name in ("lab-one", "lab-two", "lesson03", "practical"):
        assert f"score distribution of {name}" in alts
    assert "share passing and discrimination per item of lab-one" in alts
    assert "distractor choice rates of quiz lesson03" in alts
    assert not re.search(r'(src|href)="(https?:|//|/)', page), "nothing loaded from elsewhere"
    assert FLAG not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page, "learner text is escaped"
    assert "Flagged submissions" in page and "bob" in page.split("Class table")[0]


def test_bad_inputs_exit_2_naming_them(term: list[Path], tmp_path: Path, capfd) -> None:
    assert main(["class", "report", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert str(tmp_path / "nope") in capfd.readouterr().err
    assert main(["class", "report", str(term[0]), str(term[0]), "--out", str(tmp_path / "o")]) == 2
    assert "lab lab-one given twice" in capfd.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["class", "report", str(broken)]) == 2
    assert "broken.json" in capfd.readouterr().err
    roster = tmp_path / "r.csv"
    roster.write_text("email\nx@example.org\n")
    assert main(["class", "report", str(term[0]), "--roster", str(roster), "--out", str(tmp_path / "o")]) == 2
    assert "r.csv: line 2: no learner id" in capfd.readouterr().err


def test_the_practical_from_one_hand_in_or_a_batch(term: list[Path], tmp_path: Path) -> None:
    batch = load(term[3], ROOT)
    assert {k: (r.score, r.max_score) for k, r in batch.results.items()} == \
        {"ada": (120, 120), "bob": (100, 120), "cy": (60, 120)}, "a batch's parts carry no score: summed checks"
    single = tmp_path / "one.json"  # `assess --pack ada-practical.zip --json FILE`: its keys at the top level
    single.write_text('{"subject": "hand-in ada-practical.zip (http://127.0.0.1:1)", "status": "completed", '
                      '"checks": [{"name": "1. deployed", "status": "passed", "points": 20, "max_points": 20}], '
                      '"score": 20, "max_score": 20, "criteria": [], "target": {"pack": "x/Ada-practical.zip"}}')
    one = load(single, ROOT)
    assert list(one.results) == ["ada"] and one.results["ada"].student == "Ada" and one.results["ada"].score == 20
