# Portcullis: `make run` serves the embedded server with the demo; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two stamps: `make run` installs what serving needs (.[serve]); `make test` adds the test tools
# (.[dev]) on top, so `make run` after `make test` installs nothing.
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
STAMP := $(VENV)/.installed-dev-$(HASH)
# pip's log shrunk to one line per package it fetches (pipefail keeps pip's exit status).
PIP_INSTALL = bash -o pipefail -c '$(PIP) install --progress-bar off $(1) | sed -n "s/^Collecting \([A-Za-z0-9._-]*\).*/    \1/p"'
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist workers for `make test` (one per core here); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
AXE_CORE := tests/axe/node_modules/axe-core/axe.min.js

.PHONY: run test bench soak install browser spa axe-core lint clean

$(PY):
	@echo "==> Creating the virtual environment $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@echo "==> Upgrading pip"
	@$(PIP) install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	@echo "==> Installing Portcullis and what serving it needs (.[serve]; about a minute the first time)"
	@$(call PIP_INSTALL,-e ".[serve]")
	@rm -f $(VENV)/.installed-run-*
	@touch $@

$(STAMP): $(RUN_STAMP)
	@echo "==> Installing the test tools (.[dev]: pytest, Playwright, requests, ruff, mypy, PostgreSQL and Redis drivers)"
	@$(call PIP_INSTALL,-e ".[dev]")
	@rm -f $(VENV)/.installed-dev-*
	@touch $@

install: $(STAMP)

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "Installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# oidc-client-ts for the single-page-app browser test (tests/test_browser_spa.py), from tests/spa's lock file.
SPA_MODULES := tests/spa/node_modules/.package-lock.json
spa: $(SPA_MODULES)
	@:

$(SPA_MODULES): tests/spa/package.json tests/spa/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "Installing Debian's nodejs and npm for the single-page-app browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	@echo "Installing oidc-client-ts into tests/spa (npm ci)"
	@npm ci --prefix tests/spa --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@

run: $(RUN_STAMP)
	@echo "==> Migrating the database"
	@DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py migrate --noinput -v 0
	@echo "==> Creating the signing key, an admin, a demo user and the demo client (kept in var/)"
	@DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py portcullis_bootstrap --base-url http://$(HOST):$(PORT)
	@echo "==> Serving http://$(HOST):$(PORT)/ : open /demo/ and sign in as the demo user above (Ctrl-C stops)"
	@DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py runserver $(HOST):$(PORT)

# axe-core for tests/test_accessibility.py, exactly as tests/axe/package-lock.json pins it.
$(AXE_CORE): tests/axe/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		echo "==> Installing Debian's npm for the accessibility tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm >/dev/null; }
	@echo "==> Installing axe-core for the accessibility tests (npm ci --prefix tests/axe)"
	@npm ci --prefix tests/axe --no-audit --no-fund --silent
	@touch $@

axe-core: $(AXE_CORE)

test: $(STAMP) browser spa
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)
test: $(AXE_CORE)

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || echo "wrk not installed: Python load generator"; }
	$(PY) benchmarks/run.py

# A steady mixed load for SOAK_MINUTES (10) at SOAK_RATE operations/s (10): errors, latency, worker memory.
SOAK_MINUTES ?= 10
SOAK_RATE ?= 10
soak: $(STAMP)
	$(PY) benchmarks/soak.py --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE)

lint: $(STAMP)
	$(VENV)/bin/ruff check identity experience authenticators config tests examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache tests/axe/node_modules
