"""The class copy's leak check by normalised tokens (autograder/classcopy.py, autograder/fingerprints.py).

One class copy is built and planted with: the leaks the course shipped at 2876a8f (each found by the new check
and missed by the check of that commit, kept below as `_line_check`), the same solution in every spelling a
Python source or a notebook can hold, and the language's idioms, which must stay silent.
"""

from __future__ import annotations

import base64
import codecs
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from autograder.classcopy import find_class_copy_leaks
from autograder.fingerprints import Finder, file_streams, lex_python, words
from autograder.generate import student_dist
from autograder.nbgrader_course import BEGIN_SOLUTION, END_SOLUTION

ROOT = Path(__file__).resolve().parent.parent
LESSON_23 = "modules/02-mlops-and-tooling/03-pytorch-core-concepts.ipynb"
LESSON_24 = "modules/02-mlops-and-tooling/04-configuration-driven-development.ipynb"
LESSON_17 = "modules/01-foundations-of-ml-infrastructure/07-docker-basics.ipynb"

# --------------------------------------------------------------------- the leaks the course shipped at 2876a8f
# mlinfra/torchserve_local.py: all ten settings of lab05's config.properties, inside f-strings.
OLD_CONFIG_PROPERTIES = '''

def config_properties(dep: Deployment) -> str:
    p = dep.ports
    return "\\n".join(
        [
            "# Written by `python -m mlinfra.torchserve_local start`. Every listener on 127.0.0.1:",
            "# nothing here is meant to be reachable from another machine.",
            f"inference_address=http://127.0.0.1:{p.inference}",
            f"management_address=http://127.0.0.1:{p.management}",
            f"metrics_address=http://127.0.0.1:{p.metrics}",
            "grpc_inference_address=127.0.0.1",
            f"grpc_inference_port={p.grpc_inference}",
            "grpc_management_address=127.0.0.1",
            f"grpc_management_port={p.grpc_management}",
            "# Token authorisation is on by default (requests without a key get 400). Off for LOCAL work",
            "# only; any deployment others can reach keeps it on and sends `Authorization: Bearer <key>`.",
            "disable_token_authorization=true",
            "# One worker: two would fight over the two cores and double the memory.",
            "default_workers_per_model=1",
            "# The course refuses uploads over 10 MB with a 413 saying why. The front end's own 413 has an",
            "# empty body, so the handler enforces 10 MB; this larger limit is a backstop for huge uploads.",
            "max_request_size=33554432",
            f"model_store={dep.state / 'model-store'}",
            "",
        ]
    )
'''
# labs/phase1-lab3-config-driven/experiment.py: lab 1.2's train_one_epoch, in lab 1.3's starter.
OLD_TRAIN_AND_EVALUATE = '''

def train_and_evaluate(resolved, log):
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from mlinfra.data import load_dataset
    from mlinfra.models import build_model

    training = resolved["training"]
    splits = load_dataset(resolved["data"]["source"], root=DATA_ROOT)
    log(f"data: {splits.info.detail}")
    model = build_model(resolved["model"]["name"])
    optimizer = torch.optim.Adam(model.parameters(), lr=training["lr"])
    loss_fn = nn.CrossEntropyLoss()
    train_loader = DataLoader(splits.train, batch_size=training["batch_size"], shuffle=True,
                              generator=torch.Generator().manual_seed(training["seed"]))
    x_val, y_val = splits.val.tensors
    history = []
    for epoch in range(1, training["epochs"] + 1):
        model.train()
        total = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = loss_fn(logits, y_val).item()
            val_accuracy = (logits.argmax(dim=1) == y_val).double().mean().item()
        history.append({"epoch": epoch, "train_loss": total / len(splits.train), "val_loss": val_loss,
                        "val_accuracy": val_accuracy})
    return model, history
'''
# lesson 2.3: DigitNet, the shape of lab 1.2's SmallCNN.
OLD_DIGITNET = '''from torch import nn


class DigitNet(nn.Module):
    def __init__(self, classes: int = 10, dropout: float = 0.2):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 28 -> 14
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 14 -> 7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(16 * 7 * 7, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
'''
# mlinfra/models.py: the course's cnn written out layer by layer, SmallCNN's two blocks first.
OLD_CNN_LISTING = '''

def old_cnn(in_channels, num_classes):
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(64 * 9, num_classes),
    )
'''
# lesson 1.7: the example Dockerfile's last lines, lab06's USER ... CMD.
OLD_DOCKERFILE_TAIL = '''DOCKERFILE = """\\
RUN useradd --create-home --uid 10001 appuser
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \\
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
CMD ["uvicorn", "mlinfra.service:app", "--host", "0.0.0.0", "--port", "8000"]
"""
'''
# The language's idioms: each is in some solution region, and the library and lessons must be free to use them.
IDIOMS = '''
import tempfile
from pathlib import Path


def save(path: Path, model, optimizer, value) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number")
    model.eval()
    with torch.no_grad():
        logits = model(x)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    fig, ax = plt.subplots(figsize=(5, 5))
    fig.tight_layout()
    for item in overrides:
        pass
    return sorted(p.name for p in base.iterdir())
'''


def _line_check(root: Path, copy: Path) -> list[str]:
    """The leak check of 2876a8f (whole stripped lines), kept to show what the token check adds."""

    def texts(path: Path) -> list[str]:
        if path.suffix == ".ipynb":
            try:
                return ["".join(c.get("source", "")) for c in json.loads(path.read_text()).get("cells", [])]
            except (OSError, ValueError, UnicodeDecodeError):
                return []
        try:
            return [path.read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError):
            return []

    def distinctive(line: str) -> bool:
        return len(line) >= 12 and not line.startswith("#") and any(c.isalpha() for c in line)

    secrets = {}
    for lab_dir in sorted((root / "solutions").iterdir()):
        inside, hidden, outside = set(), set(), set()
        for path in sorted(p for p in lab_dir.rglob("*") if p.is_file()):
            for text in texts(path):
                mode = None
                for line in text.splitlines():
                    s = line.strip()
                    if s.endswith(BEGIN_SOLUTION):
                        mode = "s"
                    elif s.endswith("### BEGIN HIDDEN TESTS"):
                        mode = "h"
                    elif s.endswith((END_SOLUTION, "### END HIDDEN TESTS")):
                        mode = None
                    else:
                        {"s": inside, "h": hidden, None: outside}[mode].add(s)
        secrets[lab_dir.name] = ({x for x in inside - outside if distinctive(x)},
                                 {x for x in hidden - outside if distinctive(x)})
    long_hidden = {x for _, h in secrets.values() for x in h if len(x) >= 25}
    problems = []
    for path in sorted(p for p in copy.rglob("*") if p.is_file()):
        rel = path.relative_to(copy)
        if rel.parts[0] in (".git", "quizzes"):
            continue
        lines = {ln.strip() for text in texts(path) for ln in text.splitlines()}
        problems += [f"{rel}: hidden" for _ in lines & long_hidden]
        own = rel.parts[1] if rel.parts[0] == "labs" and len(rel.parts) > 2 else None
        for lab, (solution, hidden) in secrets.items():
            found = lines & (solution | hidden)
            if lab == own:
                problems += [f"{rel}: own" for _ in found]
            elif len([x for x in found if len(x) >= 25]) >= 4:
                problems.append(f"{rel}: lines of {lab}")
    return problems


# ------------------------------------------------------------------------------------- the same, spelt anyhow


def _region(rel: str, after: str) -> str:
    """The first solution region after the line holding `after` in solutions/<rel>, markers excluded."""
    text = (ROOT / "solutions" / rel).read_text()
    start = text.index(BEGIN_SOLUTION, text.index(after))
    body = text[text.index("\n", start) + 1: text.index(END_SOLUTION, start)]
    return "\n".join(line for line in body.splitlines() if line.strip())


def _spellings(code: str) -> dict[str, bytes]:
    """New files for the class copy, each holding `code` (lab 1.2's train_one_epoch) in another spelling."""
    escaped = "".join(f"\\x{ord(c):02x}" for c in code)
    chunks = [code[i: i + 7] for i in range(0, len(code), 7)]
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in code)
    cell = {"cell_type": "code", "execution_count": 1, "id": "x", "metadata": {"note": code},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": code}], "source": "print(1)"}
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return {
        "modules/spelt/escapes.py": f'CODE = "{escaped}"\n'.encode(),
        "modules/spelt/adjacent.py": ("CODE = (\n" + "".join(f"    {c!r}\n" for c in chunks) + ")\n").encode(),
        "modules/spelt/base64.py": f'BLOB = "{base64.b64encode(code.encode()).decode()}"\n'.encode(),
        "modules/spelt/zlib.py": f'BLOB = "{base64.b64encode(zlib.compress(code.encode())).decode()}"\n'.encode(),
        "modules/spelt/hex.py": f'BLOB = bytes.fromhex("{code.encode().hex()}")\n'.encode(),
        "modules/spelt/codes.py": f"CODES = {[ord(c) for c in code]}\n".encode(),
        "modules/spelt/comments.py": "".join(f"# {line}\n" for line in code.splitlines()).encode(),
        "modules/spelt/utf7.py": f'# -*- coding: utf-7 -*-\nCODE = """{code}"""\n'.encode("utf-7"),
        "modules/spelt/fullwidth.md": f"```\n{wide}\n```\n".encode(),
        "modules/spelt/unicode.json": ('{"c": "' + "".join(f"\\u{ord(c):04x}" for c in code) + '"}').encode(),
        "modules/spelt/outputs.ipynb": json.dumps(notebook).encode(),
        "modules/spelt/data/hidden.txt": code.encode(),  # a folder name the lab copier skips is no hiding place
        "modules/spelt/rot13.py": f"CODE = {codecs.encode(code, 'rot13')!r}\n".encode(),
        "modules/spelt/reversed.py": f"CODE = {code[::-1]!r}[::-1]\n".encode(),
        "modules/spelt/twice-escaped.py": f'CODE = "{escaped.replace(chr(92), chr(92) * 2)}"\n'.encode(),
        "modules/spelt/blob.md": f"the answer: {base64.b64encode(code.encode()).decode()}\n".encode(),
    }


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[str]]:
    """(a class copy with every leak above planted, the new check's findings, the old check's findings)."""
    copy = tmp_path_factory.mktemp("planted") / "copy"
    student_dist(ROOT, copy)

    def append(rel: str, text: str) -> None:
        with (copy / rel).open("a", encoding="utf-8") as handle:
            handle.write(text)

    def add_cell(rel: str, source: str) -> None:
        nb = json.loads((copy / rel).read_text())
        nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "planted", "metadata": {},
                            "outputs": [], "source": source.splitlines(keepends=True)})
        (copy / rel).write_text(json.dumps(nb, indent=1))

    append("mlinfra/torchserve_local.py", OLD_CONFIG_PROPERTIES)
    append("labs/phase1-lab3-config-driven/experiment.py", OLD_TRAIN_AND_EVALUATE)
    add_cell(LESSON_23, OLD_DIGITNET)
    append("mlinfra/models.py", OLD_CNN_LISTING)
    add_cell(LESSON_17, OLD_DOCKERFILE_TAIL)
    (copy / LESSON_24).write_bytes((ROOT / LESSON_24).read_bytes())  # as the course ships it: not rewritten
    for rel, data in _spellings(_region("phase1-lab2-pytorch-training/train.py", "def train_one_epoch")).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    config = (ROOT / "solutions" / "lab05-torchserve" / "config.properties").read_text()
    settings = dict(line.split("=", 1) for line in config.splitlines() if "=" in line and not line.startswith("#"))
    (copy / "modules" / "spelt" / "settings.py").write_text(f"SETTINGS = {settings!r}\n")
    (copy / "modules" / "spelt" / "idioms.py").write_text(IDIOMS)
    # one setting, as a dict key and value, in the lab's own released config file
    append("labs/lab05-torchserve/config.properties", '\nsettings = {"max_request_size": 33554432}\n')
    return copy, find_class_copy_leaks(ROOT, copy), _line_check(ROOT, copy)


KNOWN = {  # file -> what the new check must say about it
    "mlinfra/torchserve_local.py": "settings of lab05-torchserve's config.properties",
    "labs/phase1-lab3-config-driven/experiment.py": "phase1-lab2-pytorch-training's solution at train.py",
    LESSON_23: "phase1-lab2-pytorch-training's solution at train.py",
    "mlinfra/models.py": "phase1-lab2-pytorch-training's solution at train.py",
    LESSON_17: "lab06-docker's solution at Dockerfile",
    LESSON_24: "sends learners to solutions/",
}


@pytest.mark.parametrize("rel", sorted(KNOWN))
def test_each_known_leak_is_found_by_the_new_check_and_not_by_the_old(
        planted: tuple[Path, list[str], list[str]], rel: str) -> None:
    _, new, old = planted
    assert any(p.startswith(f"{rel}") and KNOWN[rel] in p for p in new), f"the token check misses {rel}: {new}"
    assert not any(p.startswith(f"{rel}:") for p in old), f"the line check already found {rel}: {old}"


@pytest.mark.parametrize("rel", sorted(_spellings("x = 1")))
def test_a_solution_is_found_in_any_spelling(planted: tuple[Path, list[str], list[str]], rel: str) -> None:
    _, new, _ = planted
    assert any(p.startswith(f"{rel}:") and "phase1-lab2-pytorch-training" in p for p in new), (
        f"lab 1.2's train_one_epoch spelt as in {rel} is not found: {[p for p in new if 'spelt' in p]}")


def test_config_values_are_found_as_settings(planted: tuple[Path, list[str], list[str]]) -> None:
    _, new, _ = planted
    assert any(p.startswith("modules/spelt/settings.py:") and "settings of lab05-torchserve" in p for p in new)


def test_one_setting_in_the_labs_own_config_file_is_a_leak(planted: tuple[Path, list[str], list[str]]) -> None:
    _, new, _ = planted
    assert any(p.startswith("labs/lab05-torchserve/config.properties: a line of lab05-torchserve's solution")
               and "max_request_size 33554432" in p for p in new)


def test_idioms_are_not_leaks(planted: tuple[Path, list[str], list[str]]) -> None:
    _, new, _ = planted
    assert not [p for p in new if p.startswith("modules/spelt/idioms.py")]


def test_nothing_else_is_found(planted: tuple[Path, list[str], list[str]]) -> None:
    _, new, _ = planted
    expected = (*KNOWN, "modules/spelt/", "labs/lab05-torchserve/config.properties")
    assert [p for p in new if not p.startswith(expected)] == []


def test_the_class_copy_sends_nobody_to_solutions(planted: tuple[Path, list[str], list[str]]) -> None:
    copy, _, _ = planted
    rewritten = [path for path in (copy / "modules").rglob("*.ipynb")
                 if "ask your instructor" in path.read_text().lower()]
    assert len(rewritten) >= 10, "each lesson's 'Stuck?' line becomes 'ask your instructor' in the class copy"
    for path in (copy / "modules").rglob("*.ipynb"):
        if path.relative_to(copy).as_posix() != LESSON_24:
            assert "solutions/" not in path.read_text(), path


def test_the_class_copy_serves_torchserve_only_with_a_config_given(
        planted: tuple[Path, list[str], list[str]], tmp_path: Path) -> None:
    """The library no longer writes lab05's answer: without solutions/ it asks for the learner's config."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(planted[0] / "mlinfra", copy / "mlinfra")
    shutil.copyfile(ROOT / "mlinfra" / "torchserve_local.py", copy / "mlinfra" / "torchserve_local.py")  # unplanted
    probe = """
from pathlib import Path
from mlinfra import torchserve_local as tl
dep = tl.Deployment(Path("s"), "digits", tl.Ports(18085, 18086, 18087, 17070, 17071))
try:
    tl.config_properties(dep)
except tl.StartError as exc:
    print("refused:", exc)
print(tl.config_properties(dep, "inference_address=http://127.0.0.1:1\\nmy_setting=2\\n"))
"""
    env = {**os.environ, "PYTHONPATH": str(copy), "WORKBOOK_ROOT": str(copy)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "refused:" in out and "--config" in out
    assert "inference_address=http://127.0.0.1:18085" in out and "my_setting=2" in out
    assert "disable_token_authorization" not in out


# ------------------------------------------------------------------------------------------------- the lexer


@pytest.mark.parametrize(("source", "expected"), [
    ('f"inference_address=http://127.0.0.1:{port}"', ["inference_address", "http", "127", "0", "0", "1"]),
    ('"disable_token_" "authorization=true"', ["disable_token_authorization", "true"]),
    ('"\\x64efault_workers_per_model=\\N{DIGIT ONE}"', ["default_workers_per_model", "1"]),
    ("x = 0x1F99", ["x", "8089"]),
    ("ｍodel.train()", ["model", "train"]),
    ('b"max_request_size=33554432"', ["max_request_size", "33554432"]),
])
def test_python_is_read_down_to_its_words(source: str, expected: list[str]) -> None:
    lexed = lex_python(source)
    assert lexed is not None
    stream = lexed.stream()
    assert any(stream[i: i + len(expected)] == expected for i in range(len(stream))), stream


def test_a_replacement_field_breaks_a_match_and_comments_read_as_a_block(tmp_path: Path) -> None:
    path = tmp_path / "x.py"
    path.write_text('A = f"alpha {beta} gamma"\n# one two\n# three four\n')
    finder = Finder(file_streams(path))
    assert not finder.has(("alpha", "beta")) and not finder.has(("alpha", "gamma"))
    assert finder.has(("one", "two", "three", "four"))
    assert words("Path(x).parent.mkdir(parents=True)") == ["path", "x", "parent", "mkdir", "parents", "true"]
    assert re.fullmatch(r"[a-z_]+", "".join(words("a_b c")).replace(" ", "")) is not None
