# Loyalty & promotions back office: developer commands.
#
#   make run    create .venv, install, migrate SQLite, seed demo data, serve on 127.0.0.1:8000
#   make test   create .venv, install (with dev tools), run the whole test suite
#   make bench  the benchmarks (PostgreSQL + Redis + wrk; not part of make test), see docs/performance.md
#
# Only python3 is needed. .venv is (re)installed when requirements*.txt change: the stamp file
# name carries a checksum of the requirements, so a changed file means a missing stamp.

PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist workers; `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
# make bench BENCH_ONLY=http,codes (rows: http contended codes retro admin export member; api = both
# HTTP rows) and BENCH_SCALE=quick (tiny sizes: a smoke test of the harness in about two minutes).
BENCH_ONLY ?=
BENCH_SCALE ?= full

PIP := PIP_ROOT_USER_ACTION=ignore $(BIN)/python -m pip --disable-pip-version-check --no-input -q
RUN_SUM := $(shell cat requirements.txt | cksum | cut -d' ' -f1)
DEV_SUM := $(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(RUN_SUM)
DEV_STAMP := $(VENV)/.installed-dev-$(DEV_SUM)
# Local commands run in demo mode: DEBUG on, SQLite and eager Celery unless the environment
# (or a .env file) says otherwise.
DEV := DEBUG=true

.DEFAULT_GOAL := help
.PHONY: help run install install-dev test lint migrations-check migrate seed worker beat ci bench clean

help:
	@echo "make run               install, migrate, seed demo data and serve http://$(HOST):$(PORT)/admin/"
	@echo "make test              install dev tools and run the test suite (PYTEST_WORKERS=$(PYTEST_WORKERS))"
	@echo "make lint              ruff check ."
	@echo "make migrations-check  fail if a model change has no migration"
	@echo "make worker / beat     Celery worker / beat (needs CELERY_BROKER_URL=redis://...)"
	@echo "make ci                the CI script (.ci/run): SQLite pass, PostgreSQL + Redis pass, lint"
	@echo "make bench             every benchmark row, one table (BENCH_ONLY=row,... BENCH_SCALE=quick)"

$(BIN)/python:
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is needed (PY=$(PY)); try: make $(MAKECMDGOALS) PY=python3.11"; exit 1; }
	@echo "Creating $(VENV) with $(PY)..."
	@$(PY) -m venv $(VENV) || { rm -rf $(VENV); echo "Could not create $(VENV): is the venv module installed (Debian: apt-get install python3-venv)?"; exit 1; }

$(RUN_STAMP): | $(BIN)/python
	@echo "Installing requirements.txt into $(VENV)..."
	@$(PIP) install -r requirements.txt
	@rm -f $(VENV)/.installed-run-*
	@touch $@

$(DEV_STAMP): | $(BIN)/python
	@echo "Installing requirements-dev.txt into $(VENV)..."
	@$(PIP) install -r requirements-dev.txt
	@rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-*
	@touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

migrate: install
	@$(DEV) $(BIN)/python manage.py migrate --no-input -v 0

seed: migrate
	@$(DEV) $(BIN)/python manage.py seed_demo

run: seed
	@echo ""
	@echo "  Admin:    http://$(HOST):$(PORT)/admin/   (demo logins above)"
	@echo "  API docs: http://$(HOST):$(PORT)/api/docs/"
	@echo "  Stop with Ctrl-C."
	@echo ""
	@$(DEV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install-dev
	@$(BIN)/pytest -q $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS)) $(PYTEST_ARGS)

lint: install-dev
	@$(BIN)/ruff check .

migrations-check: install
	@$(DEV) $(BIN)/python manage.py makemigrations --check --dry-run

worker: install
	@test -n "$$CELERY_BROKER_URL" || { echo "Set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (here and for the web process); without it tasks run eagerly and no worker is needed."; exit 2; }
	@$(DEV) $(BIN)/celery -A config worker -l info

beat: install
	@test -n "$$CELERY_BROKER_URL" || { echo "Set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (the same broker as the worker)."; exit 2; }
	@$(DEV) $(BIN)/celery -A config beat -l info -s $(VENV)/celerybeat-schedule

ci:
	@.ci/run

# The benchmarks: PostgreSQL at BENCH_PG and Redis at BENCH_REDIS (see docs/performance.md); wrk is
# installed from Debian's packages when missing. Figures, not pass/fail: only a crashed row fails.
bench: install-dev
	@command -v wrk >/dev/null 2>&1 || { \
		echo "Installing wrk (Debian package)..."; \
		sudo=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }
	@$(BIN)/python -m bench.run $(if $(filter quick,$(BENCH_SCALE)),--quick) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

# Removes local state (the demo database, collected static files, caches); keeps .venv.
clean:
	rm -rf db.sqlite3 db.sqlite3-journal staticfiles .pytest_cache .ruff_cache
