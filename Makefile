# Deep Vision Lab — every set-up step behind two commands: `make lab` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS := $(sort $(wildcard chapters/*.py))
NOTEBOOKS := $(CHAPTERS:.py=.ipynb)

.PHONY: lab test test-unit test-notebooks test-browser notebooks data bench clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt -e .
	touch $@

data: $(STAMP)  ## make Fashion-MNIST available (data/, $$COURSE_DATA_DIR, Debian package, or download)
	$(BIN)/python -m utils.data

notebooks: $(STAMP)  ## regenerate every .ipynb from its jupytext .py source (--update keeps cell ids)
	$(BIN)/jupytext --update --to ipynb $(CHAPTERS)

lab: $(STAMP) data notebooks  ## set up and open the course in JupyterLab
	$(BIN)/jupyter lab --notebook-dir=chapters $(if $(filter 0,$(shell id -u)),--allow-root)

test: $(STAMP) data test-unit test-notebooks test-browser  ## set up, then run every test

test-unit: $(STAMP)
	$(BIN)/pytest -q -m "not browser" tests

# Every chapter, executed top to bottom in the smoke profile (outputs not compared: --nbval-lax).
test-notebooks: $(STAMP)
	rm -rf data/checkpoints/smoke
	COURSE_PROFILE=smoke PYTHONPATH=tests $(BIN)/pytest -q -p no:randomly -p nbval_patience --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=300 --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)

test-browser: $(STAMP)  ## JupyterLab in headless Chromium: widgets render and react
	COURSE_PROFILE=smoke $(BIN)/pytest -q -rs -m browser tests

bench: $(STAMP) data  ## speed and accuracy targets; writes the README's results table
	$(BIN)/python -m utils.bench

clean:
	rm -rf $(VENV) data/checkpoints chapters/outputs tests/artifacts
