# Quick start: `make run` (install, migrate, serve on SQLite with the worker), `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: install run migrate test lint format bench stress clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	touch $@

install: $(BIN)/.installed

migrate: install
	$(BIN)/flask db upgrade

# The worker (webhooks, journal upkeep) runs beside gunicorn and stops with it.
run: migrate
	@$(BIN)/flask admin-password
	@$(BIN)/flask worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A benchmark against real gunicorn + MariaDB on loopback (see bench/__init__.py).
bench: install
	$(BIN)/python -m bench

# Fault scenarios (database outage, held locks, killed processes, vanishing clients)
# against real gunicorn + MariaDB on loopback, larger than the tests (see stress/__init__.py).
stress: install
	$(BIN)/python -m stress

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
