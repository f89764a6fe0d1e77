# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
APP_STAMP := $(VENV)/.installed-app-stamp
CHROMIUM ?= /usr/bin/chromium
# Every install takes its versions from constraints.txt (the lock): a fresh clone gets what CI
# last passed with, not the day's newest releases. `make lock` writes it anew (an upgrade).
PIP_INSTALL := $(PY) -m pip install --quiet -c constraints.txt

.PHONY: install install-app demo test test-faults test-fast lint format system-deps serve clean lock

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# What the product needs (make demo, make serve).
$(APP_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) -e .
	@touch $(APP_STAMP)

# The product and its test toolchain (make test).
$(STAMP): $(APP_STAMP)
	$(PIP_INSTALL) -e '.[test]'
	@touch $(STAMP)

install-app: $(APP_STAMP)
install: $(STAMP)

# Write constraints.txt anew from a fresh environment with the newest versions that
# pyproject.toml allows (product, tests and bench). Review the diff, run make test, commit.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip setuptools
	.lock-venv/bin/python -m pip install --quiet -e '.[test,bench]'
	{ sed -n '/^#/p' constraints.txt; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# System packages the tests use: Debian's Chromium (Playwright drives it; no browser
# download) and poppler-utils (pdftotext/pdftoppm read the PDF report back).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@missing=""; \
	[ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	command -v pdftotext >/dev/null || missing="$$missing poppler-utils"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing$$missing (Debian packages) for the tests..."; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install-app
	$(VENV)/bin/guidance-survey demo

serve: install-app
	$(VENV)/bin/guidance-survey db upgrade
	$(VENV)/bin/guidance-survey serve

# Two workers, one a core (pytest-xdist); each has its own PostgreSQL database and Redis
# prefix (tests/conftest.py), and a module's tests stay on one worker (its fixtures are
# built once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Fault injection (Redis restart, PostgreSQL outage, SIGKILL, two processes, Bot API
# faults, SIGTERM): needs PostgreSQL, Redis and redis-server; a few minutes.
test-faults: install
	$(PY) -m pytest -q -m faults tests/faults

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not browser"

# Known vulnerabilities in the installed packages (pip-audit, PyPI's advisory data: needs the
# network). Fails on a vulnerability, and when nothing could be audited (service unreachable).
.PHONY: audit
audit: install
	$(PY) tests/security/pip_audit_gate.py

# The coordinators' texts: extract them into backend/locales/dashboard.pot and merge into
# every catalog (backend/locales/<lang>/LC_MESSAGES/dashboard.po); prints what is untranslated.
.PHONY: i18n
i18n: install
	$(PY) -m backend.i18n_catalogs

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache guidance.db data

# Benchmark (not part of `make test`): real server, fake Bot API, load generator, PostgreSQL
# and Redis of this machine. BENCH_QUICK=1 for the ~2 minute version; see bench/README.md.
.PHONY: bench bench-report
bench: install
	@$(PY) -c "import shutil,sys; sys.exit(0 if shutil.which('py-spy', path='$(VENV)/bin') else 1)" 2>/dev/null \
	  || $(PIP_INSTALL) -e '.[test,bench]'
	PYTHONPATH=$(CURDIR) $(PY) -m bench.run

# Print the table of the last run.
bench-report:
	@cat bench/results/latest.md
