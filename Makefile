# sloguard: `make demo` runs the main job, `make test` the tests; both build .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## generated fraud + recommender traffic with incidents, the dataflow, alerts as they fire
	$(BIN)/sloguard demo

test: $(STAMP)  ## the whole suite (unit, property, replay end to end, Kafka on the embedded broker)
	$(BIN)/pytest -q

test-fast: $(STAMP)  ## skip the tests marked slow
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)  ## replay throughput vs a plain read-and-parse of the same file
	$(BIN)/python benchmarks/replay_throughput.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
