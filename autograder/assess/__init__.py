"""The practical assessment: score a served image classifier against the course's contract (`autograder assess`).

- `server`: start a learner's app under uvicorn on 127.0.0.1, wait until it is ready, stop it by process group;
- `targets`: talk HTTP to a service, the course contract or TorchServe's API, in one shape;
- `images`: the test uploads, made in memory;
- `latency`: percentiles and the sequential rule that decides p95 < 500 ms;
- `probes`: the five requirements, their checks and verdicts;
- `report`: the rubric table, JSON, and the Markdown report with its histogram;
- `cli`: the verb itself.
"""
