# Runs a Dockerfile through the lab06 deploy check's own call (deploy/container_check.py: isolated=True, hardened,
# the lab's --memory/--pids-limit), without the nbgrader notebook run around it.
import sys
from pathlib import Path
from autograder.dockerfile.build import build_and_assess
from autograder.dockerfile.rules import lint
from autograder.deploy.container_check import caps
df = Path(sys.argv[1])
out = build_and_assess(df, lint(df), model_dir=None, tag="autograder-grade/rt3-egress:latest", health_timeout=60,
                       requests=20, isolated=True, log=print, caps=caps(), keep_image=False, batch="rt3egress",
                       run_args=("--memory=4096m", "--pids-limit=512"))
print("built", out.built, "error", out.error)
a = out.assessment or {}
print("assessment status", a.get("status"), "score", a.get("score"), "/", a.get("max_score"))
for c in a.get("checks", []):
    print(" ", c.get("status"), c.get("points"), "/", c.get("max_points"), c.get("name"), "-", str(c.get("message"))[:100])
print("lint:", [str(f)[:100] for f in getattr(out, "lint", None) or []][:10])
