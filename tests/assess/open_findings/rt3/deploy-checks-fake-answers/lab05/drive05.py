# Runs a handler through the lab05 deploy check (deploy/torchserve_check.torchserve), minus the notebook run.
import sys, tempfile, types
from pathlib import Path
from autograder.deploy.torchserve_check import torchserve
lab = types.SimpleNamespace(memory_mb=4096)
with tempfile.TemporaryDirectory(prefix="rt3-ts-") as work:
    for c in torchserve(lab, Path(sys.argv[1]), Path(work)):
        print(c.status, c.points, "/", c.max_points, c.name, "-", str(c.message)[:140])
