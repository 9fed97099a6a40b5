"""Red team 3's findings against `assess --pack` turned into tests (tests/assess/open_findings/rt3/): the README's
sections need their own headings and real text (finding 9 in issue #22, their 8), and learner text quoted in the
Markdown report is inert (finding 10, their 9)."""

from __future__ import annotations

from pathlib import Path

from autograder.assess import handin
from mlinfra.base.results import FAILED

SECTIONS = {  # an honest README: a line of real text under each heading
    "How to run": "uvicorn app:app --host 127.0.0.1 --port 8000 (from the service folder)",
    "API": "POST /predict with the image in the field file; GET /health answers ok",
    "Latency": "p50 3.1 ms and p95 4.8 ms at 28x28, measured with autograder assess",
    "Limitations": "Digits only; no batching across requests; no authentication",
}


def readme(sections: dict[str, str]) -> str:
    return "# My digit service\n\n" + "".join(f"## {title}\n\n{body}\n\n" for title, body in sections.items())


def points(text: str) -> list[float]:
    return [c.points for c in handin.check_readme(text)]


# --- 9. readme-sections-without-content ---------------------------------------------------------------------------


def test_one_heading_is_one_section_however_many_it_names() -> None:
    # the red team's README: 20/20 before
    assert points("# Run the API: latency and limitations\n1 ms\n") == [0, 0, 0, 0]
    # with real text under it the heading is a section, one: the other three are said to need their own heading
    body = "Start it with uvicorn app:app, then POST /predict an image; p95 was 4 ms; digits only.\n"
    checks = handin.check_readme(f"# Run the API: latency and limitations\n\n{body}")
    assert sum(c.points for c in checks) == handin.SECTION_POINTS
    assert sum("already counts as another section" in c.message for c in checks) == 3
    # two headings that each name two sections: each serves the section nothing else can (matched, not greedy)
    both = readme({"Running the API": SECTIONS["API"], "How to start it": SECTIONS["How to run"],
                   "Latency": SECTIONS["Latency"], "Limitations": SECTIONS["Limitations"]})
    assert points(both) == [handin.SECTION_POINTS] * 4


def test_a_section_needs_real_text_under_its_heading() -> None:
    assert points(readme(SECTIONS)) == [handin.SECTION_POINTS] * 4
    thin = readme({**SECTIONS, "How to run": "uvicorn app:app", "Latency": "1 ms"})
    failed = {c.name: c.message for c in handin.check_readme(thin) if c.status == FAILED}
    assert set(failed) == {"README: how to run", "README: latency measured"}
    for message in failed.values():
        assert "holds too little" in message and handin.BODY_RULE in message
    # invisible padding is no text
    padded = readme({**SECTIONS, "Limitations": "none\u200b\u200b\u200b\u200b\u200b" + "\u2800" * 30})
    assert points(padded)[3] == 0


def test_the_red_teams_fenced_headings_do_not_score() -> None:
    fenced = "Nothing here yet.\n\n```\n# How to run\nx\n# API\nx\n# Latency\n1 ms\n# Limitations\nx\n```\n"
    assert points(fenced) == [0, 0, 0, 0]


def test_the_docs_state_the_rule() -> None:
    root = Path(__file__).resolve().parents[2]
    for doc in ("docs/instructor-guide.md", "docs/serving.md", "labs/lab07-api/lab07-api.ipynb"):
        text = " ".join((root / doc).read_text(encoding="utf-8").split())
        assert f"{handin.MIN_BODY_WORDS} words" in text and f"{handin.MIN_BODY_CHARS} characters" in text, doc


# --- 10. report-markdown-html-injection ---------------------------------------------------------------------------

BEACON = "<img src=http://192.0.2.2:47123/readme>"
LEARNER_TEXTS = (BEACON, "[Score 120/120](http://192.0.2.2/x)", "![badge](http://192.0.2.2/b.png)",
                 "<a href=http://192.0.2.2>here</a>", "`code` **bold** ~~gone~~ a|b \\<b>", "&lt;i&gt;")


def test_learner_text_in_the_markdown_report_is_inert(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    from autograder.assess import probes, report

    def rendered(quoted: str) -> tuple[str, str]:
        """The report of a hand-in quoting `quoted` in a README heading, model card, demo and file name, an
        answer; and that report as a previewer renders it (CommonMark, tables, strikethrough)."""
        text = readme({**SECTIONS, f"How to run {quoted}": SECTIONS["How to run"], "Limitations": "x"})
        text = text.replace("## How to run\n", "## Usage notes\n")  # the quoted heading is the run section
        card = {"name": quoted, "architecture": quoted, "input_size": 28}
        unpacked = handin.Unpacked(tmp_path, text, card, [f"demo/{quoted}.md"], None)
        result = report.Assessment({"description": f"hand-in {quoted}-practical.zip"},
                                   probes.never_came_up(f"answered {quoted}"), handin=handin.pack_checks(unpacked))
        written = report.markdown(result, tmp_path / "r.md").read_text()
        return written, MarkdownIt("commonmark").enable("table").enable("strikethrough").render(written)

    _, plain = rendered("plain words")
    for quoted in LEARNER_TEXTS:
        written, page = rendered(quoted)
        assert quoted not in written, quoted
        for markup in ("<img", "<a ", "<code>", "<strong>", "<em>", "<s>", "<b>", "<i>", "<td>"):
            assert page.count(markup) == plain.count(markup), (quoted, markup)  # the report's own markup only
        # shown as written: the rendered page's text holds the learner's characters
        assert quoted.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page, quoted


def test_one_helper_escapes_every_quoted_text() -> None:
    from autograder.assess import report

    assert report.md_text(BEACON) == "&lt;img src=http://192.0.2.2:47123/readme&gt;"
    assert report.md_text("[a](b) \\x") == "\\[a\\](b) \\\\x" and report.cell_text("a|b") == "a\\|b"
    assert report.md_text("line\nnext\x1b") == "line\\\\nnext\\\\x1b"
