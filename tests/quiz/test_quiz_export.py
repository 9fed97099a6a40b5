"""Exports an LMS can read: Moodle XML that parses, GIFT with every question and its escapes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from quiz_support import BANKS, REPO

from autograder.cli import main
from autograder.quiz.bank import bank_paths, load_quiz
from autograder.quiz.export import gift_escape, to_gift, to_moodle_xml


@pytest.mark.parametrize("path", bank_paths(REPO), ids=lambda p: p.stem)
def test_moodle_xml_parses_with_every_question(path: Path) -> None:
    quiz = load_quiz(path)
    text, _ = to_moodle_xml(quiz)
    root = ET.fromstring(text.encode())
    questions = [q for q in root.findall("question") if q.get("type") != "category"]
    assert [q.findtext("name/text") for q in questions] == [q.id for q in quiz.questions]
    for element, q in zip(questions, quiz.questions, strict=True):
        assert element.findtext("questiontext/text") == q.prompt
        assert element.findtext("generalfeedback/text") == q.explanation
        if q.type in ("single", "multiple"):
            fractions = [float(a.get("fraction")) for a in element.findall("answer")]
            assert sum(f for f in fractions if f > 0) == pytest.approx(100, abs=0.01)
            assert len(fractions) == len(q.options)


def test_moodle_types_and_fractions(sample) -> None:
    root = ET.fromstring(to_moodle_xml(sample)[0].encode())
    types = {q.findtext("name/text"): q.get("type") for q in root.findall("question")[1:]}
    assert types == {"pick-one": "multichoice", "pick-many": "multichoice", "yes-or-no": "truefalse",
                     "exact-number": "numerical", "near-number": "numerical", "in-range": "numerical",
                     "words": "shortanswer", "pattern": "essay", "exact-case": "shortanswer"}
    many = next(q for q in root.findall("question") if q.findtext("name/text") == "pick-many")
    assert [a.get("fraction") for a in many.findall("answer")] == ["50", "-50", "50", "-50"]
    in_range = next(q for q in root.findall("question") if q.findtext("name/text") == "in-range")
    assert (in_range.findtext("answer/text"), in_range.findtext("answer/tolerance")) == ("15", "5")


def test_gift_has_every_question_and_escapes_specials(sample) -> None:
    text, warnings = to_gift(sample)
    for q in sample.questions:
        assert f"::{q.id}::" in text
    assert "{#42:0 ####" in text and "{#10..20 ####" in text and "{FALSE####" in text
    assert "~%50%One" in text and "~%-50%Two" in text
    assert any("pattern" in w and "essay" in w for w in warnings)
    assert gift_escape("a = b {c} ~d #e: f\\") == "a \\= b \\{c\\} \\~d \\#e\\: f\\\\"


def test_gift_of_a_real_bank_has_balanced_braces() -> None:
    text, _ = to_gift(load_quiz(BANKS / "phase1.yaml"))
    unescaped = re.sub(r"\\.", "", text)
    assert unescaped.count("{") == unescaped.count("}") == 28


def test_export_cli_writes_a_file(workbook: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m.xml"
    assert main(["quiz", "export", "module01", "--format", "moodle", "-o", str(out)]) == 0
    assert len(ET.parse(out).getroot().findall("question")) == 51
    assert main(["quiz", "export", "lesson08", "--format", "gift"]) == 0
    captured = capsys.readouterr()
    assert "::l08-versioning::" in captured.out and "regex is not exported" in captured.err
