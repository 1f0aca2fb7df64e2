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

.PHONY: chat test test-fast test-slow ingest eval bench clean

# torch first, pinned to the CPU wheel on this machine's disk: any other torch pulls gigabytes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

chat: $(VENV)/.installed
	$(VENV)/bin/bpo-assistant ingest --quiet || test $$? -eq 1
	$(VENV)/bin/bpo-assistant chat --host 127.0.0.1 --port 7860

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not slow"

test-slow: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m slow

ingest: $(VENV)/.installed
	$(VENV)/bin/bpo-assistant ingest

eval: $(VENV)/.installed
	$(VENV)/bin/bpo-assistant eval --suite evals/suites/dev.jsonl --report out --baseline evals/baseline.json

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/answer.py
	$(PY) benchmarks/load.py

clean:
	rm -rf .bpo out artifacts
