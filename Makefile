# Two commands do all set-up: `make run` and `make test` both create .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run demo test lint check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)           ## run the bot on config.yaml (terminal output when SLACK_BOT_TOKEN is unset)
	$(BIN)/newswatch --config config.yaml run

demo: $(STAMP)          ## offline demo: one poll of the bundled example feed, alerts in the terminal
	rm -f examples/demo.db examples/demo.db-wal examples/demo.db-shm
	env -u SLACK_BOT_TOKEN $(BIN)/newswatch --config examples/demo-config.yaml run --once

test: $(STAMP)          ## lint, type-check and run the whole test suite
	$(BIN)/ruff check bot tests benchmarks
	$(BIN)/ruff format --check bot tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

check: $(STAMP)         ## validate config.yaml and every rule
	$(BIN)/newswatch --config config.yaml check

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
