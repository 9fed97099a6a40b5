"""A lab's `warm_imports` (lab.yaml): modules the grading zygote imports once, ahead of every kernel, so each
student's kernel finds them already loaded; validated where lab.yaml is read, with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_zygote import _in_two_kernels

from autograder.errors import BadConfig
from autograder.grading import kernels, pool, sandbox, zygote
from autograder.grading.run import WorkerState
from autograder.labs import load_lab

# test_zygote above: pytest puts a test file's folder on sys.path


def _lab(tmp_path: Path, extra: str) -> Path:
    folder = tmp_path / "lab"
    folder.mkdir(parents=True)
    (folder / "lab.ipynb").write_text('{"cells": [{"cell_type": "code", "source": ["import torch\\n"]}]}')
    (folder / "lab.yaml").write_text(f"title: A lab\nnotebook: lab.ipynb\n{extra}")
    return folder


@pytest.mark.parametrize("value", ["torch._dynamo", "[torch/_dynamo]", "[3]", "['import os']", "[torch.]"])
def test_a_bad_warm_imports_names_the_file_and_the_key(tmp_path: Path, value: str) -> None:
    folder = _lab(tmp_path, f"warm_imports: {value}\n")
    with pytest.raises(BadConfig) as caught:
        load_lab(folder)
    assert "lab.yaml" in str(caught.value) and "warm_imports" in str(caught.value), str(caught.value)


def test_the_zygote_is_given_the_notebooks_heavy_imports_then_the_labs_warm_ones(tmp_path: Path) -> None:
    lab = load_lab(_lab(tmp_path, "warm_imports: [torch._dynamo, onnxscript]\n"))
    assert lab.warm_imports == ("torch._dynamo", "onnxscript")
    assert pool.preimports(lab) == ("torch", f"{zygote.WARM}torch._dynamo", f"{zygote.WARM}onnxscript")
    assert pool.preimports(load_lab(_lab(tmp_path / "plain", ""))) == ("torch",)


@pytest.mark.skipif(bool(sandbox.bwrap_works()), reason=f"no bubblewrap here: {sandbox.bwrap_works()}")
def test_a_forked_kernel_has_the_warm_imports_and_nothing_undeclared(tmp_path: Path) -> None:
    state = WorkerState()
    # colorsys: imported by nothing a kernel loads; fractions the same, but passed bare (not HEAVY, not declared)
    kernels.start_zygote(state, preimports=(f"{zygote.WARM}colorsys", "fractions"))
    code = "import sys, json; print(json.dumps({m: m in sys.modules for m in ('colorsys', 'fractions')}))"
    try:
        first, second = _in_two_kernels(tmp_path, code, state)
    finally:
        state.stop_zygote()
    assert not state.zygote_failed, state.zygote_failed
    assert first == second == {"colorsys": True, "fractions": False}, (first, second)
