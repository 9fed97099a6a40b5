"""Red-team findings 8 and 9 against `assess --pack` (issue #22): every mount an assessment makes is gone after it,
SIGTERM included; the app's only writable places are size-capped, and it sees the model at a fixed path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from autograder.grading.sandbox import bwrap_works

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(bwrap_works()), reason=f"needs bubblewrap: {bwrap_works()}")]

RECON = '''\
import json, os
def probe():
    out = {"env_model": os.environ.get("MLINFRA_MODEL_DIR")}
    try:
        out["model_files"] = sorted(os.listdir(out["env_model"]))
    except OSError as exc:
        out["model_files"] = str(exc)
    for path in ("/", "/dev"):
        try:
            os.mkdir(os.path.join(path, "fill"))
            out[path] = "writable"
        except OSError as exc:
            out[path] = exc.strerror
    for path in ("/dev/shm", "/tmp"):
        st = os.statvfs(path)
        out[path] = st.f_blocks * st.f_frsize
    with open("/dev/null", "w") as sink:
        sink.write("still a device")
    return out
print("RECON " + json.dumps(probe()), flush=True)
async def app(scope, receive, send):
    pass
'''


def mounts(fragment: str) -> list[str]:
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if fragment in line]


def test_the_apps_writable_places_are_capped_and_the_model_is_at_a_fixed_path(tmp_path: Path,
                                                                              tiny_model: Path) -> None:
    from autograder.assess.sandboxed import DISK_MB, MODEL_INSIDE, SandboxedServer

    service = tmp_path / "service"
    service.mkdir()
    (service / "app.py").write_text(RECON)
    with SandboxedServer(service, "app", "app", tiny_model.resolve()) as server:
        server.start()
        for _ in range(300):
            if any(line.startswith("RECON") for line in server.log_tail()):
                break
            time.sleep(0.05)
        log = server.log_tail()
        conn = server.conn
        assert not server.spec.readonly and server.spec.moved  # the model by a moved bind, not at its own path
    found = [json.loads(line[len("RECON "):]) for line in log if line.startswith("RECON")]
    assert found, log
    seen = found[0]
    assert seen["env_model"] == MODEL_INSIDE and "model.pt" in seen["model_files"]
    assert str(tiny_model.resolve()) not in json.dumps(seen)
    assert seen["/"] == "Read-only file system" and seen["/dev"] == "Read-only file system"
    assert seen["/dev/shm"] <= DISK_MB * 2**20 and seen["/tmp"] <= DISK_MB * 2**20
    # finding 8: the connection folder's tmpfs (a root grader's) is unmounted and removed with the sandbox
    assert not conn.exists() and not mounts(str(conn))


def test_sigterm_cleans_up_like_ctrl_c(tmp_path: Path, tiny_model: Path) -> None:
    """A grader stopped by SIGTERM (`timeout`) while a hand-in starts leaves no mount and no folder behind."""
    pack = tmp_path / "slow-practical.zip"
    with zipfile.ZipFile(pack, "w") as zf:  # never healthy: it sleeps at import
        zf.writestr("service/app.py", "import time\ntime.sleep(600)\n")
        zf.writestr("README.md", "# x\n")
    before = set(mounts("ag-app-")) | set(mounts("assess-sbx-"))
    env = {**os.environ, "MLINFRA_MODEL_DIR": str(tiny_model), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "autograder.cli", "assess", "--pack", str(pack), "--requests",
                             "20", "--no-breakdown", "--startup-timeout", "120"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # the sandbox is up once it says so: its mounts exist by then
        if "waiting for /health" in line:
            break
    new = (set(mounts("ag-app-")) | set(mounts("assess-sbx-"))) - before
    assert new or os.geteuid() != 0
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    after = (set(mounts("ag-app-")) | set(mounts("assess-sbx-"))) - before
    assert after == set() and not any(Path(m).exists() for m in new)
