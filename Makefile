# Thin by design: every target is one call into the project's venv. `make help` lists them.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
export WORKBOOK_ROOT := $(CURDIR)

# Grading, Airflow and notebooks must never write to the user's home: keep their state in ignored folders here.
export AIRFLOW_HOME := $(CURDIR)/.state/airflow
export JUPYTER_CONFIG_DIR := $(CURDIR)/.state/jupyter/config
export JUPYTER_DATA_DIR := $(CURDIR)/.state/jupyter/data
export JUPYTER_RUNTIME_DIR := $(CURDIR)/.state/jupyter/runtime
export IPYTHONDIR := $(CURDIR)/.state/ipython
$(shell mkdir -p .state/ipython .state/jupyter/config .state/jupyter/data .state/jupyter/runtime)

LAB  ?=
QUIZ ?= module01
CONFIG ?= baseline
SET ?=
APP  ?= mlinfra.service:app
MODE ?= batch
PORT ?= 8888
# Test processes for make test (a whole test file stays on one process; 2 measured 7.5 min against 10 serial).
TEST_WORKERS ?= 2
PRACTICE ?= .grading/practice
LABS ?=

.DEFAULT_GOAL := help
.PHONY: help setup lab test test-fast release grade practice-class check quiz train compare model serve assess torchserve torchserve-stop \
        airflow airflow-stop browser container-engine docker-check dag-check bench clean sandbox

help:  ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP)  ## create .venv and install the pinned course environment (quick when nothing changed)
$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

lab: setup  ## open the workbook in JupyterLab on 127.0.0.1:$(PORT) (or the next free port) and print its URL
	$(PY) -m autograder.workspace open --port $(PORT)

test: setup  ## run everything CI checks (unit tests, notebooks, release sync, graded samples)
	@# The grading sandbox, a container engine (the container sandbox and the Docker lab) and the browser tests'
	@# Chromium, installed when missing and possible (root, Debian); where they cannot be, their tests skip with
	@# the reason, so a failure here never stops the run. The engine comes first, once, not from two test
	@# processes at the same time, with the Docker lab's base image and wheels (its deploy tests build on them).
	-@bash scripts/install-sandbox.sh
	-@bash scripts/container-engine.sh --base python:3.11-slim-bookworm --wheels solutions/lab06-docker/requirements.txt 2>&1 | tail -n 2
	-@bash scripts/browser.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: setup  ## the unit tests not marked slow: no lesson notebooks (nbval), kernels, servers or engines
	$(PY) -m pytest -m "not slow" tests

release: setup  ## regenerate labs/ from solutions/ (instructor)
	$(PY) -m autograder release $(LAB)

check: setup  ## self-check your workspace copy of a lab: make check LAB=lab01-environment
	$(PY) -m autograder check $(LAB)

grade: setup  ## batch-grade a class: make grade LAB=... SUBMISSIONS=dir
	$(PY) -m autograder grade $(LAB) $(SUBMISSIONS)

practice-class: setup  ## a practice class from the known-bad samples: make practice-class [PRACTICE=.grading/practice]
	$(PY) -m autograder.grading.practice --out $(PRACTICE) $(if $(LABS),--labs $(LABS))

quiz: setup  ## take a quiz in the terminal: make quiz QUIZ=module01
	$(PY) -m autograder quiz take $(QUIZ)

train: setup  ## train one config-driven run: make train CONFIG=baseline [SET="training.lr=0.003"]
	$(PY) -m mlinfra.train --config $(CONFIG) $(foreach s,$(SET),--set $(s))

compare: setup  ## compare the runs under runs/ and plot their curves into runs/curves.png
	$(PY) -m mlinfra.compare runs/ --plot runs/curves.png

model: setup  ## train the course's ResNet-18 digit classifier into models/ (offline)
	$(PY) -m mlinfra.make_model

serve: setup  ## serve the reference FastAPI app on 127.0.0.1:8000 (MODE=batch or threads; docs/serving.md)
	MLINFRA_SERVE_MODE=$(MODE) $(PY) -m uvicorn $(APP) --host 127.0.0.1 --port 8000

assess: setup  ## score a service (the practical): make assess APP=module:attr [REPORT=out/assessment.md]
	$(PY) -m autograder assess --app $(APP) --startup-timeout 30 $(if $(REPORT),--report $(REPORT))

torchserve: setup  ## archive the model and start TorchServe on 127.0.0.1:8085-8087, ready when it predicts
	$(PY) -m mlinfra.torchserve_local start

torchserve-stop:  ## stop TorchServe cleanly
	$(PY) -m mlinfra.torchserve_local stop

airflow: setup  ## start Airflow (standalone) on 127.0.0.1:8080 with the course's DAGs
	$(PY) -m mlinfra.airflow_local start

airflow-stop:  ## stop Airflow
	$(PY) -m mlinfra.airflow_local stop

sandbox:  ## install bubblewrap when missing, so grading runs every kernel sandboxed (root, Debian/Ubuntu)
	bash scripts/install-sandbox.sh

browser:  ## install headless Chromium (Debian's package) for the browser tests, when missing
	bash scripts/browser.sh

container-engine:  ## no Docker engine? set up podman with the course's private storage (root, Debian/Ubuntu)
	bash scripts/container-engine.sh --base python:3.11-slim-bookworm --wheels solutions/lab06-docker/requirements.txt

docker-check: setup  ## check your Dockerfile, then build, run and assess the image: make docker-check
	$(PY) -m autograder dockerfile workspace/lab06-docker/Dockerfile --build

dag-check: setup  ## check and run your DAG twice (idempotency): make dag-check
	$(PY) -m autograder dag workspace/phase1-lab1-airflow-dag/dag.py --run

bench: setup  ## run the benchmarks and print their figures (never pass/fail)
	$(PY) -m bench

clean:  ## remove generated state (keeps .venv, workspace/ and models/)
	rm -rf .state .grading .pytest_cache runs
