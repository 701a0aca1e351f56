# The two entry points of a fresh machine: `make run` (the whole build) and `make test`.
# Both create .venv from the committed lock file first; only Python 3.11 is needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export KERAS_BACKEND ?= jax
export PYTHONHASHSEED := 0
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run test system-deps install repro push update serve monitor monitor-days report bench clean-venv

install: $(VENV)/.installed

# Debian packages the tests need besides Python: Chromium (the report's browser test) and
# PostgreSQL (the registry and store on a throw-away server). Installed only when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
			--no-install-recommends chromium postgresql git; fi

# The libraries are installed with their bytecode compiled (--compile-bytecode): every stage,
# flow worker and CLI call is a new Python process, and where PYTHONDONTWRITEBYTECODE is set
# (some CI and container images) each one would otherwise compile the sources of Keras, JAX,
# pandas... again on import, about 3 s a process.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q --compile-bytecode -p $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	touch $@

repro: install
	$(BIN)/dvc repro

push: install
	$(BIN)/dvc push

run: repro push update
	@$(BIN)/python -m lstmops.summary

# One update cycle of every problem (collect, assess, develop, compare, propose) on UPDATE_AS_OF,
# on Prefect's temporary local server; proposals are left pending for `lstmops approve`.
UPDATE_AS_OF ?= 2027-04-01
update: install
	$(BIN)/python flows/update.py --all --as-of $(UPDATE_AS_OF) --no-wait

# The scheduled deployments, served with a local Prefect server and its UI on 127.0.0.1:4200.
serve: install
	$(BIN)/python flows/serve.py

# The Evidently UI over the monitoring workspace (monitoring/workspace) on http://127.0.0.1:8000.
monitor: install
	$(BIN)/lstmops monitor ui

# The daily monitoring flow over simulated days MONITOR_FROM..MONITOR_TO (traffic drawn from the
# drifting process and served by the champions), alarms recorded without starting updates, then
# the stakeholder report (monitoring/reports/index.html).
MONITOR_FROM ?= 2027-01-04
MONITOR_TO ?= 2027-01-24
monitor-days: install
	$(BIN)/python flows/monitor.py --from $(MONITOR_FROM) --to $(MONITOR_TO) --simulate --no-trigger

# The stakeholder report from what is there now: monitoring/reports/index.html.
report: install
	$(BIN)/lstmops report

test: system-deps install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/bench_generate.py

clean-venv:
	rm -rf $(VENV)
