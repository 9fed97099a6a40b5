"""Hand-ins that cannot crash `assess --pack`: every malformed archive or folder is the student's outcome
("unreadable", one line naming the entry at fault, exit 1), never "a bug in the tool" (exit 2); a batch of packs
with a malformed one scores all the others."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from autograder.assess import handin
from autograder.cli import main

README = ("# s\n## How to run\nuvicorn app:app --host 127.0.0.1 --port 8000\n## API\nPOST /predict with the image "
          "in the field file\n## Latency\np95 4 ms measured with autograder assess\n## Limitations\ndigits only, no "
          "batching, no authentication\n")  # a line of real text per section (handin.BODY_RULE)


def zipped(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def lying_sizes(path: Path) -> Path:
    """An archive whose entry says it holds 10 bytes and holds 4000 (both headers patched)."""
    data = b"x" * 4000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("service/app.py", data)
    raw = bytearray(buf.getvalue())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        at = raw.find(sig)
        raw[at + offset:at + offset + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def symlink_entry(path: Path) -> Path:
    info = zipfile.ZipInfo("README.md")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zipped(path, [(info, b"/etc/passwd"), ("model_card.json", b"{}")])


def huge_entry(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:  # 6 MB of zeros: a few KB compressed
        zf.writestr("service/data.bin", b"\0" * (handin.MAX_FILE_BYTES + 2**20))
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "lying sizes": (lying_sizes, "service/app.py"),
    "deep nesting": (lambda p: zipped(p, [("a/" * 40 + "x.py", b"")]), "a/a/a/"),
    "a file where a folder is expected": (
        lambda p: zipped(p, [("service", b"not a folder"), ("service/app.py", b"")]), "service/app.py"),
    "a folder where a file is": (
        lambda p: zipped(p, [("service/app.py", b""), ("service", b"")]), "'service'"),
    "too many entries": (lambda p: zipped(p, [(f"f{i}.txt", b"") for i in range(handin.MAX_ENTRIES + 5)]), ""),
    "too large": (huge_entry, "service/data.bin"),
    "not a zip": (lambda p: (p.write_bytes(b"PK\x03\x04 truncated garbage"), p)[1], ""),
    "an empty file": (lambda p: (p.write_bytes(b""), p)[1], ""),
}


def assess_pack(tmp_path: Path, *packs: Path) -> tuple[int, dict]:
    out = tmp_path / "result.json"
    code = main(["assess", "--pack", *map(str, packs), "--requests", "20", "--no-breakdown", "--json", str(out)])
    return code, json.loads(out.read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_pack_is_the_students_outcome(case: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    make, entry = CASES[case]
    pack = make(tmp_path / "mallory-practical.zip")
    code, result = assess_pack(tmp_path, pack)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "bug in the tool" not in err and "Traceback" not in err
    assert result["status"] == "unreadable" and result["max_score"] == 120 and result["score"] == 0
    verdict = result["criteria"][0]["verdict"]
    assert "mallory-practical.zip" in verdict and entry in verdict, verdict
    assert len(verdict.splitlines()) == 1


def test_links_and_escaping_entries_are_never_followed_or_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    pack = zipped(tmp_path / "p.zip", [("../outside.txt", b"escaped"), ("/etc/x", b"abs"),
                                        ("README.md", README.encode())])
    into = tmp_path / "into"
    unpacked = handin.unpack(pack, into)
    assert not outside.exists() and unpacked.readme == README
    assert [s.split(" ")[0] for s in unpacked.skipped] == ["'../outside.txt'", "'/etc/x'"]
    linked = handin.unpack(symlink_entry(tmp_path / "l.zip"), tmp_path / "into2")
    assert linked.readme is None and not any(p.is_symlink() for p in (tmp_path / "into2").rglob("*"))
    assert "a link or special file" in linked.skipped[0]


def test_a_folder_pack_is_copied_without_following_links(tmp_path: Path) -> None:
    folder = tmp_path / "handin"
    (folder / "service").mkdir(parents=True)
    (folder / "service" / "app.py").write_text("app = None\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("instructor only")
    os.symlink(secret, folder / "README.md")
    os.symlink(tmp_path, folder / "demo")
    (folder / "model_card.json").write_text("[" * 100_000 + "]" * 100_000)  # deep JSON nesting
    unpacked = handin.unpack(folder, tmp_path / "copy")
    assert unpacked.readme is None and unpacked.card is None and unpacked.demo == []
    assert unpacked.app == tmp_path / "copy" / "service" / "app.py"
    assert not any(p.is_symlink() for p in (tmp_path / "copy").rglob("*"))
    assert not any("instructor only" in p.read_text(errors="replace") for p in (tmp_path / "copy").rglob("*")
                   if p.is_file())


def test_a_batch_with_malformed_packs_scores_the_others(tmp_path: Path) -> None:
    """Two unreadable packs and one readable one (no service: scored without starting anything)."""
    bad = lying_sizes(tmp_path / "bad-practical.zip")
    deep = CASES["deep nesting"][0](tmp_path / "deep-practical.zip")
    good = zipped(tmp_path / "good-practical.zip", [("README.md", README.encode()), ("model_card.json", b"{}")])
    code, result = assess_pack(tmp_path, bad, good, deep)
    assert code == 1
    parts = {p["subject"].split(" ")[1]: p for p in result["parts"]}
    assert [parts[n]["status"] for n in ("bad-practical.zip", "good-practical.zip", "deep-practical.zip")] == \
        ["unreadable", "flagged", "unreadable"]  # flagged: no submission.json, scored all the same
    readme_points = sum(c["points"] for c in parts["good-practical.zip"]["checks"] if c["name"].startswith("README"))
    assert readme_points == 20
