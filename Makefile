# Two commands a new user needs:  `make run`  and  `make test`.
# Both create .venv from requirements.lock on first use (Python 3.11).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= default
# pytest-xdist workers of `make test`; a test file runs whole on one worker (--dist loadfile).
TEST_JOBS ?= 2

# The environment variables QMU needs are declared once, in qmu_core/environment.py: `qmu`, the
# test suite and the bench scripts set them themselves; `make ui` starts Prefect's server with them.

.PHONY: run test lint test-slow test-browser bench ui check-env clean

$(STAMP): requirements.lock pyproject.toml examples/reupload_plugin/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"QMU needs Python 3.11 (TensorFlow Quantum 0.7.6); found {sys.version.split()[0]} at {sys.executable}. Set PYTHON=/path/to/python3.11."'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@# The worked example of a model plug-in (examples/reupload_plugin: entry point qmu.models), which the tests use.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e examples/reupload_plugin
	@# QMU's native op (qmu_core/qnn/native): qsim from given states, for amplitude-encoded training.
	@# Without a C++ compiler QMU still runs, on TFQ's slower Adjoint route, and says so.
	$(BIN)/python -m qmu_core.qnn.native || echo "qmu: the native op was not built (see above); training uses TFQ's Adjoint route."
	@touch $(STAMP)

run: $(STAMP)  ## the main job on the embedded default dataset (scikit-learn digits)
	$(BIN)/qmu run --preset $(PRESET) $(ARGS)

test: lint  ## the gates, then the default test suite (what CI runs), one pytest worker per core (TEST_JOBS)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder $(ARGS)

lint: $(STAMP)  ## ruff (lint + format), mypy on qmu_core, import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-slow: $(STAMP)  ## paper-scale tests too (MNIST from ../shared/data/mnist)
	$(BIN)/python -m pytest -q -m 'not hardware' $(ARGS)

test-browser: $(STAMP)  ## the Prefect UI end to end: server, worker, Chromium runs `smoke` (data/screenshots/)
	$(BIN)/python -m pytest -q -m browser tests/e2e $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/train_speed.py $(ARGS)

ui: $(STAMP)  ## a local Prefect server with its UI on http://127.0.0.1:4200
	$(BIN)/python -m qmu_core.environment $(BIN)/prefect server start

check-env: $(STAMP)
	$(BIN)/pip check

clean:
	rm -rf $(VENV) data/artifacts
