"""The practical's hand-in: `autograder submit practical` packs it, `assess --pack` checks the README's sections."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.assess.handin import SECTION_POINTS, check_readme
from autograder.cli import main

ROOT = Path(__file__).parents[2]
SECTIONS = {
    "how to run": "## How to run\n\n```\nuvicorn app:app --host 127.0.0.1 --port 8000\n```\n",
    "API": "## API\n\n`POST /predict` with the field `file`; `GET /health`.\n",
    "latency measured": "## Latency\n\nMeasured with autograder assess: p50 3.1 ms, p95 4.8 ms at 28x28.\n",
    "limitations": "## Limitations\n\nDigits only; no batching across requests; no authentication.\n",
}


def readme(without: str | None = None) -> str:
    return "# My digit service\n\n" + "\n".join(text for name, text in SECTIONS.items() if name != without)


def scored(checks: list) -> dict[str, float]:
    return {c.name.removeprefix("README: "): c.points for c in checks}


def test_a_complete_readme_scores_every_section() -> None:
    checks = check_readme(readme())
    assert scored(checks) == dict.fromkeys(SECTIONS, SECTION_POINTS)
    assert all(c.status == "passed" and c.max_points == SECTION_POINTS for c in checks)


@pytest.mark.parametrize("missing", list(SECTIONS))
def test_a_readme_missing_a_section_loses_exactly_that(missing: str) -> None:
    checks = check_readme(readme(without=missing))
    points = scored(checks)
    assert points.pop(missing) == 0
    assert points == dict.fromkeys(set(SECTIONS) - {missing}, SECTION_POINTS)
    (failed,) = [c for c in checks if c.status == "failed"]
    assert "add a" in failed.message and failed.where == "README.md"


def test_latency_needs_a_measured_figure_and_headings_need_a_body() -> None:
    vague = readme().replace("p50 3.1 ms, p95 4.8 ms at 28x28", "it is fast")
    (failed,) = [c for c in check_readme(vague) if c.status == "failed"]
    assert failed.name == "README: latency measured" and "no figure in ms" in failed.message
    empty = readme().replace("Digits only; no batching across requests; no authentication.", "")
    (failed,) = [c for c in check_readme(empty) if c.status == "failed"]
    assert failed.name == "README: limitations" and "is empty" in failed.message
    assert all(c.points == 0 for c in check_readme(None))


def practical_folder(tmp_path: Path, readme_text: str) -> Path:
    folder = tmp_path / "practical"
    folder.mkdir()
    shutil.copy(ROOT / "solutions" / "lab07-api" / "app.py", folder / "app.py")
    (folder / "README.md").write_text(readme_text)
    (folder / "model_card.json").write_text(json.dumps({"name": "tiny-10", "architecture": "tiny-cnn",
                                                        "input_size": 28}))
    (folder / "demo.md").write_text("$ curl -F file=@seven.png http://127.0.0.1:8000/predict\n{...}\n")
    (folder / "weights.pt").write_bytes(b"\0" * 100)  # weights stay home
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    return folder


def test_submit_practical_packs_service_card_readme_and_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = practical_folder(tmp_path, readme())
    code = main(["submit", "practical", "--folder", str(folder), "--student", "alice", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "alice-practical.zip") as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("submission.json"))
    assert names == {"service/app.py", "README.md", "model_card.json", "demo/demo.md", "submission.json"}
    assert manifest["student"] == "alice" and manifest["lab"] == "practical" and manifest["demo"] is True
    out = capsys.readouterr().out
    assert "left out weights.pt" in out and "assess --pack" in out


def test_submit_practical_without_a_readme_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = practical_folder(tmp_path, readme())
    (folder / "README.md").unlink()
    assert main(["submit", "practical", "--folder", str(folder), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "README.md not found" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_assess_pack_scores_the_service_and_the_readme(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One real run: the pack's service scored like --app; the README without Limitations loses exactly 5."""
    monkeypatch.setenv("MLINFRA_MODEL_DIR", str(tiny_model))
    folder = practical_folder(tmp_path, readme(without="limitations"))
    assert main(["submit", "practical", "--folder", str(folder), "--student", "bob", "--out", str(tmp_path)]) == 0
    out = tmp_path / "result.json"
    report = tmp_path / "bob.md"
    code = main(["assess", "--pack", str(tmp_path / "bob-practical.zip"), "--requests", "20", "--no-breakdown",
                 "--json", str(out), "--report", str(report)])
    result = json.loads(out.read_text())
    assert code == 1 and result["max_score"] == 120
    by_name = {c["name"]: c for c in result["checks"]}
    assert by_name["README: limitations"]["points"] == 0
    assert all(by_name[f"README: {s}"]["points"] == SECTION_POINTS for s in SECTIONS if s != "limitations")
    failed = [c["number"] for c in result["criteria"] if not c["passed"]]
    assert failed in ([], [4]), failed  # latency is wall time: never asserted
    if not failed:
        assert result["score"] == 120 - SECTION_POINTS
    assert by_name["demo"]["message"] == "demo/demo.md"
    assert "## Hand-in" in report.read_text()
