# sloguard: `make demo` runs the main job, `make test` the tests; both build .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint bench clean prometheus reliability golden

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## generated fraud + recommender traffic with incidents, the dataflow, alerts as they fire
	$(BIN)/sloguard demo

test: $(STAMP)  ## the whole suite (unit, property, replay end to end, Kafka on the embedded broker)
	@command -v promtool >/dev/null 2>&1 || $(MAKE) --no-print-directory prometheus
	$(BIN)/pytest -q

prometheus:  ## Debian's prometheus (promtool) for the rules tests, where apt can install it; they skip otherwise
	-@if command -v apt-get >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
		$$SUDO apt-get install -y -q prometheus >/dev/null 2>&1 \
			|| echo "could not install prometheus: the Prometheus rules tests will be skipped"; \
	fi

test-fast: $(STAMP)  ## skip the tests marked slow
	$(BIN)/pytest -q -m "not slow"

golden: $(STAMP)  ## accept a meant change of the outputs: rewrite tests/golden/ from a replay of the fixed scenario
	SLOGUARD_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/golden/test_golden.py
	@git --no-pager diff --stat -- tests/golden/ 2>/dev/null || true

lint: $(STAMP)
	$(BIN)/ruff check .

reliability: $(STAMP)  ## fault scenarios (poison, future burst, bad input, kills, broker down): lost / duplicated per scenario
	$(BIN)/python benchmarks/reliability.py

bench: $(STAMP)  ## replay throughput vs a plain read-and-parse of the same file
	$(BIN)/python benchmarks/replay_throughput.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
