# One command for each habit. Every target finds a Python >= 3.12 by itself and
# keeps its own virtual environment in .venv, so a fresh clone needs nothing else.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The first interpreter >= 3.12 among: $(PYTHON), python3.13/3.12 on PATH, pyenv's versions.
find_python = $(shell for c in $(PYTHON) python3.13 python3.12 python3 \
	$${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 \
	/usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: help venv run test test-fast lint format bench soak clean postgres cluster cluster-down peppol-rules

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@py="$(call find_python)"; \
	if [ -z "$$py" ]; then echo "No Python >= 3.12 found: install one or set PYTHON=/path/to/python3.12" >&2; exit 1; fi; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  rm -rf $(VENV); echo "Creating $(VENV) with $$py"; $$py -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)  ## Create .venv and install the project with its dev tools.

run: $(STAMP)  ## Run the control plane on embedded defaults (SQLite, GitOps target in ./.data).
	$(VENV)/bin/controlplane serve

postgres:  ## Install (from Debian's packages) and start PostgreSQL on 127.0.0.1:5432 if needed.
	@bash .ci/postgres.sh

# The binaries are built once per pinned version into a cache outside the checkout.
cluster: $(STAMP)  ## Build (first time only) and start the local Kubernetes cluster (.cluster/).
	@bash tests/cluster/build.sh .cluster/bin
	@$(PY) -m tests.cluster up

cluster-down: $(STAMP)  ## Stop the local Kubernetes cluster.
	@$(PY) -m tests.cluster down

# The official Peppol BIS Billing 3.0 rule sets (Maven artefact), once per version, outside the checkout.
peppol-rules:  ## Fetch (first time only) the Peppol/CEN validation rules the e-invoice tests run.
	@bash tests/billing/peppol/fetch.sh >/dev/null

# --dist loadfile: the tests of one module run in order on one worker and share its fixtures.
test: $(STAMP) postgres cluster peppol-rules  ## Run the whole test suite (unit, real PostgreSQL, real Kubernetes, Helm).
	$(PY) -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

test-fast: $(STAMP) peppol-rules  ## Run the tests that need neither PostgreSQL nor the cluster.
	$(PY) -m pytest -n 2 --dist loadfile -m "not postgres and not slow and not cluster" $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff, ruff format --check, mypy --strict, import contracts.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)  ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) postgres cluster  ## Print the benchmark figures (and write them as JSON).
	$(PY) -m tests.benchmarks

SOAK_MINUTES ?= 3
soak: $(STAMP) postgres cluster  ## Soak: API + 2 workers on PostgreSQL, the real cluster behind a fault proxy, worker kills.
	$(PY) -m tests.soak --minutes $(SOAK_MINUTES)

clean:  ## Remove the virtual environment and caches.
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .data
