"""Who a gradebook row belongs to (red team 3, findings 2 and 3): a look-alike hand-in name never takes a
classmate's grade silently, and the folder-per-learner layout `assess --help` documents gives a row per learner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from autograder.assess import handin
from autograder.assess.handin import SUBMITTED_BY, pack_checks, submitted_by
from autograder.classbook import analysis
from autograder.classbook.identity import key, shown_id, skeleton, unplain
from autograder.classbook.sources import CONFLICT, load
from autograder.cli import main
from mlinfra.base.output import to_jsonable
from mlinfra.base.results import FAILED, PASSED, Check, Outcome

KELVIN = "\u212a"  # KELVIN SIGN: NFKC makes it a K, casefold a k


def _part(label: str, score: int, pack: str | None = None, named: str = "") -> Outcome:
    """One hand-in's part as `assess --pack ... --json` writes it: its label (the path below the packs' common
    folder) and the path it was assessed under in data.target, points per requirement in its checks, and the
    student its submission.json names (the "submitted by" info check, handin.pack_checks)."""
    checks = [Check(f"{n}. requirement {n}", PASSED if score >= 20 * n else FAILED, 20.0 if score >= 20 * n else 0.0,
                    20.0) for n in range(1, 7)]
    if named:
        checks.append(Check(SUBMITTED_BY, "info", message=named, where="submission.json"))
    target = {"kind": "pack", "pack": pack or f"subs/{label}", "label": label, "description": f"hand-in {label}"}
    return Outcome(f"hand-in {label}", checks, data={"target": target})


def _batch(path: Path, parts: list[Outcome]) -> Path:
    path.write_text(json.dumps(to_jsonable(Outcome("assess --pack", parts=parts))), encoding="utf-8")
    return path


def _report(tmp_path: Path, practical: Path, capsys, *extra: str) -> tuple[dict[str, list[str]], dict[str, list[str]], str]:
    out = tmp_path / "class"
    assert main(["class", "report", str(practical), "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    with (out / "class.csv").open(newline="", encoding="utf-8") as fh:
        rows = {r[0]: r for r in csv.reader(fh)}
    with (out / "canvas.csv").open(newline="", encoding="utf-8") as fh:
        canvas = {r[3]: r for r in list(csv.reader(fh))[2:]}
    return rows, canvas, printed + (out / "report.html").read_text(encoding="utf-8")


def test_the_folder_per_learner_layout_gives_one_row_per_learner(tmp_path: Path, capsys) -> None:
    # `assess --pack subs/*/practical.zip`: each hand-in is labelled by its path below subs/
    practical = _batch(tmp_path / "practical.json", [_part("ann/practical.zip", 120), _part("bob/practical.zip", 100),
                                                     _part("cy/practical.zip", 60)])
    assert {k: r.score for k, r in load(practical).results.items()} == {"ann": 120, "bob": 100, "cy": 60}
    rows, canvas, _ = _report(tmp_path, practical, capsys)
    assert [rows[s][1] for s in ("ann", "bob", "cy")] == ["120", "100", "60"] and "practical" not in rows
    assert [canvas[s][5] for s in ("ann", "bob", "cy")] == ["120", "100", "60"]
    # one hand-in: its label is its file name; the folder comes from the path it was assessed under
    one = _batch(tmp_path / "one.json", [_part("practical.zip", 80, pack="subs/dee/practical.zip")])
    assert list(load(one).results) == ["dee"]
    # `<id>-practical.zip` inside a folder is still named by its file, as `submit` names it
    named = _batch(tmp_path / "named.json", [_part("x/eve-practical.zip", 80), _part("x/fay-practical.zip", 90)])
    assert sorted(load(named).results) == ["eve", "fay"]


def test_two_hand_ins_for_one_learner_are_a_conflict_never_a_silent_overwrite(tmp_path: Path, capsys) -> None:
    for lookalike in (f"{KELVIN}im", "kim\u00a0", "kim\u200a", "KIM", "\uff4bim"):  # Kelvin, spaces, case, full-width
        for order in (1, -1):  # which one the shell globbed first must not matter
            parts = [_part("kim-practical.zip", 120), _part(f"{lookalike}-practical.zip", 80)][::order]
            practical = _batch(tmp_path / "practical.json", parts)
            loaded = load(practical)
            result = loaded.results["kim"]
            assert result.status == CONFLICT and len(result.conflicting) == 2, lookalike
            assert not analysis.scored(loaded) and "conflict" in analysis.NOT_SCORED, "not a 0 in the distribution"
            rows, canvas, shown = _report(tmp_path, practical, capsys)
            assert rows["kim"][1] == "" and canvas["kim"][5] == "", f"{lookalike!r}: neither grade is imported"
            assert "practical: conflict" in rows["kim"][-1]
            source = shown_id(f"{lookalike}-practical.zip")  # escaped: a look-alike reads as what it is
            for text in (rows["kim"][-1], shown):  # both sources named, and what to do
                assert "'kim-practical.zip'" in text and source in text and "rename or remove" in text
            assert "needs review before importing" in shown and source in shown.split("wrote")[0]


def test_an_id_only_alike_to_a_roster_id_is_flagged_and_not_matched_silently(tmp_path: Path, capsys) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_text("student,email\nkim,kim@example.org\n", encoding="utf-8")
    # alone (kim handed nothing in): a Kelvin-sign "Kim" is matched to kim only with a flag a person must clear
    practical = _batch(tmp_path / "practical.json", [_part(f"{KELVIN}im-practical.zip", 80)])
    rows, _, shown = _report(tmp_path, practical, capsys, "--roster", str(roster))
    assert "practical: flagged for review" in rows["kim"][-1] and "U+212A KELVIN SIGN" in shown
    # a zero-width space or a Cyrillic letter: not kim's row, and said to look like kim
    for lookalike in ("ki\u200bm", "\u043aim"):
        practical = _batch(tmp_path / "practical.json", [_part(f"{lookalike}-practical.zip", 80)])
        rows, canvas, shown = _report(tmp_path, practical, capsys, "--roster", str(roster))
        assert rows["kim"][1] == "" and canvas["kim"][5] == "", f"{lookalike!r} is not kim"
        assert rows[lookalike][1] == "80" and "flagged for review" in rows[lookalike][-1]
        assert "looks like the roster's 'kim'" in shown.split("wrote")[0]


def test_identity_rules() -> None:
    assert key(f" {KELVIN}IM ") == key("kim") == "kim" and key("ki\u200bm") != "kim"
    assert skeleton("ki\u200bm") == skeleton("\u043aim") == skeleton("kím") == "kim"
    assert unplain("kim") == unplain("a.b_c-d@e") == "" and unplain("'=HYPERLINK(1)")
    assert "U+00A0 NO-BREAK SPACE" in unplain("kim\u00a0") and "normalisation" in unplain(f"{KELVIN}im")


def test_submission_json_names_the_student_and_is_checked_against_the_name(tmp_path: Path, capsys) -> None:
    practical = _batch(tmp_path / "practical.json", [_part("kim-practical.zip", 120, named="bob"),
                                                     _part("ann-practical.zip", 100, named="ann"),
                                                     _part("practical.zip", 100, pack="practical.zip", named="cy")])
    results = load(practical).results
    assert not results["ann"].flags, "the name and submission.json agree"
    assert results["cy"].score == 100, "no file or folder name to go by: filed under the student it names"
    (flag,) = results["kim"].flags
    assert "submission.json names, 'bob'" in flag and "'kim-practical.zip'" in flag
    rows, _, shown = _report(tmp_path, practical, capsys)
    assert rows["kim"][1] == "120" and "flagged for review" in rows["kim"][-1] and "bob" not in rows
    assert "names, 'bob'" in shown.split("wrote")[0]
    # assess writes the check from the hand-in's submission.json, as named (control characters shown)
    (tmp_path / "submission.json").write_text(json.dumps({"student": "k\u212aim\n"}), encoding="utf-8")
    assert submitted_by(tmp_path) == "k\u212aim\\n"
    unpacked = handin.Unpacked(tmp_path, None, None, [], None)
    assert [c.message for c in pack_checks(unpacked) if c.name == SUBMITTED_BY] == ["k\u212aim\\n"]
    (tmp_path / "submission.json").write_text("{}", encoding="utf-8")
    assert not [c for c in pack_checks(unpacked) if c.name == SUBMITTED_BY]
