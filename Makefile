# Two commands do everything on a fresh machine:
#   make demo   set up, then run the embedded default and build its report
#   make test   set up, then run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.12
VENV := .venv
UV_VERSION := 0.13.8
# Use the machine's CA bundle (for proxies) and never download a Python.
export UV_NATIVE_TLS := 1
export UV_PYTHON_DOWNLOADS := never

# A Python $(PYTHON_VERSION): the one installed at PYTHON_PREFIX if that is given and there (on a
# cluster, the bootstrap's on the shared storage, which every node runs), else pyenv's, else
# python3.12 on PATH.
PYTHON_PREFIX ?=
BASE_PYTHON ?= $(shell p=$$(pyenv prefix $(PYTHON_VERSION) 2>/dev/null | head -1); \
	if [ -x "$(PYTHON_PREFIX)/bin/python$(PYTHON_VERSION)" ]; then echo "$(PYTHON_PREFIX)/bin/python$(PYTHON_VERSION)"; \
	elif [ -n "$$p" ]; then echo "$$p/bin/python$(PYTHON_VERSION)"; else command -v python$(PYTHON_VERSION); fi)

.PHONY: help env demo report test lint format profiles services clean

help:
	@echo "make demo   - set up and run the embedded default (simulated SimCam data, pip LSST stack)"
	@echo "make test   - set up and run the whole test suite"
	@echo "make lint   - ruff, snakefmt --check and snakemake --lint"
	@echo "make services - start the local Slurm, PostgreSQL, stand-in head node (sshd) and test cluster of several hosts the tests use (root; installs Debian packages)"
	@echo "make clean  - remove results/, resources/ and logs/ of the embedded default"

# Installed with its bytecode compiled: every snakemake (one on the laptop or head node, two in
# each Slurm job) otherwise compiles its ~1,700 modules from source where .pyc files cannot be
# written (PYTHONDONTWRITEBYTECODE, a read-only install), 5.5 s of CPU each (benchmarks/startup.py).
# The Makefile is a prerequisite: a change to this recipe reinstalls.
$(VENV)/.installed: envs/workflow.lock pyproject.toml tasks/pyproject.toml Makefile
	@test -n "$(BASE_PYTHON)" || { echo "error: Python $(PYTHON_VERSION) not found (pyenv or PATH)"; exit 1; }
	@test -x $(VENV)/bin/python || $(BASE_PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	$(VENV)/bin/uv pip sync --quiet --compile-bytecode --python $(VENV)/bin/python envs/workflow.lock
	$(VENV)/bin/uv pip install --quiet --no-deps --python $(VENV)/bin/python -e . -e tasks
	@touch $@

env: $(VENV)/.installed profiles

# Make the global profiles resolvable as `snakemake --profile NAME` (Snakemake
# looks in ~/.config/snakemake/NAME, not in profiles/).
profiles:
	@mkdir -p $(HOME)/.config/snakemake
	@for p in profiles/*/; do n=$$(basename $$p); [ "$$n" = default ] && continue; \
		ln -sfn "$(CURDIR)/profiles/$$n" "$(HOME)/.config/snakemake/$$n"; done

demo: env
	$(VENV)/bin/snakemake
	$(VENV)/bin/snakemake --report results/report.html
	@echo
	@echo "Summary table: $(CURDIR)/results/summary/visits.csv"
	@echo "Truth check:   $(CURDIR)/results/summary/truth_check.csv"
	@echo "Report:        $(CURDIR)/results/report.html"
	@echo "Costs:         $(CURDIR)/results/costs/breakdown.csv (estimate.json, timings.csv, ...)"
	@echo "Bundle:        $(CURDIR)/results/provenance/lsst-on-aws-bundle.tar.gz"
	@echo "Butler repo:   $(CURDIR)/results/butler/repo (chain SimCam/runs/single-visit)"

# The tests' services: on loopback, a one-node Slurm cluster with accounting,
# PostgreSQL for the Butler's scaled registry, and sshd as a stand-in cluster
# head node; and a cluster of several hosts (network namespaces, a head node
# and three compute nodes with their own root filesystems, sharing /shared).
# Debian packages, installed when missing; needs root.
services:
	tests/services/slurm.sh start
	tests/services/postgres.sh start
	tests/services/sshd.sh start
	tests/services/cluster.sh start

test: env services
	$(VENV)/bin/pytest

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/snakefmt --check Snakefile control-plane.smk rules/
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakemake --lint --snakefile control-plane.smk

format: env
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/snakefmt Snakefile control-plane.smk rules/

clean:
	rm -rf results resources logs .snakemake
