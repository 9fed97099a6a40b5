"""Issue #12: kernels forked from the worker's pre-imported zygote into fresh bubblewrap sandboxes.

A forked kernel must be indistinguishable, from inside, from a kernel bubblewrap started: same namespaces as its
sandbox, same capabilities, limits, environment, view of the file system and processes, no network. Nothing may
pass from one student's kernel to the next, the kernel and its sandbox must end together, and a zygote that
fails must cost nothing but the time (the kernel starts the usual way)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from autograder.grading import kernels, sandbox, zygote
from autograder.grading.run import WorkerState

pytestmark = pytest.mark.skipif(bool(sandbox.bwrap_works()), reason=f"no bubblewrap here: {sandbox.bwrap_works()}")

# What a kernel can find out about where it runs. Pids are left out: the forked kernel is pid 4, not 2, and
# sees one process more, the placeholder that keeps its sandbox open (zygote.PLACEHOLDER).
PROBE = r'''
import json, os, resource, socket, sys
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
try:
    socket.create_connection(("1.1.1.1", 80), timeout=1)
    net = "reached"
except OSError as exc:
    net = type(exc).__name__
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "ppid": os.getppid(), "cwd": os.getcwd(), "root": sorted(os.listdir("/")),
    "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
                                             "Seccomp")},
    "limits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")},
    "env": dict(os.environ), "path0": sys.path[:1], "net": net, "hostname": socket.gethostname(),
    "processes": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "repo": os.path.exists(SOLUTIONS),
    "ns": {n: os.readlink(f"/proc/self/ns/{n}") for n in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")},
}))
'''.replace("SOLUTIONS", repr(str(Path(__file__).resolve().parents[2] / "solutions")))


def _spec(root: Path) -> sandbox.Spec:
    conn = Path(tempfile.mkdtemp(prefix="ag-", dir="/tmp"))
    return sandbox.Spec(work=root / "sandboxes" / os.urandom(4).hex() / "home", conn=conn, kind="bwrap")


@pytest.fixture
def with_zygote() -> Iterator[WorkerState]:
    """A grading process's state with a zygote, as a worker of a bubblewrap batch has."""
    state = WorkerState()
    kernels.start_zygote(state)
    try:
        yield state
    finally:
        state.stop_zygote()


async def _start(spec: sandbox.Spec, state: WorkerState) -> tuple[Any, Any]:
    from autograder.notebooks import wait_until_ready

    km = kernels.new_kernel_manager(spec, state)
    await km.start_kernel(extra_arguments=list(kernels.KERNEL_ARGS), cwd=str(spec.work))
    kc = km.client()
    kc.start_channels()
    await wait_until_ready(kc, 60, km.is_alive)
    return km, kc


async def _run(kc: Any, code: str) -> str:
    msg_id = kc.execute(code)
    out = []
    while True:
        msg = await kc.iopub_channel.get_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        if msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


async def _stop(km: Any, kc: Any, spec: sandbox.Spec) -> None:
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    sandbox.teardown(spec)


def _in_two_kernels(tmp_path: Path, code: str, state: WorkerState) -> list[dict[str, Any]]:
    """`code`'s JSON line from each of two kernels alive at once (a namespace's inode number is reused once it is
    gone, so two sandboxes are compared while both exist)."""

    async def run() -> list[dict[str, Any]]:
        specs = [_spec(tmp_path), _spec(tmp_path)]
        started = [await _start(spec, state) for spec in specs]
        try:
            return [json.loads(await _run(kc, code)) for _km, kc in started]
        finally:
            for (km, kc), spec in zip(started, specs, strict=False):
                await _stop(km, kc, spec)

    return asyncio.run(run())


def _probe(spec: sandbox.Spec, state: WorkerState) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        km, kc = await _start(spec, state)
        try:
            return json.loads(await _run(kc, PROBE))
        finally:
            await _stop(km, kc, spec)

    return asyncio.run(run())


def test_a_forked_kernel_sees_what_a_bubblewrap_kernel_sees(tmp_path: Path, with_zygote: WorkerState) -> None:
    state = with_zygote
    forked_spec = _spec(tmp_path)
    forked = _probe(forked_spec, state)
    assert not state.zygote_failed, state.zygote_failed
    assert len(state.forked) == 1
    state.stop_zygote()
    started_spec = _spec(tmp_path)
    started = _probe(started_spec, state)
    assert len(state.forked) == 1 and len(state.launched) == 2
    for key in ("ns",):
        forked.pop(key), started.pop(key)
    # the connection folder and work folder differ per sandbox: compare them relative to each spec
    for probe, spec in ((forked, forked_spec), (started, started_spec)):
        text = json.dumps(probe).replace(str(spec.work), "WORK").replace(str(spec.conn), "CONN")
        probe.clear()
        probe.update(json.loads(text))
    assert forked.pop("processes") == started.pop("processes") + 1  # the placeholder
    assert forked["env"].keys() ^ started["env"].keys() == set(), forked["env"].keys() ^ started["env"].keys()
    assert forked == started
    assert forked["net"] != "reached" and forked["repo"] is False and forked["ppid"] == 1
    assert forked["caps"]["NoNewPrivs"] == "1"


def test_forked_kernels_share_nothing(tmp_path: Path, with_zygote: WorkerState) -> None:
    code = ("import json, os, random; leftover = os.path.exists('/tmp/mine'); home = sorted(os.listdir('.')); "
            "open('/tmp/mine', 'w').write('x'); open('mine', 'w').write('x'); print(json.dumps({'random': "
            "random.random(), 'leftover': leftover, 'home': home, 'ns': {n: os.readlink(f'/proc/self/ns/{n}') "
            "for n in ('mnt', 'pid', 'net', 'ipc', 'uts')}}))")

    first, second = _in_two_kernels(tmp_path, code, with_zygote)
    assert not with_zygote.zygote_failed, with_zygote.zygote_failed
    assert len(with_zygote.forked) == 2
    assert first["random"] != second["random"]  # every fork reseeds
    # /tmp and the work folder are the sandbox's own (IPython makes .ipython as it starts)
    assert second["leftover"] is False and "mine" not in second["home"]
    assert all(first["ns"][n] != second["ns"][n] for n in first["ns"])


def test_the_kernel_and_its_sandbox_end_together(tmp_path: Path, with_zygote: WorkerState) -> None:
    async def run() -> None:
        # the kernel exits: its sandbox's process exits, so the kernel manager sees a dead kernel
        spec = _spec(tmp_path)
        km, kc = await _start(spec, with_zygote)
        kc.execute("import os; os._exit(3)")
        km.provisioner.process.wait(timeout=20)
        assert not await km.is_alive()
        await _stop(km, kc, spec)
        # the sandbox is killed: the kernel inside dies with it
        spec = _spec(tmp_path)
        km, kc = await _start(spec, with_zygote)
        kernel_pids = [p.pid for p in psutil.Process(km.provisioner.pid).children(recursive=True)
                       if p.name().startswith("python")]
        assert len(kernel_pids) == 1
        sandbox.kill_tree(km.provisioner.pid, timeout=10)
        psutil.wait_procs([psutil.Process(p) for p in kernel_pids if psutil.pid_exists(p)], timeout=10)
        assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                       for p in kernel_pids)
        await _stop(km, kc, spec)

    asyncio.run(run())
    assert not with_zygote.zygote_failed, with_zygote.zygote_failed


def test_a_failed_zygote_costs_only_time(tmp_path: Path, with_zygote: WorkerState) -> None:
    state = with_zygote
    assert state.zygote is not None
    state.zygote.proc.kill()
    state.zygote.proc.wait()
    spec = _spec(tmp_path)

    async def run() -> str:
        km, kc = await _start(spec, state)
        try:
            return await _run(kc, "print(6 * 7)")
        finally:
            await _stop(km, kc, spec)

    assert asyncio.run(run()) == "42\n"
    assert state.zygote is None and len(state.zygote_failed) == 1 and not state.forked
    assert "zygote" in state.zygote_failed[0] or "Pipe" in state.zygote_failed[0]


def test_only_ipykernel_commands_are_forked() -> None:
    import sys

    assert zygote.ipykernel_argv([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"]) == ["-f", "c.json"]
    assert zygote.ipykernel_argv(["/usr/bin/R", "-m", "ipykernel_launcher"]) is None
    assert zygote.ipykernel_argv([sys.executable, "-m", "other_kernel", "-f", "c.json"]) is None


def test_preimported_packages_are_there_and_reseeded(tmp_path: Path) -> None:
    """A lab that imports numpy gets it imported in the zygote: a student's kernel has it before any import, and
    two kernels still draw different numbers from its global generator."""
    state = WorkerState()
    kernels.start_zygote(state, preimports=("numpy", "numpy.random", "not-a-heavy-package"))
    code = ("import sys, json; had = 'numpy' in sys.modules; import numpy; "
            "print(json.dumps({'had': had, 'draw': numpy.random.random(), 'other': 'not-a-heavy-package' in sys.modules}))")
    try:
        first, second = _in_two_kernels(tmp_path, code, state)
    finally:
        state.stop_zygote()
    assert not state.zygote_failed, state.zygote_failed
    assert first["had"] and second["had"] and not first["other"]
    assert first["draw"] != second["draw"]


def test_preimports_come_from_the_reference_notebooks_imports(tmp_path: Path) -> None:
    cells = [{"cell_type": "code", "source": ["%matplotlib inline\n", "import torch.nn as nn\n", "import mymodel\n"]},
             {"cell_type": "code", "source": ["from numpy import random\n", "from . import local\n"]},
             {"cell_type": "markdown", "source": ["import torchvision"]}]
    notebook = tmp_path / "lab.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert zygote.preimports_for(notebook) == ("numpy", "torch")
    assert zygote.preimports_for(tmp_path / "missing.ipynb") == ()
