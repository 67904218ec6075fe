# Deep Vision Lab — every set-up step behind two commands: `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTER_SOURCES := $(sort $(wildcard chapters/*.py))
NOTEBOOKS := $(CHAPTER_SOURCES:.py=.ipynb)
# `make verify` settings: PROFILE=smoke|cpu|gpu (default: automatic), CHAPTERS="01b 04" (default: all),
# JOBS=n chapters at once (default: 1 on CPU, 6 on a GPU), README=1 to write the table into README.md,
# TIME_LIMIT=seconds of wall time before a chapter is stopped (default: twice its profile's budget).
PROFILE ?=
CHAPTERS ?=
JOBS ?=
README ?=
TIME_LIMIT ?=
# `make offline-bundle` settings: the offline GPU machine's PYTHON_VERSION (default 3.12) and PLATFORM, its wheel
# tags (default: manylinux x86_64).
PYTHON_VERSION ?= 3.12
PLATFORM ?=
# A GPU machine given that bundle (`source .gpu/env.sh` there) has no internet: its own python3 with .gpu/site on
# PYTHONPATH runs the course, and no .venv is made.
ifneq ($(findstring .gpu/site,$(PYTHONPATH)),)
VERIFY_PYTHON := python3
VERIFY_SETUP :=
else
VERIFY_PYTHON := $(BIN)/python
VERIFY_SETUP := $(STAMP) data
endif

.PHONY: lab test test-unit test-notebooks test-browser notebooks data verify bench questions exercises book \
  doctor lock offline-bundle clean

# configurable-http-proxy (JupyterHub's proxy: make workshop, the hub tests) comes from npm into .venv/node; where npm
# is missing or offline, the set-up says so and goes on: only the hub's tests skip, saying why.
PROXY_VERSION := 5.3.0
$(STAMP): requirements.txt requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock -e .
	@if ! command -v npm >/dev/null; then \
	  echo "npm not found: make workshop and tests/test_hub_live.py need configurable-http-proxy (install Node.js)"; \
	elif ! npm install --prefix $(VENV)/node --no-save --no-audit --no-fund --loglevel=error \
	    configurable-http-proxy@$(PROXY_VERSION); then \
	  echo "npm could not install configurable-http-proxy@$(PROXY_VERSION): make workshop and the hub tests need it"; \
	fi
	touch $@

# The lock is written from a throwaway environment, so packages .venv picked up along the way do not leak into it.
lock:  ## the newest versions within requirements.txt's ranges into requirements.lock, then .venv from it and every test
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(PYTHON) -m venv "$$tmp" && \
	  "$$tmp/bin/pip" install --quiet -r requirements.txt && "$$tmp/bin/python" -m utils.course.lockfile
	rm -rf $(VENV)
	$(MAKE) test

data: $(STAMP)  ## make Fashion-MNIST available (data/, $$COURSE_DATA_DIR, Debian package, or download)
	$(BIN)/python -m utils.data

notebooks: $(STAMP)  ## regenerate every .ipynb from its jupytext .py source (--update keeps cell ids)
	$(BIN)/jupytext --update --to ipynb $(CHAPTER_SOURCES)

lab: $(STAMP) data notebooks  ## set up and open the course in JupyterLab
	$(BIN)/jupyter lab --notebook-dir=chapters $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(STAMP) data test-unit test-notebooks test-browser  ## set up, then run every test
test: NOTEBOOK_STAGE_FLAGS := --leave-chapters-to-the-browser  # each chapter executed once (see tests/nbval_course.py)

# On every core (pytest-xdist): a test that crashes the interpreter fails alone and the rest still run and report.
# --dist worksteal: a core that runs out of tests takes half of the other's queue, so neither idles at the end.
test-unit: $(STAMP)
	$(BIN)/pytest -q -m "not browser" -n auto --dist worksteal --durations=10 tests

# Every chapter, executed top to bottom in the smoke profile (outputs not compared: --nbval-lax), a chapter per core
# at once (each notebook's cells stay together on one worker, one thread each). Under `make test`, the chapters are
# left to the browser stage when Chromium is found, which runs each of them in JupyterLab.
test-notebooks: $(STAMP)
	rm -rf data/checkpoints/smoke
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 PYTHONPATH=tests $(BIN)/pytest -q -p no:randomly -p nbval_course \
	  -n auto --dist loadfile --durations=5 --nbval-lax --nbval-current-env $(NOTEBOOK_STAGE_FLAGS) \
	  --nbval-cell-timeout=600 --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

test-browser: $(STAMP)  ## JupyterLab in headless Chromium: widgets render and react (a JupyterLab per core)
	COURSE_PROFILE=smoke OMP_NUM_THREADS=1 $(BIN)/pytest -q -rs -m browser -n auto --dist worksteal \
	  --durations=20 tests

verify: $(VERIFY_SETUP)  ## run every chapter as a script; write chapters/outputs/verify-<profile>.md
	$(VERIFY_PYTHON) -m utils.course.verify --profile "$(PROFILE)" --chapters "$(CHAPTERS)" --jobs "$(JOBS)" \
	  $(if $(README),--readme) $(if $(TIME_LIMIT),--time-limit $(TIME_LIMIT))

bench: $(STAMP) data  ## speed and accuracy targets; writes the README's results table
	$(BIN)/python -m utils.course.bench

questions: $(STAMP)  ## every chapter's interview questions in one index: chapters/outputs/questions.md
	$(BIN)/python -m utils.course.questions

exercises: $(STAMP)  ## each chapter's exercises stubbed, and timed drills: chapters/exercises/ (never over your edits)
	$(BIN)/python -m utils.course.exercise_notebooks

# The book shows real results: PROFILE=cpu or gpu (default: gpu where CUDA is available, else cpu), never smoke; run
# `make verify PROFILE=cpu` first and the book reuses its trained models.
book: $(STAMP) data  ## the course as a Jupyter Book site from the cpu (gpu) run: chapters/outputs/book/_build/html/
	$(BIN)/python -m utils.course.book --profile "$(PROFILE)" $(CHAPTERS)

doctor: $(STAMP)  ## check this machine for the course: one line per check, each problem with its fix
	$(BIN)/python -m utils.course.doctor

offline-bundle: $(STAMP) data  ## .gpu/: data, wheels and env.sh for a GPU machine without internet (see README)
	$(BIN)/python -m utils.course.offline_bundle --python-version $(PYTHON_VERSION) $(addprefix --platform ,$(PLATFORM))

# The learner's work, chapters/exercises/ (notebooks and attempts.jsonl), is not the build's to delete: it stays.
clean:
	rm -rf $(VENV) data/checkpoints chapters/outputs tests/artifacts

# `make workshop` (see chapters/INSTRUCTORS.md, "A workshop from one machine"): LEARNERS="ada grace" or ROSTER=file
# (one `name [profile]` a line), INSTRUCTOR=the admin, IP=0.0.0.0 to serve the room's network, PORT, GPUS=n to share
# out; WORKSHOP_STATE holds the config, secrets, databases and each learner's record, outside the repository.
LEARNERS ?=
ROSTER ?=
INSTRUCTOR ?= $(or $(SUDO_USER),$(USER))
IP ?= 127.0.0.1
PORT ?= 8000
GPUS ?= 0
WORKSHOP_STATE ?= /srv/deep-vision-lab
# `make workshop-progress`: ROOT=the workshop root (one folder per learner), WATCH=seconds to keep the page live.
ROOT ?= $(WORKSHOP_STATE)/progress
WATCH ?=

.PHONY: workshop workshop-progress

workshop: $(STAMP) data notebooks  ## serve the course to a room with JupyterHub, as root: LEARNERS=… or ROSTER=…
	$(BIN)/python -m utils.course.hub check
	COURSE_EXERCISES_DIR=$(WORKSHOP_STATE)/exercise-template $(BIN)/python -m utils.course.exercise_notebooks
	$(BIN)/python -m utils.course.hub config --learners "$(LEARNERS)" $(if $(ROSTER),--roster "$(ROSTER)") \
	  --instructor "$(INSTRUCTOR)" --ip "$(IP)" --port "$(PORT)" --gpus "$(GPUS)" --state "$(WORKSHOP_STATE)"
	cd "$(WORKSHOP_STATE)/hub" && "$(abspath $(BIN))/jupyterhub" -f jupyterhub_config.py

workshop-progress: $(STAMP)  ## the room's self-checks as a table and a self-reloading page (ROOT=…, WATCH=15)
	$(BIN)/python -m utils.course.workshop "$(ROOT)" $(if $(WATCH),--watch $(WATCH))
