# envtiers: reproducible environments in tiers for the detector flow.
# Only python3 and make are assumed; everything else is installed from the lockfiles.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
TIER ?= pip
# REMOTE=batch: every step of make run / make resume runs on AWS Batch (--with batch), with the
# Metaflow settings from the environment (README: Remote runs). Empty: everything runs here.
REMOTE ?=
REMOTE_WITH := $(if $(REMOTE),--with $(REMOTE))
TOOLS := .tools
VENV := .venv
# envtiers runs from the source tree on the bootstrap interpreter (uv, packaging, and py-rattler +
# conda-lock for the conda tier: all from the hashed lockfiles/tools.txt).
ENVTIERS := PYTHONPATH=$(CURDIR) $(TOOLS)/bin/python -m envtiers
PYTEST_ARGS ?=
# make run: the flow's options (see `python flows/detector_flow.py run --help`).
RUN_ARGS ?= --model-config test --wandb-mode offline
# Metaflow refuses to run as "root" (it names runs after the user): fall back to a neutral name.
METAFLOW_USER := $(if $(filter-out root,$(USER)),$(USER),envtiers)
FLOW := PYTHONPATH=$(CURDIR) USER=$(METAFLOW_USER) TF_CPP_MIN_LOG_LEVEL=2 \
	$(VENV)/bin/python flows/detector_flow.py --environment=envtiers-$(TIER)

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "Variables: TIER=pip|conda|image, REMOTE=batch (make run/resume), PYTEST_ARGS=... (make test)"

$(TOOLS)/.ok: lockfiles/tools.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "envtiers needs Python >= 3.11 as $(PYTHON) (set PYTHON=/path/to/python3.11)"; exit 2; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "$(PYTHON) has no venv/ensurepip module: on Debian/Ubuntu run 'apt-get install python3-venv'"; exit 2; }
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r lockfiles/tools.txt
	touch $@

tools: $(TOOLS)/.ok ## Bootstrap uv, py-rattler and conda-lock into .tools/ (from the hashed lockfiles/tools.txt)

venv: tools ## Build .venv from the host's runtime + dev locks (a no-op when they are unchanged)
	@$(ENVTIERS) env create --tier pip --dev --target $(VENV) --link-project >/dev/null

lock: tools ## Resolve every lockfile whose inputs changed: pip, then conda (linux-64 and osx-arm64, from any host)
	$(ENVTIERS) lock

relock: tools ## Re-resolve every lockfile even if nothing changed (keeps current versions when allowed)
	$(ENVTIERS) lock --force

upgrade: tools ## Re-resolve to the newest versions the specs allow
	$(ENVTIERS) lock --upgrade

check: tools ## Verify the lockfiles match envs/ (offline, no resolver): what CI runs
	$(ENVTIERS) check

test: venv ## Run the test suite (sets itself up first)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: venv ## ruff + mypy + hadolint (docker/Dockerfile)
	$(VENV)/bin/ruff check envtiers detector flows metaflow_extensions tests bench
	$(VENV)/bin/ruff format --check envtiers detector flows metaflow_extensions tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/hadolint docker/Dockerfile

bench: venv ## Run the benchmarks; writes bench/results/*.json and *.md
	$(VENV)/bin/python -m bench

check-tier:
	@case "$(TIER)" in pip|conda|image) ;; *) echo "TIER must be pip, conda or image (got '$(TIER)')"; exit 2;; esac
	@case "$(REMOTE)" in ""|batch) ;; *) echo "REMOTE must be empty (local) or batch (got '$(REMOTE)')"; exit 2;; esac
	@if [ "$(REMOTE)" = batch ] && [ -z "$${METAFLOW_BATCH_JOB_QUEUE:-}" ]; then \
	  echo "REMOTE=batch needs Metaflow's AWS settings (METAFLOW_BATCH_JOB_QUEUE, METAFLOW_DATASTORE_SYSROOT_S3, ...):"; \
	  echo "  see README 'Remote runs (AWS Batch)'; on this machine: eval \"\$$(.ci/docker-up)\"; eval \"\$$(.ci/aws-up)\""; exit 2; fi

sample: venv ## Generate the synthetic PlantDoc-layout sample dataset in data/sample (once)
	@test -f data/sample/train_labels.csv || $(VENV)/bin/python -m detector sample

run: check-tier venv sample ## Run the detector flow in the chosen tier (TIER=pip|conda|image, REMOTE=batch, RUN_ARGS=...)
	@$(FLOW) run $(REMOTE_WITH) $(RUN_ARGS) || { status=$$?; USER=$(METAFLOW_USER) $(VENV)/bin/python flows/show_run.py; exit $$status; }
	@USER=$(METAFLOW_USER) $(VENV)/bin/python flows/show_run.py

resume: check-tier venv ## Resume the latest run from its failed step (earlier steps are reused; REMOTE=batch too)
	@$(FLOW) resume $(REMOTE_WITH) || { status=$$?; USER=$(METAFLOW_USER) $(VENV)/bin/python flows/show_run.py; exit $$status; }
	@USER=$(METAFLOW_USER) $(VENV)/bin/python flows/show_run.py

image: tools ## Build, push and pin the GPU image (REGISTRY=..., BASE_IMAGE=name@sha256:... override)
	$(ENVTIERS) image build $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(BASE_IMAGE),--base-image $(BASE_IMAGE))

clean: ## Remove .tools/ and .venv/ (the envtiers cache in ~/.cache/envtiers stays)
	rm -rf $(TOOLS) $(VENV)

.PHONY: help tools venv lock relock upgrade check test lint bench check-tier sample run resume image clean
