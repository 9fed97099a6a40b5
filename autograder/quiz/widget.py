"""The quiz in a notebook: `from autograder.quiz.widget import show_quiz; show_quiz("lesson03")`.

Radio buttons, check boxes or a text box per question, a Check button, then feedback and the explanation.
When every question has been checked the score is shown and recorded in the learner's progress. Executed
headless (nbval, nbconvert) it only displays the widgets: nothing waits for input and nothing is recorded.
Works from a source bank or a learner copy.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from autograder.quiz.bank import Quiz, load_quiz, resolve
from autograder.quiz.grading import (
    CORRECT,
    INVALID,
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

COLOURS = {CORRECT: "#1a7f37", PARTIAL: "#9a6700", PENDING: "#0969da"}


def to_html(text: str) -> str:
    """The little markdown the banks use: paragraphs, `code`, and indented code blocks."""
    blocks, out = re.split(r"\n\s*\n", text.strip()), []
    for block in blocks:
        lines = block.splitlines()
        if all(line.startswith(("    ", "\t")) for line in lines):
            out.append("<pre>" + html.escape("\n".join(line[4:] for line in lines)) + "</pre>")
        else:
            escaped = html.escape(" ".join(line.strip() for line in lines))
            out.append("<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped) + "</p>")
    return "".join(out)


class QuestionCard:
    def __init__(self, number: int, total: int, presented: Presented, on_checked: Any) -> None:
        import ipywidgets as w

        self.presented, self.on_checked = presented, on_checked
        self.result: QuestionResult | None = None
        q = presented.question
        head = w.HTML(f"<b>Question {number} of {total}</b> <small>({html.escape(q.topic)}, {q.points:g} "
                      f"point{'s' if q.points != 1 else ''})</small>{to_html(q.prompt)}")
        full = w.Layout(width="100%")
        if q.type == "single":
            self.input: Any = w.RadioButtons(options=[(q.options[o], o) for o in presented.options], value=None,
                                             layout=full)
        elif q.type == "truefalse":
            self.input = w.RadioButtons(options=[("True", True), ("False", False)], value=None, layout=full)
        elif q.type == "multiple":
            self.boxes = [w.Checkbox(description=q.options[o], value=False, indent=False, layout=full)
                          for o in presented.options]
            self.input = w.VBox(self.boxes)
        else:
            self.input = w.Text(placeholder="a number" if q.type == "numeric" else "your answer", layout=full)
        self.button = w.Button(description="Check", button_style="primary")
        self.button.on_click(self.check)
        self.feedback = w.HTML()
        self.box = w.VBox([head, self.input, self.button, self.feedback],
                          layout=w.Layout(border="1px solid #d0d7de", padding="8px", margin="6px 0"))

    def answer(self) -> Any:
        q = self.presented.question
        if q.type == "multiple":
            return [o for o, box in zip(self.presented.options, self.boxes, strict=False) if box.value]
        return self.input.value

    def _lock(self) -> None:
        self.button.disabled = True
        for widget in getattr(self, "boxes", [self.input]):
            widget.disabled = True

    def check(self, _button: Any = None) -> None:
        q = self.presented.question
        result = grade_question(q, self.answer())
        if result.status == MISSING:
            self.feedback.value = "<i>Choose or type an answer first.</i>"
            return
        if result.status == INVALID:  # a typo in a text box: let the learner fix it before it counts
            self.feedback.value = f"<i>{html.escape(result.reason)}: change your answer and check again.</i>"
            return
        self.result = result
        self._lock()
        colour = COLOURS.get(result.status, "#cf222e")
        if result.status == CORRECT:
            verdict = "Correct."
        elif result.status == PENDING:
            verdict = f"Recorded: {result.reason}."
        elif result.status == PARTIAL:
            verdict = f"Partly right ({result.points:g} of {result.max_points:g}): {result.reason}."
        else:
            verdict = "Not quite." + (f" {result.reason}." if result.reason else "")
        parts = [f"<p style='color:{colour}'><b>{html.escape(verdict)}</b></p>"]
        if result.status not in (CORRECT, PENDING):
            if q.type in ("single", "multiple"):
                keys = correct_options(q)
                answer = "; ".join(q.options[o] for o in self.presented.options if o in keys)
            else:
                answer = result.expected
            if answer:
                parts.append(f"<p>The answer: {html.escape(answer)}</p>")
        parts.append(f"<div><b>Why:</b> {to_html(q.explanation)}</div>")
        self.feedback.value = "".join(parts)
        self.on_checked()


class QuizView:
    """The quiz as one widget (`.box`), plus the result once every question has been checked."""

    def __init__(self, quiz: Quiz, presented: list[Presented], root: Path | None) -> None:
        import ipywidgets as w

        self.quiz, self.root = quiz, root
        self.result: QuizResult | None = None
        self.cards = [QuestionCard(i, len(presented), p, self._checked) for i, p in enumerate(presented, 1)]
        title = w.HTML(f"<h3>Quiz: {html.escape(quiz.title)}</h3><p>{len(presented)} questions, pass mark "
                       f"{quiz.pass_mark * 100:g}%. Check each answer to see why it is right or wrong.</p>")
        self.summary = w.HTML()
        self.box = w.VBox([title, *(c.box for c in self.cards), self.summary])

    def _checked(self) -> None:
        if any(c.result is None for c in self.cards):
            return
        result = summarize(self.quiz, [c.result for c in self.cards if c.result is not None])
        self.result = result
        verdict = "Passed" if result.passed else "Not passed yet"
        lines = [f"<h4>{verdict}: {result.score:g} of {result.max_score:g} ({result.percent:.0f}%)</h4>"]
        if result.pending_points:
            lines.append(f"<p>{result.pending_points:g} more points are graded by your instructor.</p>")
        review = result.topics_to_review()
        if review:
            lines.append("<p>Topics to review: " + html.escape(", ".join(t for t, _ in review)) + "</p>")
        lines.append(self._record(result))
        self.summary.value = "".join(lines)

    def _record(self, result: QuizResult) -> str:
        if self.root is None:
            return "<p><small>Progress not recorded: no workbook folder found.</small></p>"
        from autograder.progress import record

        record(self.root, "quiz", self.quiz.id, passed=result.passed, score=result.score,
               max_score=result.max_score)
        return "<p><small>Recorded in your progress (see the start page).</small></p>"


def _root() -> Path | None:
    from autograder.errors import UsageError
    from autograder.paths import repo_root

    try:
        return repo_root()
    except UsageError:
        return None


def build_quiz(quiz: str | Path, *, learner: str | None = None, seed: int | None = None,
               root: Path | None = None) -> QuizView:
    """The widget without displaying it (tests drive it by setting values and clicking)."""
    root = root if root is not None else _root()
    loaded = load_quiz(resolve(quiz, root), schema_check=False)
    if loaded.summative and loaded.learner_copy:
        from autograder.errors import UsageError

        raise UsageError(f"{loaded.id} is a graded quiz: take it once in a terminal with `.venv/bin/autograder quiz take "
                         f"{loaded.id} --exam --ticket YOUR-TICKET-FILE` (the ticket your instructor gave you)")
    return QuizView(loaded, arrange(loaded, learner=learner, seed=seed), root)


def _text(quiz: Quiz) -> str:
    return (f"Quiz {quiz.id}: {quiz.title} ({len(quiz.questions)} questions). If no quiz shows here, widgets are "
            f"not available: take it in a terminal with `.venv/bin/autograder quiz take {quiz.id}`.")


class _Display:
    """The widget, with a short useful text in place of the widget's repr where widgets cannot render
    (headless runs, notebook viewers, a terminal)."""

    def __init__(self, view: QuizView) -> None:
        self.view = view

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        render = getattr(self.view.box, "_repr_mimebundle_", None)
        bundle = render(**kwargs) if callable(render) else None
        data = dict(bundle) if isinstance(bundle, dict) else {}
        data["text/plain"] = _text(self.view.quiz)
        return data


def show_quiz(quiz: str | Path, *, learner: str | None = None, seed: int | None = None) -> None:
    """Display the quiz QUIZ (an id such as "lesson03", or a path to a bank) in the notebook."""
    root = _root()
    loaded = load_quiz(resolve(quiz, root), schema_check=False)
    if loaded.summative and loaded.learner_copy:  # a class copy's graded quiz: no self-check here, by design
        print(f"{loaded.title} is a graded quiz: take it once in a terminal with "
              f"`make exam EXAM={loaded.id} TICKET=<your ticket file>` (.venv/bin/autograder quiz take {loaded.id} "
              "--exam --ticket <your ticket file>), with the ticket your instructor gave you; your instructor "
              "grades it.")
        return
    try:
        import ipywidgets  # noqa: F401 - only to learn whether it is installed
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        print(_text(load_quiz(resolve(quiz, root), schema_check=False)))
        return
    if get_ipython() is None:  # plain Python: widgets cannot render and nobody can click
        print(_text(load_quiz(resolve(quiz, root), schema_check=False)))
        return
    display(_Display(build_quiz(quiz, learner=learner, seed=seed, root=root)))
