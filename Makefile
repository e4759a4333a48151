# The course in two commands:  make lab  |  make test
# Both create .venv when it is missing and install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# Re-install only when the dependency files change.
BASE_STAMP := $(VENV)/.installed-base
DEV_STAMP := $(VENV)/.installed-dev
NBVAL_FLAGS := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
.PHONY: lab test test-fast test-browser course bench-grade constraints clean site lite

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(BASE_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install --quiet -c constraints.txt -e ".[dev]"
	touch $@ $(BASE_STAMP)

lab: $(BASE_STAMP)
	$(BIN)/jupyter lab notebooks/

## every test: package tests, then every notebook under nbval
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q -p no:cacheprovider $(NBVAL_FLAGS) notebooks
	$(BIN)/cnncourse validate

## JupyterLab in a real (headless) Chromium: every notebook, every widget, one exercise round trip;
## then the website and the JupyterLite edition, built fresh and served from 127.0.0.1
test-browser: $(DEV_STAMP) site lite
	bash tests/e2e/install_browser.sh
	CNNCOURSE_E2E=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e

## package tests only (no notebooks)
test-fast: $(DEV_STAMP)
	$(BIN)/python -m pytest -q tests

## execute every notebook headless into build/ (notebooks + HTML)
course: $(DEV_STAMP)
	$(BIN)/python -m cnncourse.cli run-notebooks notebooks --out build

## time grading 30 submissions with --jobs 2
bench-grade: $(DEV_STAMP)
	$(BIN)/python benchmarks/grade_30.py

## The web editions. Their build tools live in venvs of their own, installed from pyproject.toml's
## "site" and "lite" extras: they run the course package from the source tree and need none of its
## notebook dependencies, and the Pyodide kernel's JupyterLab extension would fail to load in the
## course's own JupyterLab. (--no-compile: modules are compiled on first import instead; measured,
## make site from a fresh clone took 32 s of CPU instead of 47 s.)
SITE_VENV := .venv-site
LITE_VENV := .venv-lite

$(SITE_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(SITE_VENV)
	$(SITE_VENV)/bin/python -m pip install --quiet --no-compile -c constraints.txt $$($(SITE_VENV)/bin/python site/extra.py site)
	touch $@

$(LITE_VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(LITE_VENV)
	$(LITE_VENV)/bin/python -m pip install --quiet --no-compile -c constraints.txt $$($(LITE_VENV)/bin/python site/extra.py lite)
	touch $@

## the course as a static website in build/site/ (stored notebooks, not re-executed; works offline)
site: $(SITE_VENV)/.installed
	$(SITE_VENV)/bin/python site/build_site.py --out build/site

## the JupyterLite edition in build/lite/ (student copies + a cnncourse wheel, run by Pyodide in the browser)
lite: $(LITE_VENV)/.installed
	$(LITE_VENV)/bin/python site/build_lite.py --out build/lite

constraints: $(DEV_STAMP)
	{ echo "# Pinned versions: stored notebook outputs were produced with exactly these."; \
	  echo "# Regenerate with: make constraints"; \
	  $(PIP) freeze --exclude-editable | grep -v '^torch=='; echo "torch==2.13.0"; } > constraints.txt

clean:
	rm -rf build .pytest_cache
