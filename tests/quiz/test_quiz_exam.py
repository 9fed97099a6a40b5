"""Summative quizzes: `quiz take --exam` records one attempt with the learner id and time and shows nothing of
the key; `quiz grade` scores the recorded draw only and releases the explanations with the feedback."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import yaml
from quiz_support import REFERENCE
from test_quiz_take import screen_answers_for_learner

from autograder.cli import main
from autograder.quiz.bank import load_quiz
from autograder.quiz.shuffle import drawn_ids


def _exam(monkeypatch, capsys, argv: list[str], stdin: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["quiz", "take", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_exam_records_answers_shows_no_key_and_allows_one_attempt(workbook: Path, monkeypatch, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    typed = screen_answers_for_learner(quiz, key, "ada")
    code, out, _ = _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", "ada"], typed)
    assert code == 0
    record_path = workbook / "workspace" / "quizzes" / "module01" / "ada.yaml"
    record = yaml.safe_load(record_path.read_text())
    assert record["quiz"] == "module01" and record["learner"] == "ada" and record["started"] and record["finished"]
    assert set(record["drawn"]) == drawn_ids(quiz, "ada") and len(record["answers"]) == 20
    assert "Recorded 20 of 20 answers" in out
    for leaked in ("Correct.", "Not quite", "The answer", "Why:", "Score:"):
        assert leaked not in out, f"an exam shows no feedback: {leaked!r} in the output"
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", "ada"], typed)
    assert code == 2 and "already recorded" in err and "one attempt" in err
    assert yaml.safe_load(record_path.read_text()) == record, "a refused second attempt leaves the record alone"


def test_exam_needs_a_learner_id(workbook: Path, monkeypatch, capsys) -> None:
    code, _, err = _exam(monkeypatch, capsys, ["module01", "--exam"], "")
    assert code == 2 and "--learner" in err and len(err.strip().splitlines()) == 1


def test_grade_scores_the_drawn_questions_only_and_releases_explanations(workbook: Path, monkeypatch, capsys,
                                                                          tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    hand_in = tmp_path / "hand-in"
    hand_in.mkdir()
    for learner, wrong in (("ada", 0), ("grace", 7)):
        drawn = [q.id for q in quiz.questions if q.id in drawn_ids(quiz, learner)]
        typed = screen_answers_for_learner(quiz, key, learner, wrong=set(drawn[:wrong]))
        _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", learner, "--save",
                                    str(hand_in / f"{learner}.yaml")], typed)
    # an answers file that answers the whole pool still scores only the 20 drawn for its learner id
    (hand_in / "linus.yaml").write_text(REFERENCE.read_text())
    out = tmp_path / "grades"
    assert main(["quiz", "grade", "module01", str(hand_in), "--out", str(out), "--json", "-"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    by = {s["student"]: s for s in summary["students"]}
    assert (by["ada"]["score"], by["ada"]["max_score"], by["ada"]["passed"]) == (20, 20, True)
    assert (by["grace"]["score"], by["grace"]["max_score"], by["grace"]["passed"]) == (13, 20, False)
    assert (by["linus"]["score"], by["linus"]["max_score"]) == (20, 20)
    assert len(by["linus"]["notes"]) == 21  # the 21 answers to questions linus did not draw are ignored
    for name in ("ada", "grace", "linus"):
        assert set(by[name]["drawn"]) == drawn_ids(quiz, name)
        assert {q["id"] for q in by[name]["questions"]} == drawn_ids(quiz, name)
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    not_drawn = next(q.id for q in quiz.questions if q.id not in drawn_ids(quiz, "ada"))
    assert rows["ada"][not_drawn] == "-"
    feedback = (out / "feedback" / "grace.md").read_text()
    wrong_one = next(q for q in quiz.questions if q.id in drawn_ids(quiz, "grace"))
    assert wrong_one.explanation[:60] in " ".join(feedback.split()) and "Your answer:" in feedback


def test_a_tampered_record_is_graded_on_the_learners_real_draw(workbook: Path, tmp_path: Path, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    record = {"quiz": "module01", "learner": "ada", "drawn": [q.id for q in quiz.questions[:20]],
              "answers": {q.id: key[q.id] for q in quiz.questions[:20]}}
    path = tmp_path / "ada.yaml"
    path.write_text(yaml.safe_dump(record))
    assert main(["quiz", "grade", "module01", str(path), "--out", str(tmp_path / "o"), "--json", "-"]) == 0
    student = json.loads(capsys.readouterr().out)["students"][0]
    expected = len(drawn_ids(quiz, "ada") & {q.id for q in quiz.questions[:20]})
    assert student["score"] == expected < 20
    assert any("differs from this learner's draw" in n for n in student["notes"])
    path.rename(tmp_path / "grace.yaml")  # handed in under another name: graded on ada's draw, and flagged
    assert main(["quiz", "grade", "module01", str(tmp_path / "grace.yaml"), "--out", str(tmp_path / "o"),
                 "--json", "-"]) == 0
    student = json.loads(capsys.readouterr().out)["students"][0]
    assert student["learner"] == "ada" and student["score"] == expected
    assert any("is learner 'ada'" in n for n in student["notes"])


def test_a_summative_learner_copy_cannot_be_self_checked(workbook: Path, monkeypatch, capsys,
                                                         tmp_path: Path) -> None:
    from autograder.quiz.learner import write_learner_copies

    copies = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}
    code, _, err = _exam(monkeypatch, capsys, [str(copies["module01"])], "")
    assert code == 2 and "--exam" in err
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    code, out, _ = _exam(monkeypatch, capsys, [str(copies["module01"]), "--exam", "--learner", "ada", "--save",
                                               str(tmp_path / "ada.yaml")], screen_answers_for_learner(quiz, key, "ada"))
    assert code == 0 and "Recorded 20 of 20" in out
    assert main(["quiz", "grade", "module01", str(tmp_path / "ada.yaml"), "--out", str(tmp_path / "o")]) == 0
    assert "20/20" in capsys.readouterr().out


def test_submit_quiz_hands_in_the_record_where_quiz_grade_reads_it(workbook: Path, monkeypatch, capsys,
                                                                   tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    assert main(["submit", "quiz", "module01", "--student", "ada", "--out", str(tmp_path / "in")]) == 2
    assert "take the exam first" in capsys.readouterr().err
    typed = screen_answers_for_learner(quiz, key, "ada")
    assert _exam(monkeypatch, capsys, ["module01", "--exam", "--learner", "ada"], typed)[0] == 0
    assert main(["submit", "quiz", "module01", "--student", "ada", "--out", str(tmp_path / "in")]) == 0
    handed = tmp_path / "in" / "module01" / "ada.yaml"
    assert handed.is_file() and "quiz grade module01" in capsys.readouterr().out
    out = tmp_path / "grades"
    assert main(["quiz", "grade", "module01", str(handed.parent), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [r["student"] for r in rows] == ["ada"] and float(rows[0]["score"]) == 20
