"""csv_cell: a CSV cell that a spreadsheet cannot read as a formula (learner-chosen file names end up in grades)."""

from __future__ import annotations

import csv
import io

import pytest

from mlinfra.base.output import csv_cell


@pytest.mark.parametrize("raw", ['=HYPERLINK("http://x","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
                                 "\t=1+1", "\r=1+1"])
def test_a_cell_that_starts_like_a_formula_gets_a_quote(raw: str) -> None:
    assert csv_cell(raw) == "'" + raw


@pytest.mark.parametrize("raw, shown", [("alice", "alice"), ("12.5", "12.5"), ("", ""), (None, ""), (3, "3"),
                                        ("a=b", "a=b"), (" =x", " =x")])
def test_other_cells_are_left_alone(raw, shown: str) -> None:
    assert csv_cell(raw) == shown


def test_a_written_row_reads_back_as_text() -> None:
    buf = io.StringIO()
    csv.writer(buf).writerow([csv_cell(v) for v in ("=1+1", "bob", "+x")])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == ["'=1+1", "bob", "'+x"]
