"""`autograder quiz take`: one question at a time in the terminal, feedback and the explanation after each.

Reads plain lines from a stream, so it works the same typed or piped (`printf '2\\n1,3\\n' | autograder quiz
take lesson01`). An empty line skips a question; the end of the input leaves the rest unanswered.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Any, TextIO

from autograder.quiz.bank import Question, Quiz
from autograder.quiz.grading import (
    CORRECT,
    MISSING,
    PARTIAL,
    PENDING,
    QuestionResult,
    QuizResult,
    correct_options,
    grade_question,
    summarize,
)
from autograder.quiz.shuffle import Presented, arrange

WIDTH = 100
ATTEMPTS = 3  # invalid entries before a question is skipped

HINTS = {
    "single": "Type the number of one option",
    "multiple": "Type the numbers of every option that applies, separated by commas (e.g. 1,3)",
    "truefalse": "Type true or false (t/f)",
    "numeric": "Type a number",
    "short": "Type your answer",
}


class EndOfInput(Exception):
    pass


@dataclass
class TakeOutcome:
    result: QuizResult
    answers: dict[str, Any]  # question id -> answer in bank terms (option ids, not screen numbers)
    ended_early: bool = False


def wrap(text: str, indent: str = "", hang: str | None = None) -> str:
    """Wrap prose; keep indented lines (code) and blank lines as the author wrote them."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith((" ", "\t")):
            out.append(indent + line)
        else:
            out.append(textwrap.fill(line, WIDTH, initial_indent=indent,
                                     subsequent_indent=indent if hang is None else hang))
    return "\n".join(out)


def _num(x: float) -> str:
    return f"{round(x, 2):g}"


def _points(x: float) -> str:
    return f"{_num(x)} point" + ("" if x == 1 else "s")


def _parse(p: Presented, line: str) -> tuple[Any, str]:
    """Screen input -> (answer in bank terms, problem). A problem means: ask again."""
    q, n = p.question, len(p.options)
    if q.type in ("single", "multiple"):
        tokens = [t for t in re.split(r"[,;\s]+", line) if t]
        if not all(t.isdigit() and 1 <= int(t) <= n for t in tokens):
            return None, f"type {'a number' if q.type == 'single' else 'numbers'} from 1 to {n}"
        if q.type == "single":
            if len(tokens) != 1:
                return None, "type one number: this question has one answer"
            return p.options[int(tokens[0]) - 1], ""
        return [p.options[int(t) - 1] for t in dict.fromkeys(tokens)], ""
    if q.type == "truefalse":
        word = line.casefold()
        if word in ("t", "true", "y", "yes"):
            return True, ""
        if word in ("f", "false", "n", "no"):
            return False, ""
        return None, "type true or false"
    if q.type == "numeric":
        try:
            return float(line.replace("_", "")), ""
        except ValueError:
            return None, "type a number, such as 42 or 0.5"
    return line, ""


def ask(p: Presented, inp: TextIO, out: TextIO) -> Any:
    for _ in range(ATTEMPTS):
        out.write("> ")
        out.flush()
        raw = inp.readline()
        if raw == "":
            out.write("\n")
            raise EndOfInput
        line = raw.strip()
        if not inp.isatty():  # piped answers: echo them so the transcript reads like a session
            out.write(line + "\n")
        if not line:
            return None
        answer, problem = _parse(p, line)
        if not problem:
            return answer
        out.write(f"  {problem} (or press Enter to skip)\n")
    out.write("  skipped after three tries\n")
    return None


def show_question(number: int, total: int, p: Presented, out: TextIO) -> None:
    q = p.question
    out.write(f"\nQuestion {number} of {total}  [{q.topic}, {_points(q.points)}]\n")
    out.write(wrap(q.prompt) + "\n")
    out.writelines(wrap(f"{i}) {q.options[o]}", "  ", "     ") + "\n" for i, o in enumerate(p.options, start=1))
    out.write(f"({HINTS[q.type]}; Enter skips.)\n")


def _feedback(p: Presented, r: QuestionResult, out: TextIO) -> None:
    q: Question = p.question
    if r.status == CORRECT:
        out.write(f"Correct. (+{_points(r.points)})\n")
    elif r.status == PENDING:
        out.write(f"Recorded: {r.reason}.\n")
    else:
        head = {PARTIAL: f"Partly right ({_num(r.points)} of {_points(r.max_points)})",
                MISSING: "Skipped (0 points)"}.get(r.status, f"Not quite (0 of {_points(r.max_points)})")
        out.write(head + (f": {r.reason}" if r.reason and r.status not in (MISSING,) else "") + ".\n")
        if q.type in ("single", "multiple"):
            keys = correct_options(q)
            shown = [f"{i}) {q.options[o]}" for i, o in enumerate(p.options, start=1) if o in keys]
            out.write("The answer:\n" if len(shown) == 1 else "The answers:\n")
            out.writelines(wrap(line, "  ", "     ") + "\n" for line in shown)
        elif r.expected:
            out.write(wrap(f"The answer: {r.expected}") + "\n")
    out.write(wrap("Why: " + q.explanation) + "\n")


def _summary(quiz: Quiz, result: QuizResult, out: TextIO) -> None:
    verdict = "PASSED" if result.passed else "NOT PASSED"
    out.write(f"\n{quiz.title}\n")
    out.write(f"Score: {_num(result.score)} of {_num(result.max_score)} ({result.percent:.0f}%). "
              f"Pass mark {quiz.pass_mark * 100:g}%: {verdict}.\n")
    if result.pending_points:
        out.write(f"Not counted here: {_points(result.pending_points)} that your instructor grades "
                  "(hand in your answers: `--save FILE`).\n")
    review = result.topics_to_review()
    if review:
        out.write("Topics to review: " + ", ".join(f"{t} ({_points(lost)} lost)" for t, lost in review) + "\n")
    if not result.passed:
        out.write(f"Reread those lessons and take it again: .venv/bin/autograder quiz take {quiz.id}\n")


def take(quiz: Quiz, inp: TextIO, out: TextIO, *, learner: str | None = None, seed: int | None = None
         ) -> TakeOutcome:
    """Run the quiz on two streams and return the score and the answers given."""
    presented = arrange(quiz, learner=learner, seed=seed)
    out.write(f"{quiz.title}\n{len(presented)} questions, pass mark {quiz.pass_mark * 100:g}%.")
    if quiz.learner_copy:
        out.write(" (A self-check: answers are checked against salted hashes in your copy, which a determined "
                  "learner could reverse, so it is practice, not a grade.)")
    out.write("\n")
    answers: dict[str, Any] = {}
    results: list[QuestionResult] = []
    ended = False
    for number, p in enumerate(presented, start=1):
        if ended:
            results.append(grade_question(p.question, None))
            continue
        show_question(number, len(presented), p, out)
        try:
            answer = ask(p, inp, out)
        except EndOfInput:
            ended = True
            out.write("(The input ended: the remaining questions count as unanswered.)\n")
            results.append(grade_question(p.question, None))
            continue
        if answer is not None:
            answers[p.question.id] = answer
        result = grade_question(p.question, answer)
        results.append(result)
        _feedback(p, result, out)
    final = summarize(quiz, results, learner or "")
    _summary(quiz, final, out)
    return TakeOutcome(final, answers, ended)
