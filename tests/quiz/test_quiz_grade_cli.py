"""`autograder quiz grade`: a class folder with good, weak, broken and hostile files is graded, every bad file
is a row of its own, and the batch always goes on."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml
from quiz_support import REFERENCE, drawn_for, exam_record, ticket_key

from autograder.cli import main
from autograder.quiz.bank import load_quiz

BANK = REFERENCE.parents[2] / "quizzes" / "module01.yaml"


def _key() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def _class(root: Path, tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    quiz, key, secret = load_quiz(BANK), _key(), ticket_key(root)
    folder = tmp_path / "answers"
    folder.mkdir()
    records = {"alice": exam_record(quiz, secret, "alice", key)}
    bob = exam_record(quiz, secret, "bob", key)
    for qid in drawn_for(quiz, bob)[:7]:  # seven wrong answers among the 20 bob drew: 13/20 fails
        bob["answers"][qid] = "zz" if not isinstance(key[qid], list) else ["f"]
    records["bob"] = bob
    erin = exam_record(quiz, secret, "erin", {})
    e1, e2, e3 = drawn_for(quiz, erin)[:3]
    erin["answers"] = {e1: key[e1], e2: {"not": "an option"}, e3: [1, 2], "no-such-question": "a"}
    records["erin"] = erin
    (folder / "alice.yaml").write_text(yaml.safe_dump(records["alice"]))
    (folder / "bob.json").write_text(json.dumps(records["bob"]))
    (folder / "erin.yaml").write_text(yaml.safe_dump(records["erin"]))
    (folder / "carol.yaml").write_text("m01-what-is-mlops: [unclosed\n")
    (folder / "dave.yaml").write_text("- just\n- a list\n")
    (folder / ".DS_Store").write_text("ignored")
    return folder, records


def test_grade_a_class(workbook: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "grades"
    folder, records = _class(workbook, tmp_path)
    code = main(["quiz", "grade", "module01", str(folder), "--out", str(out), "--json", str(tmp_path / "g.json")])
    captured = capsys.readouterr()
    assert code == 1, "two files scored nothing: exit 1, the rest graded"
    assert "2 file(s) scored nothing" in captured.err
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert list(rows) == ["alice", "bob", "carol", "dave", "erin"]
    quiz = load_quiz(BANK)
    alice, bob = drawn_for(quiz, records["alice"]), drawn_for(quiz, records["bob"])
    assert (rows["alice"]["score"], rows["alice"]["passed"], rows["alice"]["status"]) == ("20", "yes", "graded")
    assert (rows["bob"]["score"], rows["bob"]["passed"]) == ("13", "no")
    assert rows["alice"][alice[0]] == "1" and rows["bob"][bob[0]] == "0"
    assert [q for q in rows["alice"] if rows["alice"][q] == "n/a"] and sum(v == "1" for v in rows["alice"].values()) == 20
    assert rows["carol"]["status"] == "unreadable" and rows["carol"]["score"] == "0"
    assert "carol.yaml: line 2" in rows["carol"]["error"] and "not valid YAML" in rows["carol"]["error"]
    assert "expected a mapping of question id -> answer" in rows["dave"]["error"]
    assert rows["erin"]["score"] == "1" and rows["erin"]["error"] == ""
    summary = json.loads((tmp_path / "g.json").read_text())
    assert summary == json.loads((out / "grades.json").read_text())
    erin = next(s for s in summary["students"] if s["student"] == "erin")
    reasons = {q["id"]: (q["status"], q["reason"]) for q in erin["questions"]}
    e1, e2, e3, e4 = drawn_for(quiz, records["erin"])[:4]
    assert reasons[e1][0] == "correct" and reasons[e2][0] == "invalid" and reasons[e3][0] == "invalid"
    assert reasons[e4] == ("missing", "no answer")
    assert erin["notes"] == ["answer to 'no-such-question' ignored: no question has this id"]


def test_grade_exits_0_when_every_file_was_graded(workbook: Path, tmp_path: Path, capsys) -> None:
    folder, _ = _class(workbook, tmp_path)
    for name in ("carol.yaml", "dave.yaml"):
        (folder / name).unlink()
    assert main(["quiz", "grade", "module01", str(folder), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "not passed" in out


def test_grade_one_file_shows_each_question(workbook: Path, tmp_path: Path, capsys) -> None:
    record = exam_record(load_quiz(BANK), ticket_key(workbook), "ada", _key())
    path = tmp_path / "ada.yaml"
    path.write_text(yaml.safe_dump(record))
    assert main(["quiz", "grade", "module01", str(path)]) == 0
    out = capsys.readouterr().out
    assert drawn_for(load_quiz(BANK), record)[0] in out and "20/20" in out
    assert (workbook / ".grading" / "quiz-module01" / "grades.csv").is_file()


def test_grade_usage_errors(workbook: Path, tmp_path: Path, capsys) -> None:
    ticket_key(workbook)
    assert main(["quiz", "grade", "module01", str(tmp_path / "nowhere")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["quiz", "grade", "module01", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no such answers file or folder" in err and "no answers files in this folder" in err


def test_grading_a_graded_quiz_without_the_ticket_key_says_where_it_goes(workbook: Path, capsys) -> None:
    assert main(["quiz", "grade", "module01", str(REFERENCE)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ".state/quiz-ticket.key" in err[0] and "quiz ticket" in err[0]


def test_validate_cli(workbook: Path, write_bank, capsys) -> None:
    assert main(["quiz", "validate"]) == 0
    assert "module01.yaml  50" in capsys.readouterr().out
    bad = write_bank("id: bad\ntitle: t\npass_mark: 2\nquestions: []\n", name="bad")
    assert main(["quiz", "validate", str(bad), "--json", "-"]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: line 3, pass_mark" in captured.err
    assert '"valid": false' in captured.out


def test_an_unwritable_out_folder_is_one_line_exit_2(workbook: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(yaml.safe_dump(exam_record(load_quiz(BANK), ticket_key(workbook), "ada", _key())))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["quiz", "grade", "module01", str(path), "--out", str(blocker / "grades")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a-file/grades" in err[0]


# --------------------------------------------------------------------------------------------- hostile files

DEEP_YAML = "a: " + "[" * 5000 + "]" * 5000 + "\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("deep.yaml", DEEP_YAML, "nested more than"),
    ("laughs.yaml", LAUGHS, "YAML alias"),
    ("deep.json", DEEP_JSON, ""),
    ("huge.yaml", "a: " + "x" * 300_000 + "\n", "bytes"),
    ("binary.yaml", b"\xff\xfe\x00garbage", "not UTF-8"),
    ("tagged.yaml", "a: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("bigint.json", '{"m01-iaas": ' + "9" * 5000 + "}", ""),
    ("notes.txt", "m01-iaas: c\n", "not an answers file"),
])
def test_one_hostile_file_is_one_row_and_every_other_learner_is_graded(workbook: Path, tmp_path: Path, capsys,
                                                                       name: str, content, reason: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    quiz = load_quiz(BANK)
    secret = ticket_key(workbook)
    for learner in ("ada", "zoe"):
        (folder / f"{learner}.yaml").write_text(yaml.safe_dump(exam_record(quiz, secret, learner, _key())))
    target = folder / name
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "o"
    assert main(["quiz", "grade", "module01", str(folder), "--out", str(out), "--json", "-"]) == 1
    students = {s["file"]: s for s in json.loads(capsys.readouterr().out)["students"]}
    assert students[str(folder / "ada.yaml")]["score"] == 20 and students[str(folder / "zoe.yaml")]["score"] == 20
    bad = students[str(target)]
    assert bad["score"] == 0 and bad["status"] != "graded" and name in bad["error"] and reason in bad["error"]
    assert {r["student"] for r in csv.DictReader((out / "grades.csv").open())} >= {"ada", "zoe"}


def test_a_folder_a_fifo_and_a_symlink_to_a_device_do_not_stop_the_batch(workbook: Path, tmp_path: Path,
                                                                         capsys) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ada.yaml").write_text(yaml.safe_dump(exam_record(load_quiz(BANK), ticket_key(workbook), "ada",
                                                                _key())))
    (folder / "sub.yaml").mkdir()
    os.mkfifo(folder / "pipe.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    assert main(["quiz", "grade", "module01", str(folder), "--out", str(tmp_path / "o"), "--json", "-"]) == 1
    students = {Path(s["file"]).name: s for s in json.loads(capsys.readouterr().out)["students"]}
    assert students["ada.yaml"]["score"] == 20
    assert students["pipe.yaml"]["status"] == "unreadable" and students["zero.yaml"]["status"] == "unreadable"


def test_file_names_that_look_like_formulas_are_text_in_grades_csv(workbook: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ('=HYPERLINK("http-evil","x").yaml', "+cmd.yaml", "-2+3.yaml", "@SUM(A1).yaml"):
        (folder / name).write_text(REFERENCE.read_text())
    ticket_key(workbook)
    out = tmp_path / "o"
    assert main(["quiz", "grade", "module01", str(folder), "--out", str(out)]) == 1
    with (out / "grades.csv").open() as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    assert "'=HYPERLINK(\"http-evil\",\"x\")" in cells and "'+cmd" in cells
    names = sorted(p.name for p in (out / "feedback").iterdir())
    assert all(not n.startswith((".", "=")) and "/" not in n for n in names) and len(names) == 4
