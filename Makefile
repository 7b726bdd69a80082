# Portcullis: `make run` serves the embedded server with the demo; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench install browser lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

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

run: $(STAMP)
	DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py migrate --noinput
	DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py portcullis_bootstrap --base-url http://$(HOST):$(PORT)
	DEBUG=1 PORTCULLIS_DEMO=1 $(PY) manage.py runserver $(HOST):$(PORT)

test: $(STAMP) browser spa
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || echo "wrk not installed: Python load generator"; }
	$(PY) benchmarks/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check identity experience authenticators config tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
