"""`autograder quiz grade`: a class folder with good, weak and broken files is graded, and the batch goes on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml
from quiz_support import REFERENCE

from autograder.cli import main
from autograder.quiz.bank import load_quiz
from autograder.quiz.shuffle import drawn_ids

BANK = REFERENCE.parents[2] / "quizzes" / "module01.yaml"


def _drawn(learner: str) -> list[str]:
    quiz = load_quiz(BANK)
    return [q.id for q in quiz.questions if q.id in drawn_ids(quiz, learner)]


def _class(tmp_path: Path) -> Path:
    key = yaml.safe_load(REFERENCE.read_text())
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "alice.yaml").write_text(REFERENCE.read_text())
    bob = dict(key)
    for qid in _drawn("bob")[:7]:  # seven wrong answers among the 20 bob drew: 13/20 fails
        bob[qid] = "zz" if not isinstance(key[qid], list) else ["f"]
    (folder / "bob.json").write_text(json.dumps(bob))
    (folder / "carol.yaml").write_text("m01-what-is-mlops: [unclosed\n")
    (folder / "dave.yaml").write_text("- just\n- a list\n")
    e1, e2, e3 = _drawn("erin")[:3]
    erin = {e1: key[e1], e2: {"not": "an option"}, e3: [1, 2], "no-such-question": "a"}
    (folder / "erin.yaml").write_text(yaml.safe_dump(erin))
    (folder / ".DS_Store").write_text("ignored")
    return folder


def test_grade_a_class(workbook: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "grades"
    code = main(["quiz", "grade", "module01", str(_class(tmp_path)), "--out", str(out), "--json",
                 str(tmp_path / "g.json")])
    captured = capsys.readouterr()
    assert code == 1, "two files could not be read: exit 1, the rest graded"
    assert "2 answers file(s) could not be read" in captured.err
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin"]
    assert (rows["alice"]["score"], rows["alice"]["passed"]) == ("20", "yes")
    assert (rows["bob"]["score"], rows["bob"]["passed"]) == ("13", "no")
    assert rows["alice"][_drawn("alice")[0]] == "1" and rows["bob"][_drawn("bob")[0]] == "0"
    assert [q for q in rows["alice"] if rows["alice"][q] == "-"] and sum(v == "1" for v in rows["alice"].values()) == 20
    assert "carol.yaml: line 2" in rows["carol"]["error"] and "not valid YAML" in rows["carol"]["error"]
    assert "expected a mapping of question id -> answer" in rows["dave"]["error"]
    assert rows["erin"]["score"] == "1" and rows["erin"]["error"] == ""
    summary = json.loads((tmp_path / "g.json").read_text())
    assert summary == json.loads((out / "grades.json").read_text())
    erin = next(s for s in summary["students"] if s["student"] == "erin")
    reasons = {q["id"]: (q["status"], q["reason"]) for q in erin["questions"]}
    e1, e2, e3, e4 = _drawn("erin")[:4]
    assert reasons[e1][0] == "correct" and reasons[e2][0] == "invalid" and reasons[e3][0] == "invalid"
    assert reasons[e4] == ("missing", "no answer")
    assert erin["notes"] == ["answer to 'no-such-question' ignored: no question has this id"]


def test_grade_exits_0_when_every_file_was_graded(workbook: Path, tmp_path: Path, capsys) -> None:
    folder = _class(tmp_path)
    for name in ("carol.yaml", "dave.yaml"):
        (folder / name).unlink()
    assert main(["quiz", "grade", "module01", str(folder), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "not passed" in out


def test_grade_one_file_shows_each_question(workbook: Path, tmp_path: Path, capsys) -> None:
    assert main(["quiz", "grade", "module01", str(REFERENCE)]) == 0
    out = capsys.readouterr().out
    assert _drawn("module01_answers")[0] in out and "20/20" in out
    assert (workbook / ".grading" / "quiz-module01" / "grades.csv").is_file()


def test_grade_usage_errors(workbook: Path, tmp_path: Path, capsys) -> None:
    assert main(["quiz", "grade", "module01", str(tmp_path / "nowhere")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["quiz", "grade", "module01", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no such answers file or folder" in err and "no answers files in this folder" in err


def test_validate_cli(workbook: Path, write_bank, capsys) -> None:
    assert main(["quiz", "validate"]) == 0
    assert "module01.yaml  41" in capsys.readouterr().out
    bad = write_bank("id: bad\ntitle: t\npass_mark: 2\nquestions: []\n", name="bad")
    assert main(["quiz", "validate", str(bad), "--json", "-"]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: line 3, pass_mark" in captured.err
    assert '"valid": false' in captured.out


def test_an_unwritable_out_folder_is_one_line_exit_2(workbook: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["quiz", "grade", "module01", str(REFERENCE), "--out", str(blocker / "grades")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a-file/grades" in err[0]
