"""`autograder quiz lint`: the graded banks cannot be passed blind. Every strategy of the family (and a few the
family does not hold) stays within chance + 10 points and passes nobody; banks with a planted cue fail."""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path

import pytest
from quiz_support import BANKS

from autograder.cli import main
from autograder.quiz.bank import Question, load_quiz
from autograder.quiz.grading import grade_question
from autograder.quiz.lint import MARGIN, chance_fraction, lint_bank
from autograder.quiz.shuffle import arrange


def test_make_test_lints_every_summative_bank_and_they_pass(capsys) -> None:
    assert main(["quiz", "lint", "--json", "-"]) == 0
    banks = {b["quiz"]: b for b in json.loads(capsys.readouterr().out)["banks"]}
    assert set(banks) == {"module01", "phase1"}
    for bank in banks.values():
        assert bank["passed"] and bank["limit"] == pytest.approx(bank["chance"] + MARGIN, abs=0.01)
        for strategy in bank["strategies"]:
            assert strategy["mean"] <= bank["limit"] and strategy["passed"] == 0, (bank["quiz"], strategy)
        mix = next(s for s in bank["strategies"] if s["name"].startswith("best mix"))
        assert mix["best"] < bank["pass_mark"]
        # answering from the learner copy alone as issue 23 measured it: longest option, options longer than
        # average for multiple select, 'false' for true/false
        issue = next(s for s in bank["strategies"] if s["name"] == "longest; longer than average; always false")
        assert issue["passed"] == 0 and issue["mean"] <= bank["limit"]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _holdout_pickers():  # rules a test-wise learner might use that quiz lint does not simulate
    def like_the_longest(q: Question, shown):
        longest = max(shown, key=lambda o: len(q.options[o]))
        return max((o for o in shown if o != longest),
                   key=lambda o: len(_words(q.options[o]) & _words(q.options[longest])))

    def median_length(q: Question, shown):
        ranked = sorted(shown, key=lambda o: len(q.options[o]))
        return ranked[len(ranked) // 2]

    def first_word_in_prompt(q: Question, shown):
        hits = [o for o in shown if q.options[o].split()[0].lower() in _words(q.prompt)]
        return (hits or list(shown))[0]

    def most_distinct_letters(q: Question, shown):
        return max(shown, key=lambda o: len(set(q.options[o].lower())))

    def last_shown(q: Question, shown):
        return shown[-1]

    return [like_the_longest, median_length, first_word_in_prompt, most_distinct_letters, last_shown]


@pytest.mark.parametrize("quiz_id", ["module01", "phase1"])
@pytest.mark.parametrize("picker", _holdout_pickers(), ids=lambda f: f.__name__)
def test_strategies_the_lint_does_not_simulate_stay_near_chance(quiz_id: str, picker) -> None:
    quiz = load_quiz(BANKS / f"{quiz_id}.yaml")
    scores, chances = [], []
    for i in range(200):
        presented = arrange(quiz, learner=f"holdout-{i}", nonce=f"h{i}")
        got = chance = total = 0.0
        for p in presented:
            q = p.question
            total += q.points
            chance += chance_fraction(q) * q.points
            if q.type == "single":
                got += grade_question(q, picker(q, p.options)).points
            elif q.type == "truefalse":
                got += grade_question(q, i % 2 == 0).points  # half the class says true, half false
        scores.append(100 * got / total)
        chances.append(100 * chance / total)
    assert sum(scores) / len(scores) <= sum(chances) / len(chances) + MARGIN
    assert max(scores) < quiz.pass_mark * 100


def _synthetic(write_bank, cue: str) -> Path:
    """A graded bank of 30 single-choice questions whose keys carry one planted cue."""
    rng = random.Random(cue)
    vocab = ["model", "data", "pipeline", "server", "cache", "image", "layer", "token", "batch", "metric", "drift",
             "replica", "queue", "shard", "schema", "tensor", "kernel", "graph", "registry", "partition"]
    items = []
    for i in range(30):
        texts = [" ".join(rng.choice(vocab) for _ in range(8)) for _ in range(4)]
        key = rng.randrange(4)
        if cue == "longest":
            texts[key] += " " + " ".join(rng.choice(vocab) for _ in range(4))
        elif cue == "position":
            texts[2], texts[key] = texts[key], texts[2]
            key = 2
        elif cue == "commas":
            texts[key] = texts[key].replace(" ", ", ", 2)
        options = "\n".join(f"      {chr(97 + j)}: {t}" for j, t in enumerate(texts))
        items.append(f"""\
  - id: q{i:02d}
    type: single
    topic: t
    points: 1
    prompt: Which one, number {i}?
    options:
{options}
    answer: {chr(97 + key)}
    explanation: Because.""")
    head = """\
        id: synthetic
        title: Synthetic
        pass_mark: 70%
        assessment: summative
        shuffle: {questions: true, options: true}
        draw: 20
        questions:
        """
    return write_bank(textwrap.dedent(head) + "\n".join(items) + "\n", name="synthetic")


@pytest.mark.parametrize(("cue", "caught_by"), [("longest", "single: longest"),
                                                ("position", "single: stored position c"),
                                                ("commas", "single: most punctuation")])
def test_a_planted_cue_fails_the_bank(write_bank, capsys, cue: str, caught_by: str) -> None:
    path = _synthetic(write_bank, cue)
    report = lint_bank(load_quiz(path), learners=50)
    assert not report.passed
    flagged = [s.name for s in report.strategies if not s.ok]
    assert any(name.startswith(caught_by) for name in flagged), flagged
    assert main(["quiz", "lint", str(path), "--learners", "50"]) == 1
    assert "TOO HIGH" in capsys.readouterr().out


def test_all_of_the_above_and_a_plain_negation_fail(write_bank) -> None:
    path = write_bank("""\
        id: worded
        title: Worded
        pass_mark: 70%
        assessment: summative
        questions:
          - id: w1
            type: single
            topic: t
            points: 1
            prompt: Which of these is a container runtime?
            options: {a: containerd, b: CRI-O, c: runc, d: All of the above}
            answer: d
            explanation: All are.
          - id: w2
            type: single
            topic: t
            points: 1
            prompt: Which of these does not belong in a config file?
            options: {a: the learning rate, b: the batch size, c: the storage password, d: the random seed}
            answer: c
            explanation: Secrets do not.
          - id: w3
            type: single
            topic: t
            points: 1
            prompt: Which of these does **not** change a model's result?
            options: {a: the seed, b: the data, c: the editor, d: the learning rate}
            answer: c
            explanation: The editor.
        """, name="worded")
    report = lint_bank(load_quiz(path), learners=20)
    failing = {f.about: f.message for f in report.findings if f.failing}
    assert "all/none of the above" in failing["w1"]
    assert "'not' without emphasis" in failing["w2"]
    assert "w3" not in failing and not report.passed
    assert {f.rule for f in report.findings if f.failing} == {"all-none-of-the-above", "plain-negation"}
    assert all(f.where == f"{path}:{f.line}" for f in report.findings), report.findings


def test_the_json_keeps_each_findings_published_keys(write_bank, capsys) -> None:
    """`quiz lint --json` writes a finding as it always did (question, line, problem, fails), from the course's one
    Finding: a failing one is FAIL in the printout and fails the bank, advice is a note and does not."""
    path = write_bank("""\
        id: cues
        title: Cues
        pass_mark: 70%
        assessment: summative
        questions:
          - id: c1
            type: single
            topic: t
            points: 1
            prompt: Which of these is a container runtime?
            options: {a: containerd, b: CRI-O, c: runc, d: none of the above}
            answer: a
            explanation: It is.
          - id: c2
            type: single
            topic: t
            points: 1
            prompt: Which one is best?
            options: {a: x, b: a very long option that is the key by far, c: y, d: z}
            answer: b
            explanation: It is.
        """, name="cues")
    assert main(["quiz", "lint", str(path), "--learners", "5", "--json", "-"]) == 1
    captured = capsys.readouterr()
    [bank] = json.loads(captured.out)["banks"]
    assert [list(f) for f in bank["findings"]] == [["question", "line", "problem", "fails"]] * len(bank["findings"])
    by_problem = {(f["question"], f["problem"].split(" ")[0]): (f["line"], f["fails"]) for f in bank["findings"]}
    assert by_problem[("c1", "'all/none")] == (6, True)
    assert by_problem[("c2", "the")] == (14, False) and by_problem[("c2", "option")] == (14, False)
    assert "FAIL: cues line 6, question 'c1': 'all/none of the above'" in captured.err + captured.out
    assert "note: cues line 14, question 'c2': the key is the longest option by far" in captured.err + captured.out
