"""`autograder quiz take`, driven through stdin as a learner piping answers would."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from quiz_support import REFERENCE, REPO

from autograder.cli import main
from autograder.quiz.bank import load_quiz
from autograder.quiz.shuffle import arrange


def screen_answers(quiz, key: dict, *, seed: int, wrong: set[str] = frozenset()) -> str:
    """The lines to type for `key`, mapped to the numbers shown on screen under this seed's shuffle."""
    lines = []
    for p in arrange(quiz, seed=seed):
        q, answer = p.question, key[p.question.id]
        if q.type == "single":
            pick = next(o for o in p.options if o != answer) if q.id in wrong else answer
            lines.append(str(p.options.index(pick) + 1))
        elif q.type == "multiple":
            picks = [o for o in p.options if o not in answer][:1] if q.id in wrong else answer
            lines.append(",".join(str(p.options.index(o) + 1) for o in picks))
        else:
            lines.append("not this" if q.id in wrong else str(answer))
    return "\n".join(lines) + "\n"


def take(monkeypatch, capsys, argv: list[str], stdin: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["quiz", "take", *argv])
    return code, capsys.readouterr().out


def test_all_right_passes_and_records_progress(workbook: Path, monkeypatch, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    code, out = take(monkeypatch, capsys, ["module01", "--seed", "5"], screen_answers(quiz, key, seed=5))
    assert code == 0
    assert "Score: 20 of 20 (100%). Pass mark 70%: PASSED." in out
    assert out.count("Correct.") == 20
    record = json.loads((workbook / "workspace" / ".progress" / "quiz-module01.json").read_text())
    assert (record["passed"], record["score"], record["max_score"]) == (True, 20, 20)


def test_wrong_answers_get_the_answer_the_explanation_and_topics(workbook: Path, monkeypatch, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    shown = [p.question for p in arrange(quiz, seed=5)]
    wrong = {q.id for q in shown if q.topic in ("serving", "cloud", "docker", "api")}
    assert len(wrong) == 3 + 2 + 2 + 2  # the stratified draw: 3 serving, 2 cloud, 2 docker, 2 api for everyone
    monkeypatch.setattr(sys, "stdin", io.StringIO(screen_answers(quiz, key, seed=5, wrong=wrong)))
    code = main(["quiz", "take", "module01", "--seed", "5", "--json", "-"])
    captured = capsys.readouterr()
    out = captured.err  # with --json -, stdout holds only the JSON and the session goes to stderr
    assert code == 1
    assert "Score: 11 of 20" in out and "NOT PASSED" in out
    assert ("Topics to review: serving (3 points lost), api (2 points lost), cloud (2 points lost), docker (2 points "
            "lost)") in out
    first_wrong = next(q for q in shown if q.id in wrong)
    assert "Why: " + first_wrong.explanation.split()[0] in out
    assert "Reread those lessons and take it again: .venv/bin/autograder quiz take module01" in out
    result = json.loads(captured.out)
    assert result["topics_to_review"] == ["serving", "api", "cloud", "docker"] and result["passed"] is False


def test_invalid_input_is_asked_again_and_skips_count_as_unanswered(workbook: Path, monkeypatch, capsys) -> None:
    quiz = load_quiz(workbook / "quizzes" / "lesson03.yaml")
    first = arrange(quiz, seed=1)[0]
    assert first.question.type == "multiple"
    right = ",".join(str(first.options.index(o) + 1) for o in first.question.answer)
    code, out = take(monkeypatch, capsys, ["lesson03", "--seed", "1", "--no-record"], f"9\nabc\n{right}\n\n")
    assert "type numbers from 1 to 5" in out
    assert "Correct. (+1 point)" in out
    assert "Skipped (0 points)" in out
    assert "The input ended: the remaining questions count as unanswered" in out
    assert "Score: 1 of 4 (25%)" in out and code == 1
    assert not (workbook / "workspace" / ".progress").exists()


def test_same_seed_same_quiz_and_saved_answers_grade_the_same(workbook: Path, monkeypatch, capsys,
                                                               tmp_path: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "module01.yaml")
    key = yaml.safe_load(REFERENCE.read_text())
    shown = arrange(quiz, learner="alice")
    wrong = {shown[0].question.id, shown[5].question.id}
    typed = screen_answers_for_learner(quiz, key, "alice", wrong=wrong)
    saved = tmp_path / "alice.yaml"
    code, out = take(monkeypatch, capsys, ["module01", "--learner", "alice", "--save", str(saved)], typed)
    assert code == 0 and "Score: 18 of 20" in out
    _, out2 = take(monkeypatch, capsys, ["module01", "--learner", "alice", "--no-record"], typed)
    assert out2.split("Answers saved")[0] == out.split("Answers saved")[0]  # same questions, same order
    # practice answers carry no exam ticket: the instructor grades them only when told to
    code = main(["quiz", "grade", "module01", str(saved), "--out", str(tmp_path / "out"), "--accept", "no-ticket"])
    assert code == 0 and "18/20" in capsys.readouterr().out


def test_a_learner_copy_is_taken_the_same_way(workbook: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    from autograder.quiz.learner import write_learner_copies

    copies = {p.stem: p for p in write_learner_copies(workbook, tmp_path / "dist")}
    source = load_quiz(workbook / "quizzes" / "lesson06.yaml")
    key = {"l06-throughput": 40, "l06-handler": source.question("l06-handler").answer,
           "l06-batching": source.question("l06-batching").answer, "l06-async-def": "false",
           "l06-readiness": source.question("l06-readiness").answer}
    code, out = take(monkeypatch, capsys, [str(copies["lesson06"]), "--seed", "2", "--no-record"],
                     screen_answers(source, key, seed=2))
    assert "practice, not a grade" in out
    assert "Recorded: graded by your instructor." in out
    assert "Score: 4 of 4 (100%)" in out and "1 point that your instructor grades" in out
    assert code == 0


def test_piped_through_a_real_process(workbook: Path) -> None:
    quiz = load_quiz(workbook / "quizzes" / "lesson01.yaml")
    key = {q.id: (sorted(q.answer) if q.type == "multiple" else q.answer) for q in quiz.questions}
    env = {**os.environ, "WORKBOOK_ROOT": str(workbook)}
    proc = subprocess.run([sys.executable, "-m", "autograder", "quiz", "take", "lesson01", "--learner", "ada"],
                          input=screen_answers_for_learner(quiz, key, "ada"), capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Score: 5 of 5 (100%)" in proc.stdout


def screen_answers_for_learner(quiz, key: dict, learner: str, wrong: set[str] = frozenset()) -> str:
    from autograder.quiz.shuffle import learner_seed

    return screen_answers(quiz, key, seed=learner_seed(quiz.id, learner), wrong=wrong)


def test_unknown_quiz_is_a_usage_error(workbook: Path, capsys) -> None:
    assert main(["quiz", "take", "lesson99"]) == 2
    err = capsys.readouterr().err
    assert "no quiz 'lesson99'" in err and "available: lesson01" in err


@pytest.mark.parametrize("argv", [["quiz"], ["quiz", "take"]])
def test_missing_arguments_exit_2(workbook: Path, argv, capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        if main(argv) == 2:
            raise SystemExit(2)
    assert raised.value.code == 2
