# Quick start: `make run` (install, migrate, serve on SQLite with the worker), `make test`.
# `make postman` runs the Postman collection (docs/postman.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi

.PHONY: install node run serve migrate test postman lint format bench stress clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]'
	touch $@

install: $(BIN)/.installed

# Newman and openapi-to-postmanv2 (tests/node), for the Postman collection's test and
# `make postman`; installed again when the lock file changes. Without npm the
# Postman test skips (under CI=true it fails).
NODE_STAMP := tests/node/node_modules/.installed

$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix tests/node --no-audit --no-fund && touch $@; \
	else \
	  echo "make: npm is not installed, so no Newman: the Postman test skips (fails under CI=true)."; \
	fi

node: $(NODE_STAMP)

migrate: install
	$(BIN)/flask db upgrade

# The worker (webhooks, journal upkeep) runs beside gunicorn and stops with it: Ctrl-C
# and SIGTERM stop both gracefully (a background job of sh ignores SIGQUIT, so the trap
# passes that on as SIGTERM too). `make serve` is the same without install and migrate.
SERVE = $(BIN)/flask worker & worker=$$!; \
	trap 'kill -TERM $$worker 2>/dev/null; wait $$worker' EXIT INT TERM QUIT; \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

run: migrate
	@$(BIN)/flask admin-password
	@$(SERVE)

serve:
	@$(SERVE)

test: install node
	$(BIN)/python -m pytest

# The Postman collection with Newman: against BASE_URL if given (admin password from
# instance/admin-password), else on a throwaway gunicorn + SQLite (tests/postman_run.py).
postman: install node
	$(BIN)/python -m tests.postman_run $(if $(BASE_URL),--base-url $(BASE_URL))

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

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
