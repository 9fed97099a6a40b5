"""Summative quizzes: the instructor issues signed tickets, `quiz take --exam --ticket` records one attempt and
shows nothing of the key, and `quiz grade` scores only records whose ticket verifies for their learner; every
other file is its own row with 0 points and the reason."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import yaml
from quiz_support import REFERENCE, drawn_for, exam_record, ticket_key
from test_quiz_take import screen_answers

from autograder.cli import main
from autograder.quiz.bank import load_quiz
from autograder.quiz.shuffle import learner_seed


def _exam(monkeypatch, capsys, argv: list[str], stdin: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["quiz", "take", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tickets(capsys, out: Path, *learners: str, quiz: str = "module01", extra: tuple[str, ...] = ()) -> Path:
    assert main(["quiz", "ticket", quiz, *learners, "--out", str(out), *extra]) == 0
    capsys.readouterr()
    return out


def _typed(quiz, ticket: Path, wrong: set[str] = frozenset()) -> str:
    """What the ticket's learner types to answer their draw from the reference key."""
    data = yaml.safe_load(ticket.read_text())
    seed = learner_seed(quiz.id, data["learner"], data["nonce"])
    return screen_answers(quiz, yaml.safe_load(REFERENCE.read_text()), seed=seed, wrong=wrong)


def _key() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def test_exam_records_answers_shows_no_key_and_allows_one_attempt(workbook: Path, monkeypatch, capsys,
                                                                  tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    ticket = _tickets(capsys, tmp_path / "t", "ada") / "ada.ticket.yaml"
    assert (workbook / ".state" / "quiz-ticket.key").stat().st_mode & 0o077 == 0, "only the instructor reads it"
    code, out, _ = _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(ticket)], _typed(quiz, ticket))
    assert code == 0
    record_path = workbook / "workspace" / "quizzes" / "module01" / "ada.yaml"
    record = yaml.safe_load(record_path.read_text())
    assert record["quiz"] == "module01" and record["learner"] == "ada" and record["started"] and record["finished"]
    issued = yaml.safe_load(ticket.read_text())
    assert record["ticket"] == issued, "the record carries the ticket as issued"
    from autograder.quiz.shuffle import arrange

    shown = [p.question.id for p in arrange(quiz, learner="ada", nonce=issued["nonce"])]
    assert record["drawn"] == shown and len(record["answers"]) == 20  # the ticket's draw, in the order shown
    assert set(record["times"]) == set(record["answers"])
    assert "Recorded 20 of 20 answers" in out
    for leaked in ("Correct.", "Not quite", "The answer", "Why:", "Score:"):
        assert leaked not in out, f"an exam shows no feedback: {leaked!r} in the output"
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(ticket)], _typed(quiz, ticket))
    assert code == 2 and "already recorded" in err and "one attempt" in err
    assert yaml.safe_load(record_path.read_text()) == record, "a refused second attempt leaves the record alone"


def test_exam_needs_a_ticket_for_this_quiz_and_learner(workbook: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", "ada"], "")
    assert code == 2 and "--ticket" in err and len(err.strip().splitlines()) == 1
    tickets = _tickets(capsys, tmp_path / "t", "ada")
    code, _, err = _exam(monkeypatch, capsys, ["phase1", "--exam", "--ticket", str(tickets / "ada.ticket.yaml")], "")
    assert code == 2 and "a ticket for quiz 'module01'" in err
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", "bob", "--ticket",
                                               str(tickets / "ada.ticket.yaml")], "")
    assert code == 2 and "the ticket is for learner 'ada'" in err
    (tmp_path / "junk.yaml").write_text("- not a ticket\n")
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(tmp_path / "junk.yaml")], "")
    assert code == 2 and "not an exam ticket" in err


def test_exam_outside_its_window_is_refused(workbook: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    tickets = _tickets(capsys, tmp_path / "t", "ada", extra=("--opens", "2999-01-01T09:00+00:00"))
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(tickets / "ada.ticket.yaml")],
                         "")
    assert code == 2 and "the exam opens at 2999-01-01T09:00+00:00" in err


def test_grade_scores_ticketed_records_and_hides_the_key_until_reveal(workbook: Path, monkeypatch, capsys,
                                                                      tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    tickets = _tickets(capsys, tmp_path / "t", "ada", "grace")
    hand_in = tmp_path / "hand-in"
    for learner, wrong in (("ada", 0), ("grace", 7)):
        ticket = tickets / f"{learner}.ticket.yaml"
        drawn = drawn_for(quiz, {"ticket": yaml.safe_load(ticket.read_text())})
        _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(ticket), "--save",
                                    str(hand_in / f"{learner}.yaml")], _typed(quiz, ticket, set(drawn[:wrong])))
    out = tmp_path / "grades"
    assert main(["quiz", "grade", "module01", str(hand_in), "--out", str(out), "--json", "-"]) == 0
    by = {s["student"]: s for s in json.loads(capsys.readouterr().out)["students"]}
    assert (by["ada"]["score"], by["ada"]["max_score"], by["ada"]["passed"]) == (20, 20, True)
    assert (by["grace"]["score"], by["grace"]["max_score"], by["grace"]["passed"]) == (13, 20, False)
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert list(rows["ada"].values()).count("n/a") == len(quiz.questions) - 20
    feedback = (out / "feedback" / "grace.md").read_text()
    assert "Your answer:" in feedback and "## Score per learning outcome" in feedback
    record = yaml.safe_load((hand_in / "grace.yaml").read_text())
    asked = [quiz.question(q) for q in record["drawn"]]
    for q in asked:
        assert q.explanation[:50] not in " ".join(feedback.split()), "no explanation before --reveal"
    assert "The answer:" not in feedback and "Why:" not in feedback
    # the questions in the order asked, options numbered as shown, the learner's own pick by number and text
    positions = [feedback.index(" ".join(q.prompt.split()[:6])) for q in asked if q.prompt.split()[:6]]
    assert positions == sorted(positions)
    first = asked[0]
    assert main(["quiz", "grade", "module01", str(hand_in), "--out", str(out), "--reveal"]) == 0
    capsys.readouterr()
    revealed = (out / "feedback" / "grace.md").read_text()
    assert "The answer:" in revealed and first.explanation[:50] in " ".join(revealed.split())
    assert "['" not in revealed and "Your answer: a" not in revealed


def test_feedback_speaks_the_learners_screen(workbook: Path, tmp_path: Path, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    record = exam_record(quiz, ticket_key(workbook), "ada", _key())
    from autograder.quiz.shuffle import arrange

    shown = arrange(quiz, learner="ada", nonce=record["ticket"]["nonce"])
    multi = next((p for p in shown if p.question.type == "multiple"), None)
    single = next(p for p in shown if p.question.type == "single")
    record["answers"][single.question.id] = single.options[2]  # the third option on the learner's screen
    if multi is not None:
        record["answers"][multi.question.id] = [multi.options[3], multi.options[0]]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ada.yaml").write_text(yaml.safe_dump(record))
    assert main(["quiz", "grade", "module01", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--reveal"]) == 0
    capsys.readouterr()
    text = (tmp_path / "o" / "feedback" / "ada.md").read_text()
    assert f"Your answer: 3) {single.question.options[single.options[2]]}" in text
    if multi is not None:
        q = multi.question
        assert f"Your answer: 1) {q.options[multi.options[0]]}; 4) {q.options[multi.options[3]]}" in text
    import re

    for number in re.findall(r"\d+\.\d+", text):
        assert len(number.split(".")[1]) <= 2, f"{number}: scores are rounded to two decimals"


def _grade_json(folder: Path, tmp_path: Path, capsys, *extra: str) -> tuple[int, dict[str, dict]]:
    code = main(["quiz", "grade", "module01", str(folder), "--out", str(tmp_path / "o"), "--json", "-", *extra])
    students = json.loads(capsys.readouterr().out)["students"]
    return code, {Path(s["file"]).name: s for s in students}


def test_records_not_bound_to_their_learner_score_nothing(workbook: Path, tmp_path: Path, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key, secret = _key(), ticket_key(workbook)
    folder = tmp_path / "in"
    folder.mkdir()

    def put(name: str, record) -> None:
        (folder / name).write_text(yaml.safe_dump(record) if not isinstance(record, str) else record)

    put("ada.yaml", exam_record(quiz, secret, "ada", key))
    put("plain.yaml", REFERENCE.read_text())  # a plain answers file
    unticketed = exam_record(quiz, secret, "bob", key)
    del unticketed["ticket"]
    unticketed["answers"] = key  # without a ticket the draw comes from the learner id alone
    put("bob.yaml", unticketed)  # an exam record with no ticket
    forged = exam_record(quiz, secret, "carol", key)
    forged["ticket"]["learner"] = "carlos"  # the ticket changed after signing
    put("carlos.yaml", forged)
    other_key = exam_record(quiz, b"k" * 32, "dan", key)  # signed with a key that is not the instructor's
    put("dan.yaml", other_key)
    claimed = exam_record(quiz, secret, "erin", key)
    claimed["learner"] = "frank"  # erin's ticket and answers, claimed as frank's
    put("frank.yaml", claimed)
    put("phase1.yaml", exam_record(load_quiz(workbook / "quizzes" / "phase1.yaml"), secret, "gina", key) | {
        "quiz": "module01"})  # a phase1 ticket in a module01 record
    first = exam_record(quiz, secret, "hana", key)
    second = exam_record(quiz, secret, "hana", key, started="2026-12-01T10:00:00+00:00")
    put("hana.yaml", first)
    (folder / "hana.json").write_text(json.dumps(second))  # two files for one learner
    code, rows = _grade_json(folder, tmp_path, capsys)
    assert code == 1
    assert rows["ada.yaml"]["score"] == 20 and rows["ada.yaml"]["status"] == "graded"
    expected = {"plain.yaml": "no-ticket", "bob.yaml": "no-ticket", "carlos.yaml": "bad-signature",
                "dan.yaml": "bad-signature", "frank.yaml": "wrong-learner", "phase1.yaml": "wrong-quiz",
                "hana.json": "duplicate"}
    for name, status in expected.items():
        assert (rows[name]["status"], rows[name]["score"], rows[name]["passed"]) == (status, 0, False), name
        assert rows[name]["error"], name
    assert rows["hana.yaml"]["score"] == 20 and "hana.json is another record" in " ".join(rows["hana.yaml"]["notes"])
    # the explicit flag grades a record without a ticket (practice in the self-paced repository), and says so
    code, rows = _grade_json(folder, tmp_path, capsys, "--accept", "no-ticket")
    assert rows["plain.yaml"]["score"] == 20 and rows["bob.yaml"]["score"] == 20
    assert any("--accept no-ticket" in n for n in rows["plain.yaml"]["notes"])
    assert rows["carlos.yaml"]["status"] == "bad-signature", "no flag makes a forged ticket count"


def test_the_time_limit_and_window_are_checked(workbook: Path, tmp_path: Path, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key, secret = _key(), ticket_key(workbook)
    folder = tmp_path / "in"
    folder.mkdir()
    window = {"opens": "2026-12-01T09:00:00+00:00", "closes": "2026-12-01T12:00:00+00:00", "minutes": 30}
    on_time = exam_record(quiz, secret, "ada", key, finished="2026-12-01T09:25:00+00:00", **window)
    late = exam_record(quiz, secret, "bob", key, finished="2026-12-01T10:00:00+00:00", **window)
    early = exam_record(quiz, secret, "cy", key, started="2026-12-01T08:00:00+00:00",
                        finished="2026-12-01T08:20:00+00:00", **window)
    no_start = exam_record(quiz, secret, "di", key, **window)
    del no_start["started"]
    for name, record in (("ada", on_time), ("bob", late), ("cy", early), ("di", no_start)):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(record))
    code, rows = _grade_json(folder, tmp_path, capsys)
    assert code == 1 and rows["ada.yaml"]["score"] == 20
    assert (rows["bob.yaml"]["status"], rows["bob.yaml"]["score"]) == ("over-time", 0)
    assert "took 60.0 minutes; the ticket allows 30" in rows["bob.yaml"]["error"]
    assert (rows["cy.yaml"]["status"], rows["di.yaml"]["status"]) == ("outside-window", "over-time")
    code, rows = _grade_json(folder, tmp_path, capsys, "--accept", "over-time")
    assert rows["bob.yaml"]["score"] == 20 and rows["cy.yaml"]["score"] == 0


@pytest.mark.parametrize("learner", ["ada", "zoë", "Learner 42", "x" * 60])
def test_every_learners_draw_is_rebuilt_from_their_ticket(workbook: Path, tmp_path: Path, capsys,
                                                          learner: str) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    record = exam_record(quiz, ticket_key(workbook), learner, _key())
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(record, allow_unicode=True))
    code, rows = _grade_json(tmp_path / "r.yaml", tmp_path, capsys)
    assert code == 0 and rows["r.yaml"]["score"] == 20 and rows["r.yaml"]["student"] == learner
    assert rows["r.yaml"]["drawn"] == drawn_for(quiz, record)


def test_a_tampered_draw_is_graded_on_the_tickets_draw(workbook: Path, tmp_path: Path, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = _key()
    record = exam_record(quiz, ticket_key(workbook), "ada", key)
    record["drawn"] = [q.id for q in quiz.questions[:20]]
    record["answers"] = {q.id: key[q.id] for q in quiz.questions[:20]}
    (tmp_path / "ada.yaml").write_text(yaml.safe_dump(record))
    code, rows = _grade_json(tmp_path / "ada.yaml", tmp_path, capsys)
    assert code == 0
    expected = len(set(drawn_for(quiz, record)) & {q.id for q in quiz.questions[:20]})
    assert rows["ada.yaml"]["score"] == expected < 20
    assert any("differs from this learner's draw" in n for n in rows["ada.yaml"]["notes"])


def test_a_summative_learner_copy_cannot_be_self_checked(workbook: Path, monkeypatch, capsys,
                                                         tmp_path: Path) -> None:
    from autograder.quiz.learner import write_learner_copies

    copies = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}
    code, _, err = _exam(monkeypatch, capsys, [str(copies["module01"])], "")
    assert code == 2 and "--exam" in err
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    ticket = _tickets(capsys, tmp_path / "t", "ada") / "ada.ticket.yaml"
    code, out, _ = _exam(monkeypatch, capsys, [str(copies["module01"]), "--exam", "--ticket", str(ticket), "--save",
                                               str(tmp_path / "ada.yaml")], _typed(quiz, ticket))
    assert code == 0 and "Recorded 20 of 20" in out
    assert main(["quiz", "grade", "module01", str(tmp_path / "ada.yaml"), "--out", str(tmp_path / "o")]) == 0
    assert "20/20" in capsys.readouterr().out


def test_submit_quiz_hands_in_the_record_where_quiz_grade_reads_it(workbook: Path, monkeypatch, capsys,
                                                                   tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    assert main(["submit", "quiz", "module01", "--student", "ada", "--out", str(tmp_path / "in")]) == 2
    assert "take the exam first" in capsys.readouterr().err
    ticket = _tickets(capsys, tmp_path / "t", "ada") / "ada.ticket.yaml"
    assert _exam(monkeypatch, capsys, ["module01", "--exam", "--ticket", str(ticket)], _typed(quiz, ticket))[0] == 0
    assert main(["submit", "quiz", "module01", "--student", "ada", "--out", str(tmp_path / "in")]) == 0
    handed = tmp_path / "in" / "module01" / "ada.yaml"
    assert handed.is_file() and "quiz grade module01" in capsys.readouterr().out
    out = tmp_path / "grades"
    assert main(["quiz", "grade", "module01", str(handed.parent), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [r["student"] for r in rows] == ["ada"] and float(rows[0]["score"]) == 20


def test_quiz_ticket_usage_and_what_a_ticket_holds(workbook: Path, tmp_path: Path, capsys) -> None:
    assert main(["quiz", "ticket", "module01"]) == 2
    assert "name the learners" in capsys.readouterr().err
    assert main(["quiz", "ticket", "module01", "ada", "--minutes", "0"]) == 2
    assert "a time limit must be a positive number" in capsys.readouterr().err
    assert main(["quiz", "ticket", "module01", "ada", "--closes", "tomorrow"]) == 2
    assert "--closes 'tomorrow'" in capsys.readouterr().err
    (tmp_path / "class.txt").write_text("# the class\nada\n\ngrace\n")
    assert main(["quiz", "ticket", "module01", "--learners-file", str(tmp_path / "class.txt"), "--out",
                 str(tmp_path / "t"), "--minutes", "40", "--json", "-"]) == 0
    written = json.loads(capsys.readouterr().out)["tickets"]
    assert [Path(p).name for p in written] == ["ada.ticket.yaml", "grace.ticket.yaml"]
    ada, grace = (yaml.safe_load(Path(p).read_text()) for p in written)
    assert (ada["quiz"], ada["learner"], ada["minutes"]) == ("module01", "ada", 40)
    assert ada["nonce"] != grace["nonce"] and len(ada["signature"]) == 64
    key = (workbook / ".state" / "quiz-ticket.key").read_text()
    assert key.strip() not in Path(written[0]).read_text(), "the key never leaves the instructor's .state/"
