"""Export a bank for an LMS: Moodle XML (the richer format) or GIFT (plain text, Moodle and others).

Both carry prompts as Markdown, the explanation as general feedback and the points as the default grade.
Multiple select uses Moodle's fractions: each correct option +100/k %, each wrong one -100/(n-k) %, which is
the partial credit the workbook itself gives. Regex short answers have no core Moodle equivalent: the accepted
answers are exported, and a question with only a regex becomes an essay question for manual grading.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from autograder.quiz.bank import Question, Quiz
from autograder.quiz.grading import correct_options

FORMATS = ("moodle", "gift")


def _fraction(value: float) -> str:
    return f"{value:.5f}".rstrip("0").rstrip(".")


def _choice_fractions(q: Question) -> dict[str, float]:
    correct = correct_options(q)
    if q.type == "single":
        return {o: 100.0 if o in correct else 0.0 for o in q.options}
    wrong = len(q.options) - len(correct)
    return {o: 100.0 / len(correct) if o in correct else (-100.0 / wrong if wrong else 0.0) for o in q.options}


def _warnings(q: Question) -> list[str]:
    if q.type == "short" and q.regex:
        if q.accept:
            return [f"question '{q.id}': its regex is not exported (Moodle has none); only its accepted answers are"]
        return [f"question '{q.id}': exported as an essay question (a regex cannot be expressed), grade it by hand"]
    return []


# --------------------------------------------------------------------------------------------- Moodle XML


def _text(parent: ET.Element, tag: str, text: str, fmt: str | None = "markdown") -> ET.Element:
    el = ET.SubElement(parent, tag, {"format": fmt} if fmt else {})
    ET.SubElement(el, "text").text = text
    return el


def _moodle_question(root: ET.Element, q: Question) -> None:
    qtype = {"single": "multichoice", "multiple": "multichoice", "truefalse": "truefalse",
             "numeric": "numerical", "short": "shortanswer"}[q.type]
    if q.type == "short" and q.regex and not q.accept:
        qtype = "essay"
    el = ET.SubElement(root, "question", {"type": qtype})
    name = ET.SubElement(el, "name")
    ET.SubElement(name, "text").text = q.id
    _text(el, "questiontext", q.prompt)
    _text(el, "generalfeedback", q.explanation)
    ET.SubElement(el, "defaultgrade").text = f"{q.points:g}"
    ET.SubElement(el, "penalty").text = "0"
    ET.SubElement(el, "hidden").text = "0"
    tags = ET.SubElement(el, "tags")
    ET.SubElement(ET.SubElement(tags, "tag"), "text").text = q.topic
    if q.type in ("single", "multiple"):
        ET.SubElement(el, "single").text = "true" if q.type == "single" else "false"
        ET.SubElement(el, "shuffleanswers").text = "1"
        ET.SubElement(el, "answernumbering").text = "abc"
        for option, fraction in _choice_fractions(q).items():
            answer = _text(el, "answer", q.options[option], "markdown")
            answer.set("fraction", _fraction(fraction))
    elif q.type == "truefalse":
        for value in (True, False):
            answer = _text(el, "answer", str(value).lower(), "moodle_auto_format")
            answer.set("fraction", "100" if value == bool(q.answer) else "0")
    elif q.type == "numeric":
        low, high = q.bounds
        answer = _text(el, "answer", f"{(low + high) / 2:g}", None)
        answer.set("fraction", "100")
        ET.SubElement(answer, "tolerance").text = f"{(high - low) / 2:g}"
    elif qtype == "shortanswer":
        ET.SubElement(el, "usecase").text = "1" if q.case_sensitive else "0"
        for accepted in q.accept:
            answer = _text(el, "answer", accepted, "moodle_auto_format")
            answer.set("fraction", "100")
    else:  # essay
        ET.SubElement(el, "responseformat").text = "plain"
        ET.SubElement(el, "responsefieldlines").text = "3"
        _text(el, "graderinfo", f"Accept answers matching the regular expression {q.regex}", "markdown")


def to_moodle_xml(quiz: Quiz) -> tuple[str, list[str]]:
    root = ET.Element("quiz")
    category = ET.SubElement(root, "question", {"type": "category"})
    ET.SubElement(ET.SubElement(category, "category"), "text").text = f"$course$/{quiz.title}"
    warnings: list[str] = []
    for q in quiz.questions:
        _moodle_question(root, q)
        warnings += _warnings(q)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n", warnings


# --------------------------------------------------------------------------------------------- GIFT


def gift_escape(text: str) -> str:
    """GIFT's special characters (~ = # { } :) and backslash need a backslash; newlines become \\n."""
    escaped = re.sub(r"([\\~=#{}:])", r"\\\1", text)
    return escaped.replace("\n", "\\n")


def _gift_question(q: Question) -> str:
    head = f"// topic: {q.topic}, points: {q.points:g}\n::{gift_escape(q.id)}::[markdown]{gift_escape(q.prompt)} "
    feedback = f"####{gift_escape(q.explanation)}"
    if q.type in ("single", "multiple"):
        lines = []
        for option, fraction in _choice_fractions(q).items():
            text = gift_escape(q.options[option])
            if q.type == "single":
                lines.append(("=" if fraction > 0 else "~") + text)
            else:
                lines.append(f"~%{_fraction(fraction)}%{text}")
        body = "{\n\t" + "\n\t".join(lines) + f"\n\t{feedback}\n}}"
    elif q.type == "truefalse":
        body = f"{{{'TRUE' if q.answer else 'FALSE'}{feedback}}}"
    elif q.type == "numeric":
        low, high = q.bounds
        body = (f"{{#{low:g}..{high:g} {feedback}}}" if q.range is not None
                else f"{{#{q.answer:g}:{q.tolerance:g} {feedback}}}")
    elif q.accept:
        body = "{" + " ".join("=" + gift_escape(a) for a in q.accept) + f" {feedback}}}"
    else:  # a regex alone: an essay question, graded by hand
        body = f"{{{feedback}}}"
    return head + body


def to_gift(quiz: Quiz) -> tuple[str, list[str]]:
    warnings: list[str] = []
    parts = [f"// {quiz.title} ({quiz.id}), pass mark {quiz.pass_mark * 100:g}%", f"$CATEGORY: {quiz.title}"]
    for q in quiz.questions:
        parts.append(_gift_question(q))
        warnings += _warnings(q)
    return "\n\n".join(parts) + "\n", warnings


def export(quiz: Quiz, fmt: str) -> tuple[str, list[str]]:
    """The exported text and warnings about what the format could not carry."""
    if quiz.learner_copy:
        from autograder.errors import UsageError

        raise UsageError(f"{quiz.path} is a learner copy without a key: export the source bank in quizzes/")
    return to_moodle_xml(quiz) if fmt == "moodle" else to_gift(quiz)
