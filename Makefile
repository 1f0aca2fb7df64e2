# Two commands do everything on a fresh machine: `make chat` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Offline: gradio and huggingface_hub otherwise try the internet.
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: chat test test-fast test-slow ingest eval bench clean lock lock-check

# Installs come from the lock files (requirements.lock: the default install; requirements-dev.lock: + [dev], which
# pulls [st,llm,eval]), every package pinned with its hash, then the project itself with --no-deps.
# torch is left out of the locks: it is installed first, pinned to the CPU wheel on this machine's disk
# (pip's find-links /opt/wheels, see `pip config list`); any other torch pulls gigabytes.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --no-deps --require-hashes -r requirements.lock
	$(PIP) install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PIP) install -q --no-deps torch==2.13.0
	$(PIP) install -q --no-deps --require-hashes -r requirements-dev.lock
	$(PIP) check
	touch $@

# Refresh both locks from pyproject.toml (newest versions within its pins; add --upgrade-package NAME to move one).
LOCK_PY := 3.11.7
LOCK_FLAGS := --python-version $(LOCK_PY) --find-links /opt/wheels --no-emit-package torch --generate-hashes \
	--custom-compile-command "make lock"
lock:
	test -x $(VENV)/bin/uv || $(PIP) install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml $(LOCK_FLAGS) -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.lock

# Offline and in seconds: fails when pyproject's dependencies or extras changed since the locks were compiled.
lock-check:
	$(PY) -m pytest -q tests/test_packaging.py -m "not slow"

chat: $(VENV)/.installed
	$(VENV)/bin/bpo-assistant ingest --quiet || test $$? -eq 1
	$(VENV)/bin/bpo-assistant chat --host 127.0.0.1 --port 7860

# The suite runs on TEST_WORKERS pytest-xdist workers (`make test TEST_WORKERS=0` runs it in one process): much of
# its time is waiting on servers, browsers and subprocesses, so two workers save a third or more even on 2 cores.
# loadfile keeps each module on one worker (its module-scoped fixtures are built once); --no-loadscope-reorder keeps
# the order tests/conftest.py gives the modules (the real-kb ingest starts at once, slow modules before quick ones).
# Not loadgroup: with pytest 9, pytest-xdist 3.8 can no longer tag the nodeids, and every group is split.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(VENV)/.installed-dev
	$(PYTEST)

test-fast: $(VENV)/.installed-dev
	$(PYTEST) -m "not slow"

test-slow: $(VENV)/.installed-dev
	$(PYTEST) -m slow

ingest: $(VENV)/.installed
	$(VENV)/bin/bpo-assistant ingest

eval: $(VENV)/.installed-dev
	$(VENV)/bin/bpo-assistant eval --suite evals/suites/dev.jsonl --report out --baseline evals/baseline.json

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/answer.py
	$(PY) benchmarks/load.py

clean:
	rm -rf .bpo out artifacts
