"""`autograder quiz grade`: a class folder with good, weak and broken files is graded, and the batch goes on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml
from quiz_support import REFERENCE

from autograder.cli import main


def _class(tmp_path: Path) -> Path:
    key = yaml.safe_load(REFERENCE.read_text())
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "alice.yaml").write_text(REFERENCE.read_text())
    bob = dict(key)
    for qid in list(key)[:7]:  # seven wrong answers (the first seven are choice questions): 13/20 fails
        bob[qid] = "e" if isinstance(key[qid], str) else ["f"]
    (folder / "bob.json").write_text(json.dumps(bob))
    (folder / "carol.yaml").write_text("m01-what-is-mlops: [unclosed\n")
    (folder / "dave.yaml").write_text("- just\n- a list\n")
    erin = {"m01-what-is-mlops": key["m01-what-is-mlops"], "m01-iaas": {"not": "an option"},
            "m01-spot-instances": 3, "no-such-question": "a"}
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
    assert rows["alice"]["m01-iaas"] == "1" and rows["bob"]["m01-what-is-mlops"] == "0"
    assert "carol.yaml: line 2" in rows["carol"]["error"] and "not valid YAML" in rows["carol"]["error"]
    assert "expected a mapping of question id -> answer" in rows["dave"]["error"]
    assert rows["erin"]["score"] == "1" and rows["erin"]["error"] == ""
    summary = json.loads((tmp_path / "g.json").read_text())
    assert summary == json.loads((out / "grades.json").read_text())
    erin = next(s for s in summary["students"] if s["student"] == "erin")
    reasons = {q["id"]: (q["status"], q["reason"]) for q in erin["questions"]}
    assert reasons["m01-iaas"][0] == "invalid" and "expected one option id" in reasons["m01-iaas"][1]
    assert reasons["m01-spot-instances"][0] == "invalid"
    assert reasons["m01-layer-cache"] == ("missing", "no answer")
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
    assert "m01-state-dict" in out and "20/20" in out
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
    assert "module01.yaml  20" in capsys.readouterr().out
    bad = write_bank("id: bad\ntitle: t\npass_mark: 2\nquestions: []\n", name="bad")
    assert main(["quiz", "validate", str(bad), "--json", "-"]) == 1
    captured = capsys.readouterr()
    assert f"{bad}: line 3, pass_mark" in captured.err
    assert '"valid": false' in captured.out
