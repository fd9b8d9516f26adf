# The README's two commands: `make run` (hub + demo traffic) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

run: $(BIN)/.installed
	$(BIN)/orderhook demo

test: $(BIN)/.installed browser
	$(BIN)/python -m pytest -q

# The board's browser test drives Debian's Chromium through Playwright (never
# `playwright install`). As root (CI, containers) it is installed here; otherwise the
# test is skipped with a hint, and fails under CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: the browser test will be skipped (apt-get install chromium)"; \
	  fi; }

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Benchmarks: installs wrk (Debian) and py-spy when missing; ingest, latency, replay and
# storage print a table and write bench/results.json (docs/performance.md), then the
# dispatch benchmark prints its JSON (docs/dispatch.md). BENCH_ARGS: e.g. --smoke
bench: $(BIN)/.installed
	@command -v wrk >/dev/null || [ "$$(id -u)" != 0 ] || apt-get install -y -qq wrk >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; } || true
	@command -v wrk >/dev/null || echo "bench: wrk is not installed; the Python load generator stands in"
	@[ -x $(BIN)/py-spy ] || $(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]' \
		|| echo "bench: py-spy unavailable; the profile is skipped"
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python bench/dispatch.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info orderhook-demo.db* orderhook-demo.toml
