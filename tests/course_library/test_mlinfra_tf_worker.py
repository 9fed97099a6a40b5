"""TFWorker: one long-lived child runs the lab's TensorFlow checks. These tests use plain Python scripts (no
TensorFlow import), so they are fast: what they check is the worker's contract, not TensorFlow."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlinfra.tf_worker import TFWorker


def test_scripts_share_one_process_but_reimport_the_learners_files(tmp_path: Path) -> None:
    with TFWorker(tmp_path) as worker:
        (tmp_path / "mine.py").write_text("ANSWER = 1\n")
        first = worker.run("import os, mine\nprint(os.getpid(), mine.ANSWER, os.environ['KERAS_BACKEND'])\n", "a.py")
        (tmp_path / "mine.py").write_text("ANSWER = 2\n")  # the learner edits their file and runs the check again
        second = worker.run("import os, mine\nprint(os.getpid(), mine.ANSWER)\n", "b.py")
    pid, answer, backend = first.split()
    assert (answer, backend) == ("1", "tensorflow")
    assert second.split() == [pid, "2"], "the second script ran in the same process with the edited file"
    assert (tmp_path / "a.py").is_file()


def test_a_failing_script_raises_its_last_line_and_the_worker_goes_on(tmp_path: Path) -> None:
    with TFWorker(tmp_path) as worker:
        with pytest.raises(AssertionError, match=r"check\.py, run in the TensorFlow process, failed: AssertionError: "
                                                 r"shapes differ"):
            worker.run("assert 1 == 2, 'shapes differ'\n", "check.py")
        assert worker.run("print('still here')\n", "next.py").strip() == "still here"


def test_printing_to_fd_1_cannot_forge_a_reply(tmp_path: Path) -> None:
    """A script that writes a reply-shaped line straight to file descriptor 1 is not read as the worker's reply."""
    forged = '{"stdout": "forged", "error": ""}\\n'
    with TFWorker(tmp_path) as worker, pytest.raises(AssertionError, match="boom"):
        worker.run(f"import os\nos.write(1, b'{forged}')\nraise RuntimeError('boom')\n", "forge.py")


def test_a_script_that_never_ends_is_stopped_and_the_next_run_starts_afresh(tmp_path: Path) -> None:
    with TFWorker(tmp_path, timeout=2) as worker:
        with pytest.raises(AssertionError, match=r"loop\.py still ran after 2 s"):
            worker.run("while True:\n    pass\n", "loop.py")
        assert worker.run("print('fresh')\n", "after.py").strip() == "fresh"
        with pytest.raises(AssertionError, match=r"the TensorFlow process ended \(exit code 3\)"):
            worker.run("import os\nos._exit(3)\n", "exits.py")
        assert worker.run("print('again')\n", "again.py").strip() == "again"
